import { ReceiveMessageCommand, type SQSClient, type Message as SqsMessage } from '@aws-sdk/client-sqs'
import {
  Notifier,
  errorMessage,
  errorMeta,
  sleep,
  type Consumer,
  type Encoder,
  type Logger,
  type Message,
  type MessageProxy,
  type ReceiveOptions,
} from '@tq/core'
import { Backoff, OutageLog, SignalCombiner, decodeOrReport, foreignMessageError } from '@tq/core/adapter'
import { fromSqsBody, resendableBody } from './body.ts'
import { classifySqsError } from './classify-error.ts'
import type { ConsumerControl } from './consumer-registry.ts'
import { Delivery } from './message-proxy.ts'
import type { SqsSettings } from './options.ts'
import type { Publisher } from './publisher.ts'
import type { Receipts } from './receipts.ts'
import type { Topology } from './topology.ts'
import { VisibilityExtender } from './visibility-extender.ts'

/** What a consumer needs from its broker (kept off the broker's public surface). */
export interface SqsConsumerHost {
  readonly client: SQSClient
  readonly topology: Pick<Topology, 'withQueue'>
  readonly receipts: Pick<Receipts, 'delete' | 'changeVisibility' | 'deadLetter'>
  /** Sends delayed messages again (a delay hop). */
  readonly publisher: Pick<Publisher, 'send'>
  readonly logger: Logger
  readonly encoder: Encoder
  readonly settings: Pick<SqsSettings, 'visibilityTimeout' | 'waitTimeSeconds' | 'delayHoldWindow' | 'maxDelaySeconds'>
  /** A consumer was built: how the broker flushes and closes it. */
  opened(consumer: ConsumerControl): void
  /** The consumer was closed (its last long poll may still be in flight). */
  closed(consumer: ConsumerControl): void
}

/** Pause after a failed receive; doubles while SQS stays unreachable… */
const FIRST_RECEIVE_RETRY = 100
/**
 * …up to this, so a consumer is receiving again within about a second of the endpoint coming
 * back, however long the outage was (an idle consumer costs one request a second meanwhile).
 */
