import {
  DecodeError,
  Message,
  MessageProxy,
  Notifier,
  errorMeta,
  qName,
  sleep,
  type Consumer,
  type Encoder,
  type Logger,
  type ReceiveOptions,
} from '@tq/core'
import type { Channel, ConsumeMessage } from 'amqplib'
import { classifyAmqpError } from './classify-error.ts'
import type { ManagedConnection } from './connection.ts'
import type { PublishItem } from './publisher.ts'
import { SettleMemory, type SettleAction } from './settle-memory.ts'

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  readonly encoder: Encoder
  readonly logger: Logger
  /** The connection consumers open their channels on. */
  readonly consumeConnection: ManagedConnection
  /** Declare a canonical queue's topology on `channel`. */
  declareOn(channel: Channel, canonical: string): Promise<void>
  /** Publish messages again, bypassing middleware (the delay-lease renewal). */
  republish(items: readonly PublishItem[]): Promise<void>
  /** Something a `join()` waits on changed. */
  notifySettled(): void
  consumerClosed(consumer: RabbitmqConsumer): void
}

export interface RabbitmqConsumerOptions {
  prefetch: number
  timeout: number
  /** Longest a delay-queue delivery stays unacknowledged in this process (ms); see `RabbitmqBrokerOptions.delayLease`. */
  delayLease: number
  /** Milliseconds before re-opening a channel that failed (doubles up to `maxRestartDelay`). */
  restartDelay: number
  maxRestartDelay: number
}

/** One consume subscription: a channel, its consumer tag and its unsettled deliveries. */
interface Subscription {
  readonly id: number
  readonly channel: Channel
  open: boolean
  /** The server's tag for this subscription, once `basic.consume` was answered. */
  consumerTag: string | undefined
  /** Deliveries on this channel not yet acked, nacked or requeued, by delivery tag. */
  readonly outstanding: Map<number, Delivery>
  /** The last acks/nacks sent on this channel, remembered if it dies (they may not have arrived). */
  readonly recent: Array<{ messageId: string; body: Buffer; action: SettleAction }>
  readonly ended: Promise<void>
  end(): void
}

interface Delivery {
  readonly sub: Subscription
  readonly raw: ConsumeMessage
  readonly deliveredAt: number
}

const RECENT_SETTLES = 1000

/** A delivery from RabbitMQ, as the worker sees it. */
export class RabbitmqMessageProxy<R = unknown> extends MessageProxy<R> {
  /** The body exactly as it was delivered. */
  readonly body: Buffer
  /** @internal The delivery this message is settled through (re-bound after a reconnect). */
  delivery: Delivery

  /** @internal */
  constructor(message: Message<R>, body: Buffer, delivery: Delivery) {
    super(message)
    this.body = body
    this.delivery = delivery
    this.redelivered = delivery.raw.fields.redelivered
  }

  /** The AMQP delivery tag (valid on the channel that delivered it). */
  get deliveryTag(): number {
    return this.delivery.raw.fields.deliveryTag
  }
}

/**
 * Consumes one queue (`q` or `q.DQ`) on its own channel of the broker's consuming connection,
 * with manual acks and a per-consumer prefetch (`basic.qos`, global false).
 *
 * - Undecodable bodies are nacked without requeue, so RabbitMQ dead-letters them to `q.XQ`;
 *   the reason is logged and the worker never sees them.
 * - `nack` dead-letters (`basic.nack`, requeue false); `requeue` returns messages to their
 *   place in the queue (`basic.nack`, requeue true); `close` closes the channel, which returns
 *   everything still unacknowledged.
 * - A lost channel or connection is re-opened with backoff, the queue re-declared and the
 *   subscription resumed. Acks and nacks of deliveries from a dead channel are no-ops (the
 *   server redelivers those messages); when the redelivery arrives while the worker still holds
 *   the old delivery, the two are joined instead of running twice, and a decision the worker
 *   already made is applied to it directly.
 * - When RabbitMQ cancels the subscription (the queue was deleted), the queue is declared again
 *   and consumption resumes.
 * - On a delay queue, a message whose eta is further away than `delayLease` is held here, not
 *   handed to the worker, and re-published to the delay queue (then acked) every `delayLease`,
 *   so no delivery stays unacknowledged long enough to hit RabbitMQ's `consumer_timeout`
 *   (Dramatiq issue #827). The worker only gets it once its eta is less than `delayLease` away.
 */
