import type { Message as SqsMessage, MessageAttributeValue } from '@aws-sdk/client-sqs'
import {
  DecodeError,
  InvalidArgumentError,
  Message,
  MessageProxy,
  Notifier,
  errorMessage,
  errorMeta,
  sleep,
  type Consumer,
  type Encoder,
  type Logger,
  type ReceiveOptions,
  type TqError,
} from '@tq/core'
import { fromSqsBody } from './body.ts'

/** What a consumer needs from its broker (kept off the broker's public surface). */
export interface SqsConsumerHost {
  readonly logger: Logger
  readonly encoder: Encoder
  /** Seconds a received message stays invisible; extended while it is outstanding. */
  readonly visibilityTimeout: number
  readonly waitTimeSeconds: number
  /** Milliseconds: delayed messages due within this window are held in memory instead of re-sent. */
  readonly delayHoldWindow: number
  /** The longest `DelaySeconds` used on a send (SQS: 900). */
  readonly maxDelaySeconds: number
  classify(error: unknown): TqError
  receive(queueName: string, max: number, signal: AbortSignal): Promise<SqsMessage[]>
  deleteMessage(queueName: string, receiptHandle: string): Promise<void>
  changeVisibility(queueName: string, receiptHandle: string, seconds: number): Promise<void>
  /** Send a body as it is (with its attributes) to a queue, delayed by `delaySeconds`. */
  sendRaw(
    queueName: string,
    body: string,
    attributes: Record<string, MessageAttributeValue> | undefined,
    delaySeconds: number,
  ): Promise<void>
  /** Move a received message to the dead-letter queue (or drop it without one). */
  deadLetter(queueName: string, message: SqsMessage, reason: string): Promise<void>
  consumerClosed(consumer: SqsConsumer): void
}

/** Pause after a failed receive; doubles while SQS stays unreachable… */
const FIRST_RECEIVE_RETRY = 100
/**
 * …up to this, so a consumer is receiving again within about a second of the endpoint coming
 * back, however long the outage was (an idle consumer costs one request a second meanwhile).
 */
const MAX_RECEIVE_RETRY = 1000

/** A delivery from SQS: the message plus its receipt handle. */
export class SqsMessageProxy<R = unknown> extends MessageProxy<R> {
  /** The handle that deletes or changes the visibility of this delivery. */
  readonly receiptHandle: string
  /** SQS's id of the message (not tq's `messageId`). */
  readonly sqsMessageId: string
  /** SQS's `ApproximateReceiveCount` for this delivery (1 on the first). */
  readonly receiveCount: number
  /** The SQS message as received (body and attributes), for dead-lettering it unchanged. */
  readonly sqsMessage: SqsMessage
  /** @internal Unix ms at which the next visibility extension is due. */
  nextExtendAt = Infinity
  /** @internal The visibility extension in flight, if any. */
  extension: Promise<void> | undefined = undefined

  /** @internal */
  get extending(): boolean {
    return this.extension !== undefined
  }

  constructor(message: Message<R>, sqsMessage: SqsMessage, receiveCount: number) {
    super(message)
    this.sqsMessage = sqsMessage
    this.receiptHandle = sqsMessage.ReceiptHandle ?? ''
    this.sqsMessageId = sqsMessage.MessageId ?? ''
    this.receiveCount = receiveCount
    this.redelivered = receiveCount > 1
  }
}

/** Message attributes as SendMessage takes them (received ones carry list fields SQS rejects). */
export function sendableAttributes(
  attributes: Record<string, MessageAttributeValue> | undefined,
): Record<string, MessageAttributeValue> | undefined {
  if (!attributes) return undefined
  const out: Record<string, MessageAttributeValue> = {}
  for (const [name, value] of Object.entries(attributes)) {
    const clean: MessageAttributeValue = { DataType: value.DataType }
    if (value.StringValue !== undefined) clean.StringValue = value.StringValue
    if (value.BinaryValue !== undefined) clean.BinaryValue = value.BinaryValue
    out[name] = clean
  }
  return Object.keys(out).length > 0 ? out : undefined
}

/**
 * Consumes one SQS queue for one worker. A background loop long-polls `ReceiveMessage` (up to
 * 10 messages a call, never more than the free prefetch) and buffers what arrives; `receive()`
 * hands the buffer out. While a message is outstanding (buffered or delivered, not yet acked,
 * nacked or requeued) its visibility timeout is extended before it expires, so a slow actor does
 * not see its message delivered to another worker; if this process dies the extensions stop and
 * SQS delivers the message again once its visibility timeout passes.
 *
 * On a delay queue, a message whose eta is further away than the hold window is sent again with
 * the remaining delay (at most `maxDelaySeconds`) and the old copy deleted: SQS cannot delay a
 * message longer than 15 minutes, and holding it in memory would pin it to this process.
 */