const MAX_RECEIVE_RETRY = 1000

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
  readonly #buffer: Delivery[] = []
  readonly #outstanding = new Set<Delivery>()
  readonly #extender: VisibilityExtender
  readonly #arrived = new Notifier()
  readonly #slotFreed = new Notifier()
  readonly #closing = new AbortController()
  readonly #signals = new SignalCombiner(this.#closing.signal)
  /** Aborts a long poll in flight (only when the broker gives up waiting for it on close). */
  readonly #abortPoll = new AbortController()
  readonly #control: ConsumerControl
  #closed = false
  /** `stopReceiving()` was called: no new polls, and what a poll in flight brings back goes back. */
  #stopped = false
  #loop: Promise<void> | undefined

  constructor(host: SqsConsumerHost, queueName: string, prefetch: number, timeout: number) {
    this.#host = host
    this.queueName = queueName
    this.prefetch = Math.max(1, prefetch)
    this.timeout = timeout
    this.#isDelayQueue = queueName.endsWith('.DQ')
    this.#extender = new VisibilityExtender({
      queueName,
      visibilityTimeout: host.settings.visibilityTimeout,
      receipts: host.receipts,
      logger: host.logger,
      outstanding: this.#outstanding,
    })
    this.#control = {
      queueName,
      close: () => this.close(),
      dropBuffered: () => {
        for (const delivery of this.#buffer.splice(0)) this.#settle(delivery)
      },
      finished: async () => {
        await this.#loop
      },
      abortPoll: () => this.#abortPoll.abort(),
      stopExtending: () => this.#extender.stop(),
    }
    host.opened(this.#control)
  }

  /** Messages received and not yet acked, nacked or requeued (buffered ones included). */
  get outstanding(): number {
    return this.#outstanding.size
  }

  get closed(): boolean {
    return this.#closed
  }

  async receive(options: ReceiveOptions = {}): Promise<MessageProxy[]> {
    this.#loop ??= this.#pollLoop().catch((error: unknown) => {
      this.#host.logger.error(`The poll loop of ${this.queueName} stopped`, {
        queue: this.queueName,
        ...errorMeta(error),
      })
    })
    const deadline = Date.now() + this.timeout
    const signal = this.#signals.with(options.signal)
    for (;;) {
      if (this.#closed || this.#stopped || signal.aborted) return []
      if (this.#buffer.length > 0) return this.#buffer.splice(0)
      const remaining = deadline - Date.now()
      if (remaining <= 0) return []
      await this.#arrived.wait(remaining, signal)
    }
  }

  async #pollLoop(): Promise<void> {
    const backoff = new Backoff({ initial: FIRST_RECEIVE_RETRY, max: MAX_RECEIVE_RETRY })
    const outage = new OutageLog(this.#host.logger)
    while (!this.#closed && !this.#stopped) {
      const free = this.prefetch - this.#outstanding.size
      if (free <= 0) {
        await this.#slotFreed.wait(undefined, this.#closing.signal)
        continue
      }
      const startedAt = Date.now()
      let messages: SqsMessage[]
      try {
        messages = await this.#receiveMessages(Math.min(10, free))
      } catch (caught) {
        if (this.#closed) break
        const wait = backoff.next()
        // One warning per outage; the retries after it are debug entries.
        outage.failed(`Receiving from ${this.queueName} failed; retrying in ${wait} ms`, {
          queue: this.queueName,
          ...errorMeta(classifySqsError(caught)),
        })
        await sleep(wait, this.#closing.signal)
        continue
      }
      outage.recovered(`Receiving from ${this.queueName} again`, { queue: this.queueName })
      backoff.reset()
      if (messages.length === 0) continue
      if (this.#closed || this.#stopped) {
        await this.#release(messages)
        break
      }
      // The visibility clock started when SQS handed the messages out, just before the response.
      const base = Math.max(startedAt, Date.now() - 1000)
      const accepted = await Promise.all(messages.map((m) => this.#accept(m, base)))
      let added = 0
      for (const delivery of accepted) {
        if (!delivery) continue
        if (this.#closed || this.#stopped) {
          this.#outstanding.delete(delivery)
          await this.#release([delivery.sqsMessage])
          continue
        }
        this.#buffer.push(delivery)
        added++
      }
      if (added > 0) {
        this.#extender.schedule()
        this.#arrived.notify()
      }
    }
  }

  /** One long poll of up to `max` messages. */
  async #receiveMessages(max: number): Promise<SqsMessage[]> {
    const { client, topology, settings } = this.#host
    const out = await topology.withQueue(this.queueName, (url) =>
      client.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: settings.waitTimeSeconds,
          VisibilityTimeout: settings.visibilityTimeout,
          MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: this.#abortPoll.signal },
      ),
    )
    return out.Messages ?? []
  }

  /** Turn an SQS message into a delivery, or handle it here (undecodable, or a delay hop). */
  async #accept(raw: SqsMessage, receivedAt: number): Promise<Delivery | undefined> {
    const host = this.#host
    const decoded = decodeOrReport(fromSqsBody(raw), host.encoder, host.logger, {
      queue: this.queueName,
      sqsMessageId: raw.MessageId,
    })
    if (!decoded.ok) {
      const reason = decoded.reason
      await this.#settleRaw(
        raw,
        () => host.receipts.deadLetter(this.queueName, raw, reason),
        'dead-letter an undecodable message',
      )
      return undefined
    }
    if (this.#isDelayQueue && (await this.#hop(raw, decoded.message))) return undefined
    const count = Number(raw.Attributes?.ApproximateReceiveCount ?? '1')
    const delivery = new Delivery(
      decoded.message,
      raw,
      Number.isFinite(count) ? count : 1,
      this,
      receivedAt + this.#extender.interval,
    )
    this.#outstanding.add(delivery)
    return delivery
  }

  /** Re-send a delayed message that is not due soon with its remaining delay. True if it did. */
  async #hop(raw: SqsMessage, message: Message): Promise<boolean> {
    const { settings, publisher, receipts, logger } = this.#host
    const eta = message.options.eta
    if (typeof eta !== 'number' || !Number.isFinite(eta)) return false
    const remaining = eta - Date.now()
    const delaySeconds = Math.min(Math.floor(remaining / 1000), settings.maxDelaySeconds)
    if (remaining <= settings.delayHoldWindow || delaySeconds < 1) return false
    await this.#settleRaw(
      raw,
      async () => {
        // Send first, then delete: a failure in between leaves two copies, never none.
        await publisher.send({ queueName: this.queueName, body: resendableBody(raw), delaySeconds })
        await receipts.delete(this.queueName, raw.ReceiptHandle ?? '')
        logger.debug('Delayed message sent again to wait for its eta', {
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
          await this.#host.receipts.changeVisibility(this.queueName, m.ReceiptHandle ?? '', 0)
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

  #own(message: MessageProxy): Delivery {
    if (message instanceof Delivery && message.receivedBy === this) return message
    throw foreignMessageError('SqsConsumer', this.queueName, message)
  }

  #settle(delivery: Delivery): void {
    if (this.#outstanding.delete(delivery)) this.#slotFreed.notify()
    const index = this.#buffer.indexOf(delivery)
    if (index >= 0) this.#buffer.splice(index, 1)
    if (this.#outstanding.size === 0) this.#extender.schedule()
  }

  async ack(message: MessageProxy): Promise<void> {
    const delivery = this.#own(message)
    this.#settle(delivery)
    await this.#host.receipts.delete(this.queueName, delivery.receiptHandle)
  }

  async nack(message: MessageProxy): Promise<void> {
    const delivery = this.#own(message)
    this.#settle(delivery)
    const reason = delivery.exception === undefined ? 'nacked' : errorMessage(delivery.exception)
    await this.#host.receipts.deadLetter(this.queueName, delivery.sqsMessage, reason)
  }

  /** Make the messages visible again at once (`ChangeMessageVisibility` to 0). */
  async requeue(messages: readonly MessageProxy[]): Promise<void> {
    const deliveries = messages.map((m) => this.#own(m))
    for (const delivery of deliveries) this.#settle(delivery)
    // An extension in flight must land first, or it would hide the message again.
    await Promise.all(
      deliveries.map(async (d) => {
        await d.extension
        await this.#host.receipts.changeVisibility(this.queueName, d.receiptHandle, 0)
      }),
    )
  }

  /**
   * The worker stops taking messages: no new long poll, buffered messages go back to the queue
   * now, and what a poll in flight brings back goes back when it lands — not after the messages
   * still running finish (`close()`), so other workers can take them meanwhile. Acks, nacks and
   * requeues keep working until `close()`.
   */
  async stopReceiving(): Promise<void> {
    if (this.#stopped || this.#closed) return
    this.#stopped = true
    this.#slotFreed.notify()
    this.#arrived.notify()
    await this.#releaseBuffered()
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
    await this.#releaseBuffered()
    this.#host.closed(this.#control)
  }

  /** Return the messages received and not yet handed to the worker to the queue. */
  async #releaseBuffered(): Promise<void> {
    const buffered = this.#buffer.splice(0)
    for (const delivery of buffered) this.#settle(delivery)
    await this.#release(buffered.map((d) => d.sqsMessage))
  }
}