export class RabbitmqConsumer implements Consumer {
  readonly queueName: string
  readonly prefetch: number
  readonly timeout: number
  readonly delayLease: number
  readonly #host: ConsumerHost
  readonly #options: RabbitmqConsumerOptions
  readonly #logger: Logger
  readonly #canonical: string
  readonly #isDelayQueue: boolean
  #sub: Subscription | undefined
  #subCount = 0
  #loop: Promise<void> | undefined
  #closed = false
  /** False once `stopReceiving()` cancelled the subscription. */
  #receiving = true
  readonly #closing = new AbortController()
  #ready: RabbitmqMessageProxy[] = []
  readonly #handedOut = new Set<RabbitmqMessageProxy>()
  /** Handed-out messages whose channel died, by message id, waiting for their redelivery. */
  readonly #stale = new Map<string, Set<RabbitmqMessageProxy>>()
  #staleCount = 0
  readonly #memory = new SettleMemory()
  readonly #arrived = new Notifier()
  /** Delay-queue deliveries held for lease renewal, in arrival order. */
  #leaseHeld: RabbitmqMessageProxy[] = []
  #leaseTimer: NodeJS.Timeout | undefined
  #renewing = false
  #leaseRetryAt = 0
  /** Times a held delayed message was re-published to renew its lease. */
  leaseRenewals = 0

  constructor(host: ConsumerHost, queueName: string, options: RabbitmqConsumerOptions) {
    this.#host = host
    this.queueName = queueName
    this.#options = options
    this.prefetch = options.prefetch
    this.timeout = options.timeout
    this.delayLease = options.delayLease
    this.#canonical = qName(queueName)
    this.#isDelayQueue = queueName.endsWith('.DQ')
    this.#logger = host.logger.child({ component: 'rabbitmq-consumer', queue: queueName })
  }