export class SqsConsumer implements Consumer {
  readonly queueName: string
  readonly prefetch: number
  readonly timeout: number
  readonly #host: SqsConsumerHost
  readonly #isDelayQueue: boolean
  readonly #buffer: SqsMessageProxy[] = []
  readonly #outstanding = new Set<SqsMessageProxy>()
  readonly #arrived = new Notifier()
  readonly #slotFreed = new Notifier()
  readonly #closing = new AbortController()
  /** Aborts a long poll in flight (only when the broker gives up waiting for it on close). */
  readonly #abortPoll = new AbortController()
  #closed = false
  #loop: Promise<void> | undefined
  #extendTimer: NodeJS.Timeout | undefined
  #extendTimerAt = Infinity

  constructor(host: SqsConsumerHost, queueName: string, prefetch: number, timeout: number) {
    this.#host = host
    this.queueName = queueName
    this.prefetch = Math.max(1, prefetch)
    this.timeout = timeout
    this.#isDelayQueue = queueName.endsWith('.DQ')
  }

  /** Messages received and not yet acked, nacked or requeued (buffered ones included). */
  get outstanding(): number {
    return this.#outstanding.size
  }

  get closed(): boolean {
    return this.#closed
  }

  // The worker passes the same signal to every receive(): combine it with ours once. A fresh
  // AbortSignal.any() per call leaks on Node 20 (a long-lived signal never drops its dependants,
  // nodejs/node#55351), which grew a worker's memory by tens of MB per million messages.
  #callerSignal: AbortSignal | undefined
  #combinedSignal: AbortSignal | undefined