  /** Deliveries this consumer holds that are not settled (for `join`). */
  get outstanding(): number {
    return (this.#sub?.outstanding.size ?? 0) + this.#staleCount
  }

  /** Delayed messages held here for lease renewal (not yet handed to the worker). */
  get leaseHeld(): number {
    return this.#leaseHeld.length
  }

  get closed(): boolean {
    return this.#closed
  }

  async receive(options: ReceiveOptions = {}): Promise<MessageProxy[]> {
    if (this.#closed || !this.#receiving) return []
    this.#loop ??= this.#run()
    const deadline = Date.now() + this.timeout
    // close() notifies #arrived, so only the caller's signal needs listening to.
    const signal = options.signal
    for (;;) {
      if (this.#ready.length > 0) {
        const batch = this.#ready
        this.#ready = []
        for (const proxy of batch) this.#handedOut.add(proxy)
        return batch
      }
      if (this.#closed || !this.#receiving || signal?.aborted) return []
      const remaining = deadline - Date.now()
      if (remaining <= 0) return []
      await this.#arrived.wait(remaining, signal)
    }
  }

  // ---- subscription lifecycle ----

  async #run(): Promise<void> {
    let failures = 0
    while (!this.#closed && this.#receiving) {
      let sub: Subscription | undefined
      try {
        const model = await this.#host.consumeConnection.get(this.#closing.signal)
        if (this.#closed) break
        const channel = await model.createChannel()
        sub = this.#newSubscription(channel)
        const current = sub
        channel.on('error', (error: unknown) => {
          const classified = classifyAmqpError(error)
          this.#logger.warn(`RabbitMQ closed the channel consuming ${this.queueName}`, errorMeta(classified))
        })
        channel.on('close', () => this.#endSubscription(current))
        await channel.prefetch(this.prefetch, false)
        await this.#host.declareOn(channel, this.#canonical)
        this.#sub = sub
        if (!this.#receiving) break
        const { consumerTag } = await channel.consume(this.queueName, (raw) => this.#onMessage(current, raw), {
          noAck: false,
        })
        sub.consumerTag = consumerTag
        if (sub.id > 1) this.#logger.info(`Consuming ${this.queueName} again`)
        failures = 0
        if (this.#closed) break
        await sub.ended
      } catch (error) {
        if (this.#closed) break
        const classified = classifyAmqpError(error)
        failures++
        const meta = errorMeta(classified)
        if (classified.retryable) this.#logger.warn(`Could not consume ${this.queueName}; retrying`, meta)
        else this.#logger.error(`Could not consume ${this.queueName}; retrying`, meta)
        if (sub) {
          this.#endSubscription(sub)
          await sub.channel.close().catch(() => undefined)
        }
        const delay = Math.min(this.#options.maxRestartDelay, this.#options.restartDelay * 2 ** (failures - 1))
        await sleep(delay, this.#closing.signal)
      } finally {
        // Closed while subscribing: don't leave the channel (and its deliveries) behind.
        if (this.#closed && sub?.open) {
          await sub.channel.close().catch(() => undefined)
          this.#endSubscription(sub)
        }
      }
    }
  }

  #newSubscription(channel: Channel): Subscription {
    let end!: () => void
    const ended = new Promise<void>((resolve) => (end = resolve))
    return {
      id: ++this.#subCount,
      channel,
      open: true,
      consumerTag: undefined,
      outstanding: new Map(),
      recent: [],
      ended,
      end,
    }
  }

  /** The channel is gone: what it delivered comes back from the server. */
  #endSubscription(sub: Subscription): void {
    if (!sub.open) return
    sub.open = false
    for (const r of sub.recent) this.#memory.remember(r.messageId, r.body, r.action)
    sub.recent.length = 0
    this.#ready = this.#ready.filter((p) => p.delivery.sub !== sub)
    this.#leaseHeld = this.#leaseHeld.filter((p) => p.delivery.sub !== sub)
    for (const proxy of this.#handedOut) if (proxy.delivery.sub === sub) this.#addStale(proxy)
    sub.outstanding.clear()
    if (this.#sub === sub) this.#sub = undefined
    sub.end()
    this.#host.notifySettled()
  }

  #onMessage(sub: Subscription, raw: ConsumeMessage | null): void {
    if (raw === null) {
      // RabbitMQ cancelled the subscription: the queue was deleted (or its node went away).
      this.#logger.warn(`RabbitMQ cancelled the consumer of ${this.queueName} (queue deleted?); declaring it again`)
      void sub.channel.close().catch(() => undefined)
      this.#endSubscription(sub)
      return
    }
    if (!sub.open) return
    const delivery: Delivery = { sub, raw, deliveredAt: Date.now() }
    sub.outstanding.set(raw.fields.deliveryTag, delivery)
    let message: Message
    try {
      message = Message.decode(raw.content, this.#host.encoder)
    } catch (error) {
      const reason = error instanceof DecodeError ? error.message : String(error)
      // The AMQP message-id property (if the producer set one) identifies it in the dead-letter queue.
      const amqpMessageId: unknown = raw.properties.messageId
      this.#logger.error('Undecodable message dead-lettered', {
        ...(typeof amqpMessageId === 'string' ? { amqpMessageId } : {}),
        deliveryTag: raw.fields.deliveryTag,
        reason,
        ...errorMeta(error),
      })
      this.#settleDelivery(delivery, 'nack', undefined)
      return
    }
    if (raw.fields.redelivered && this.#matchRedelivery(message, delivery)) return
    if (!this.#receiving) {
      // Delivered before the server confirmed the cancel: straight back to the queue.
      this.#settleDelivery(delivery, 'requeue', message.messageId)
      this.#host.notifySettled()
      return
    }
    const proxy = new RabbitmqMessageProxy(message, raw.content, delivery)
    if (this.#isDelayQueue && Number.isFinite(this.delayLease)) {
      const eta = message.options.eta
      if (typeof eta === 'number' && eta - delivery.deliveredAt > this.delayLease) {
        this.#leaseHeld.push(proxy)
        this.#scheduleLeaseRenewal()
        return
      }
    }
    this.#ready.push(proxy)
    this.#arrived.notify()
  }

  /** A redelivery of something the worker holds or already finished: join it, don't run it twice. */
  #matchRedelivery(message: Message, delivery: Delivery): boolean {
    const action = this.#memory.take(message.messageId, delivery.raw.content)
    if (action) {
      this.#logger.debug(`Applying an earlier ${action} to a redelivered message`, { messageId: message.messageId })
      this.#settleDelivery(delivery, action, message.messageId)
      return true
    }
    const candidates = this.#stale.get(message.messageId)
    if (!candidates) return false
    for (const proxy of candidates) {
      if (proxy.body.equals(delivery.raw.content)) {
        this.#removeStale(proxy)
        proxy.delivery = delivery
        proxy.redelivered = true
        this.#logger.debug('Re-bound a message the worker holds to its redelivery', { messageId: message.messageId })
        return true
      }
    }
    return false
  }

  #addStale(proxy: RabbitmqMessageProxy): void {
    let set = this.#stale.get(proxy.messageId)
    if (!set) this.#stale.set(proxy.messageId, (set = new Set()))
    if (!set.has(proxy)) {
      set.add(proxy)
      this.#staleCount++
    }
  }

  #removeStale(proxy: RabbitmqMessageProxy): void {
    const set = this.#stale.get(proxy.messageId)
    if (set?.delete(proxy)) {
      this.#staleCount--
      if (set.size === 0) this.#stale.delete(proxy.messageId)
    }
  }

  // ---- settling ----

  #isLive(delivery: Delivery): boolean {
    return delivery.sub.open && delivery.sub.outstanding.get(delivery.raw.fields.deliveryTag) === delivery
  }

  /** Ack, nack (dead-letter) or requeue a live delivery. Never throws. */
  #settleDelivery(delivery: Delivery, action: SettleAction | 'requeue', messageId: string | undefined): void {
    const { sub, raw } = delivery
    sub.outstanding.delete(raw.fields.deliveryTag)
    try {
      if (action === 'ack') sub.channel.ack(raw)
      else sub.channel.nack(raw, false, action === 'requeue')
      if (action !== 'requeue' && messageId !== undefined) {
        sub.recent.push({ messageId, body: raw.content, action })
        if (sub.recent.length > RECENT_SETTLES * 2) sub.recent.splice(0, RECENT_SETTLES)
      }
    } catch (error) {
      // The channel closed under us: the server redelivers the message.
      if (action !== 'requeue' && messageId !== undefined) this.#memory.remember(messageId, raw.content, action)
      this.#logger.debug(`Could not ${action} a delivery on a closed channel; RabbitMQ delivers it again`, {
        messageId,
        ...errorMeta(error),
      })
    }
    this.#host.notifySettled()
  }

  #settle(message: MessageProxy, action: SettleAction): void {
    const proxy = asRabbitProxy(message)
    this.#handedOut.delete(proxy)
    this.#removeStale(proxy)
    if (!this.#isLive(proxy.delivery)) {
      this.#memory.remember(proxy.messageId, proxy.body, action)
      this.#logger.debug(`Ignoring the ${action} of a delivery from a closed channel; RabbitMQ delivers it again`, {
        messageId: proxy.messageId,
      })
      this.#host.notifySettled()
      return
    }
    this.#settleDelivery(proxy.delivery, action, proxy.messageId)
  }

  async ack(message: MessageProxy): Promise<void> {
    this.#settle(message, 'ack')
  }

  async nack(message: MessageProxy): Promise<void> {
    this.#settle(message, 'nack')
  }

  async requeue(messages: readonly MessageProxy[]): Promise<void> {
    for (const message of messages) {
      const proxy = asRabbitProxy(message)
      this.#handedOut.delete(proxy)
      this.#removeStale(proxy)
      // A delivery from a dead channel is back in the queue already.
      if (this.#isLive(proxy.delivery)) this.#settleDelivery(proxy.delivery, 'requeue', proxy.messageId)
    }
    this.#host.notifySettled()
  }

  // ---- delay leases (#827) ----

  #scheduleLeaseRenewal(): void {
    if (this.#leaseTimer || this.#renewing || this.#closed) return
    const first = this.#leaseHeld[0]
    if (!first) return
    const wait = Math.max(0, first.delivery.deliveredAt + this.delayLease - Date.now(), this.#leaseRetryAt - Date.now())
    this.#leaseTimer = setTimeout(() => {
      this.#leaseTimer = undefined
      void this.#renewLeases()
    }, wait)
    this.#leaseTimer.unref?.()
  }

  /** Re-publish every held delayed message whose lease is up, then ack its old delivery. */
  async #renewLeases(): Promise<void> {
    this.#renewing = true
    try {
      const now = Date.now()
      const due: RabbitmqMessageProxy[] = []
      while (this.#leaseHeld.length > 0) {
        const first = this.#leaseHeld[0] as RabbitmqMessageProxy
        if (first.delivery.deliveredAt + this.delayLease > now) break
        this.#leaseHeld.shift()
        // A delivery whose channel died is back in the queue already.
        if (this.#isLive(first.delivery)) due.push(first)
      }
      if (due.length === 0 || this.#closed) return
      try {
        await this.#host.republish(
          due.map((proxy) => {
            const priority: unknown = proxy.delivery.raw.properties.priority
            return {
              routingKey: this.queueName,
              canonical: this.#canonical,
              body: proxy.body,
              priority: typeof priority === 'number' ? priority : undefined,
            }
          }),
        )
      } catch (error) {
        // Keep holding them and try again soon. Should the channel die meanwhile (even by
        // consumer_timeout), RabbitMQ redelivers them: late at worst, never early or lost.
        this.#logger.warn(`Could not renew the lease of ${due.length} delayed message(s); retrying`, errorMeta(error))
        this.#leaseHeld.unshift(...due.filter((p) => this.#isLive(p.delivery)))
        this.#leaseRetryAt = Date.now() + this.#options.restartDelay
        return
      }
      this.#leaseRetryAt = 0
      for (const proxy of due) {
        this.leaseRenewals++
        this.#logger.debug('Renewed the lease of a delayed message (re-published to the delay queue)', {
          messageId: proxy.messageId,
          heldFor: Date.now() - proxy.delivery.deliveredAt,
          eta: proxy.options.eta,
        })
        if (this.#isLive(proxy.delivery)) this.#settleDelivery(proxy.delivery, 'ack', proxy.messageId)
        else this.#memory.remember(proxy.messageId, proxy.body, 'ack')
      }
    } finally {
      this.#renewing = false
      this.#scheduleLeaseRenewal()
    }
  }

  /**
   * Cancel the subscription (`basic.cancel`) and requeue every delivery not handed to the worker
   * (including delayed messages held for lease renewal), so other consumers get them now; the
   * channel stays open for the worker to settle what it holds.
   */
  async stopReceiving(): Promise<void> {
    if (this.#closed || !this.#receiving) return
    this.#receiving = false
    this.#arrived.notify()
    if (this.#leaseTimer) clearTimeout(this.#leaseTimer)
    this.#leaseTimer = undefined
    const sub = this.#sub
    if (sub?.open && sub.consumerTag !== undefined) {
      try {
        await sub.channel.cancel(sub.consumerTag)
      } catch (error) {
        // The channel is gone: what it delivered is back in the queue already.
        this.#logger.debug(`Could not cancel the consumer of ${this.queueName}`, errorMeta(error))
      }
    }
    const held = [...this.#ready, ...this.#leaseHeld]
    this.#ready = []
    this.#leaseHeld = []
    for (const proxy of held) {
      if (this.#isLive(proxy.delivery)) this.#settleDelivery(proxy.delivery, 'requeue', proxy.messageId)
    }
    if (held.length > 0) this.#host.notifySettled()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#closing.abort()
    this.#arrived.notify()
    if (this.#leaseTimer) clearTimeout(this.#leaseTimer)
    this.#leaseTimer = undefined
    const sub = this.#sub
    if (sub?.open) {
      // Closing the channel returns every unacknowledged delivery to its queue.
      await sub.channel.close().catch(() => undefined)
      this.#endSubscription(sub)
    }
    await this.#loop?.catch(() => undefined)
    this.#ready = []
    this.#leaseHeld = []
    this.#host.consumerClosed(this)
  }
}

function asRabbitProxy(message: MessageProxy): RabbitmqMessageProxy {
  if (!(message instanceof RabbitmqMessageProxy)) {
    throw new TypeError('This message was not delivered by a RabbitmqConsumer')
  }
  return message
}