  #receiveSignal(caller: AbortSignal | undefined): AbortSignal {
    if (!caller) return this.#closing.signal
    if (caller !== this.#callerSignal || !this.#combinedSignal) {
      this.#callerSignal = caller
      this.#combinedSignal = AbortSignal.any([caller, this.#closing.signal])
    }
    return this.#combinedSignal
  }

  async receive(options: ReceiveOptions = {}): Promise<MessageProxy[]> {
    this.#loop ??= this.#pollLoop().catch((error: unknown) => {
      this.#host.logger.error(`The poll loop of ${this.queueName} stopped`, {
        queue: this.queueName,
        ...errorMeta(error),
      })
    })
    const deadline = Date.now() + this.timeout
    const signal = this.#receiveSignal(options.signal)
    for (;;) {
      if (this.#closed || signal.aborted) return []
      if (this.#buffer.length > 0) return this.#buffer.splice(0)
      const remaining = deadline - Date.now()
      if (remaining <= 0) return []
      await this.#arrived.wait(remaining, signal)
    }
  }

  async #pollLoop(): Promise<void> {
    const host = this.#host
    let backoff = FIRST_RECEIVE_RETRY
    while (!this.#closed) {
      const free = this.prefetch - this.#outstanding.size
      if (free <= 0) {
        await this.#slotFreed.wait(undefined, this.#closing.signal)
        continue
      }
      const startedAt = Date.now()
      let messages: SqsMessage[]
      try {
        messages = await host.receive(this.queueName, Math.min(10, free), this.#abortPoll.signal)
      } catch (caught) {
        if (this.#closed) break
        const error = host.classify(caught)
        // One warning per outage; the retries after it are debug entries.
        const message = `Receiving from ${this.queueName} failed; retrying in ${backoff} ms`
        const meta = { queue: this.queueName, ...errorMeta(error) }
        if (backoff === FIRST_RECEIVE_RETRY) host.logger.warn(message, meta)
        else host.logger.debug(message, meta)
        await sleep(backoff, this.#closing.signal)
        backoff = Math.min(backoff * 2, MAX_RECEIVE_RETRY)
        continue
      }
      if (backoff !== FIRST_RECEIVE_RETRY)
        host.logger.info(`Receiving from ${this.queueName} again`, { queue: this.queueName })
      backoff = FIRST_RECEIVE_RETRY
      if (messages.length === 0) continue
      if (this.#closed) {
        await this.#release(messages)
        break
      }
      // The visibility clock started when SQS handed the messages out, just before the response.
      const base = Math.max(startedAt, Date.now() - 1000)
      const accepted = await Promise.all(messages.map((m) => this.#accept(m, base)))
      let added = 0
      for (const proxy of accepted) {
        if (!proxy) continue
        if (this.#closed) {
          this.#outstanding.delete(proxy)
          await this.#release([proxy.sqsMessage])
          continue
        }
        this.#buffer.push(proxy)
        added++
      }
      if (added > 0) {
        this.#scheduleExtension()
        this.#arrived.notify()
      }
    }
  }

  /** Turn an SQS message into a delivery, or handle it here (undecodable, or a delay hop). */
  async #accept(raw: SqsMessage, receivedAt: number): Promise<SqsMessageProxy | undefined> {
    const host = this.#host
    let message: Message
    try {
      message = Message.decode(fromSqsBody(raw), host.encoder)
    } catch (error) {
      const reason = error instanceof DecodeError ? error.message : errorMessage(error)
      host.logger.error('Undecodable message dead-lettered', {
        queue: this.queueName,
        sqsMessageId: raw.MessageId,
        reason,
        ...errorMeta(error),
      })
      await this.#settleRaw(
        raw,
        () => host.deadLetter(this.queueName, raw, reason),
        'dead-letter an undecodable message',
      )
      return undefined
    }
    if (this.#isDelayQueue && (await this.#hop(raw, message))) return undefined
    const count = Number(raw.Attributes?.ApproximateReceiveCount ?? '1')
    const proxy = new SqsMessageProxy(message, raw, Number.isFinite(count) ? count : 1)
    proxy.nextExtendAt = receivedAt + this.#extendAfter()
    this.#outstanding.add(proxy)
    return proxy
  }

  /** Re-send a delayed message that is not due soon with its remaining delay. True if it did. */
  async #hop(raw: SqsMessage, message: Message): Promise<boolean> {
    const host = this.#host
    const eta = message.options.eta
    if (typeof eta !== 'number' || !Number.isFinite(eta)) return false
    const remaining = eta - Date.now()
    const delaySeconds = Math.min(Math.floor(remaining / 1000), host.maxDelaySeconds)
    if (remaining <= host.delayHoldWindow || delaySeconds < 1) return false
    await this.#settleRaw(
      raw,
      async () => {
        // Send first, then delete: a failure in between leaves two copies, never none.
        await host.sendRaw(this.queueName, raw.Body ?? '', sendableAttributes(raw.MessageAttributes), delaySeconds)
        await host.deleteMessage(this.queueName, raw.ReceiptHandle ?? '')
        host.logger.debug('Delayed message sent again to wait for its eta', {
          messageId: message.messageId,
          queue: this.queueName,
          eta,
          delaySeconds,
        })
      },
      'send a delayed message again',
    )
    return true
  }

  async #settleRaw(raw: SqsMessage, action: () => Promise<void>, what: string): Promise<void> {
    try {
      await action()
    } catch (error) {
      // Left as it is, SQS delivers it again once its visibility timeout passes.
      this.#host.logger.error(`Failed to ${what}; SQS will deliver it again`, {
        queue: this.queueName,
        sqsMessageId: raw.MessageId,
        ...errorMeta(error),
      })
    }
  }

  /** Make messages visible again at once. */
  async #release(messages: readonly SqsMessage[]): Promise<void> {
    await Promise.all(
      messages.map(async (m) => {
        try {
          await this.#host.changeVisibility(this.queueName, m.ReceiptHandle ?? '', 0)
        } catch (error) {
          this.#host.logger.warn(
            'Failed to return a message to its queue; it comes back after its visibility timeout',
            {
              queue: this.queueName,
              sqsMessageId: m.MessageId,
              ...errorMeta(error),
            },
          )
        }
      }),
    )
  }

  /** Milliseconds after a (re)extension at which the next one is due: half the visibility timeout. */
  #extendAfter(): number {
    return (this.#host.visibilityTimeout * 1000) / 2
  }

  #scheduleExtension(): void {
    let next = Infinity
    for (const p of this.#outstanding) if (!p.extending && p.nextExtendAt < next) next = p.nextExtendAt
    if (next === Infinity) {
      if (this.#extendTimer) clearTimeout(this.#extendTimer)
      this.#extendTimer = undefined
      this.#extendTimerAt = Infinity
      return
    }
    if (this.#extendTimer && this.#extendTimerAt <= next) return
    if (this.#extendTimer) clearTimeout(this.#extendTimer)
    this.#extendTimerAt = next
    this.#extendTimer = setTimeout(
      () => {
        this.#extendTimer = undefined
        this.#extendTimerAt = Infinity
        void this.#extend()
      },
      Math.max(0, next - Date.now()),
    )
    this.#extendTimer.unref()
  }

  /** Extend the visibility of every outstanding message whose extension is due (or nearly). */
  async #extend(): Promise<void> {
    const host = this.#host
    const window = Date.now() + this.#extendAfter() / 2
    const due = [...this.#outstanding].filter((p) => !p.extending && p.nextExtendAt <= window)
    const extendOne = async (proxy: SqsMessageProxy): Promise<void> => {
      const startedAt = Date.now()
      try {
        await host.changeVisibility(this.queueName, proxy.receiptHandle, host.visibilityTimeout)
        proxy.nextExtendAt = startedAt + this.#extendAfter()
      } catch (caught) {
        const error = host.classify(caught)
        if (!this.#outstanding.has(proxy)) return
        if (error.retryable) {
          proxy.nextExtendAt = Date.now() + Math.min(1000, this.#extendAfter() / 2)
        } else {
          proxy.nextExtendAt = Infinity
        }
        host.logger.warn(
          error.retryable
            ? 'Could not extend the visibility timeout of a message; retrying'
            : 'Could not extend the visibility timeout of a message; SQS may deliver it again',
          { messageId: proxy.messageId, queue: this.queueName, ...errorMeta(error) },
        )
      }
    }
    await Promise.all(
      due.map((proxy) => {
        const extension = extendOne(proxy).finally(() => (proxy.extension = undefined))
        proxy.extension = extension
        return extension
      }),
    )
    this.#scheduleExtension()
  }

  #own(message: MessageProxy): SqsMessageProxy {
    if (!(message instanceof SqsMessageProxy)) {
      throw new InvalidArgumentError(`${this.queueName}: this message was not delivered by an SqsConsumer`)
    }
    return message
  }

  #settle(proxy: SqsMessageProxy): void {
    if (this.#outstanding.delete(proxy)) this.#slotFreed.notify()
    const index = this.#buffer.indexOf(proxy)
    if (index >= 0) this.#buffer.splice(index, 1)
    if (this.#outstanding.size === 0) this.#scheduleExtension()
  }

  async ack(message: MessageProxy): Promise<void> {
    const proxy = this.#own(message)
    this.#settle(proxy)
    await this.#host.deleteMessage(this.queueName, proxy.receiptHandle)
  }

  async nack(message: MessageProxy): Promise<void> {
    const proxy = this.#own(message)
    this.#settle(proxy)
    const reason = proxy.exception === undefined ? 'nacked' : errorMessage(proxy.exception)
    await this.#host.deadLetter(this.queueName, proxy.sqsMessage, reason)
  }

  /** Make the messages visible again at once (`ChangeMessageVisibility` to 0). */
  async requeue(messages: readonly MessageProxy[]): Promise<void> {
    const proxies = messages.map((m) => this.#own(m))
    for (const proxy of proxies) this.#settle(proxy)
    // An extension in flight must land first, or it would hide the message again.
    await Promise.all(
      proxies.map(async (p) => {
        await p.extension
        await this.#host.changeVisibility(this.queueName, p.receiptHandle, 0)
      }),
    )
  }

  /** @internal Forget buffered (not yet delivered) messages, after their queue was purged. */
  dropBuffered(): void {
    for (const proxy of this.#buffer.splice(0)) this.#settle(proxy)
  }

  /**
   * Stop polling and return buffered messages to the queue. A long poll in flight is left to
   * finish (aborting it could leave messages it took invisible); what it brings back is
   * returned to the queue at once. `broker.close()` waits for it.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#closing.abort()
    this.#arrived.notify()
    const buffered = this.#buffer.splice(0)
    for (const proxy of buffered) this.#settle(proxy)
    await this.#release(buffered.map((p) => p.sqsMessage))
    this.#host.consumerClosed(this)
  }

  /** @internal Resolves when the poll loop has ended (its last long poll returned). */
  async finished(): Promise<void> {
    await this.#loop
  }

  /** @internal Abort a long poll in flight (the broker stopped waiting for it). */
  abortPoll(): void {
    this.#abortPoll.abort()
  }

  /** @internal Stop extending visibility (the broker is closing). */
  stopExtending(): void {
    if (this.#extendTimer) clearTimeout(this.#extendTimer)
    this.#extendTimer = undefined
    this.#extendTimerAt = Infinity
    for (const p of this.#outstanding) p.nextExtendAt = Infinity
  }
}
