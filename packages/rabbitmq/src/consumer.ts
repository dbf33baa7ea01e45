import {
  Notifier,
  errorMeta,
  qName,
  sleep,
  type Consumer,
  type Encoder,
  type Logger,
  type Message,
  type MessageProxy,
  type ReceiveOptions,
} from '@tq/core'
import { Backoff, OutageLog, decodeOrReport, foreignMessageError } from '@tq/core/adapter'
import type { Channel, ConsumeMessage } from 'amqplib'
import { classifyAmqpError } from './classify-error.ts'
import type { ManagedConnection } from './connection.ts'
import { DelayLeases } from './delay-lease.ts'
import {
  RabbitmqMessageProxy,
  deliveryOfProxy,
  isLive,
  newSubscription,
  proxyFor,
  rebindProxy,
  type Delivery,
  type Subscription,
} from './delivery.ts'
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

const RECENT_SETTLES = 1000

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
 *   (Dramatiq issue #827; see `DelayLeases`). The worker only gets it once its eta is less than
 *   `delayLease` away.
 * - A message this consumer did not deliver is refused (`InvalidArgumentError`).
 */
export class RabbitmqConsumer implements Consumer {
  readonly queueName: string
  readonly prefetch: number
  readonly timeout: number
  readonly delayLease: number
  readonly #host: ConsumerHost
  readonly #logger: Logger
  readonly #canonical: string
  /** Delayed messages held for lease renewal; only on a delay queue with a finite lease. */
  readonly #leases: DelayLeases | undefined
  readonly #restart: Backoff
  readonly #outage: OutageLog
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
  /** The log meta of an undecodable delivery, reused: most deliveries decode. */
  readonly #decodeMeta = { deliveryTag: 0 }

  constructor(host: ConsumerHost, queueName: string, options: RabbitmqConsumerOptions) {
    this.#host = host
    this.queueName = queueName
    this.prefetch = options.prefetch
    this.timeout = options.timeout
    this.delayLease = options.delayLease
    this.#canonical = qName(queueName)
    this.#logger = host.logger.child({ component: 'rabbitmq-consumer', queue: queueName })
    this.#restart = new Backoff({ initial: options.restartDelay, max: options.maxRestartDelay })
    this.#outage = new OutageLog(this.#logger)
    if (queueName.endsWith('.DQ') && Number.isFinite(options.delayLease)) {
      this.#leases = new DelayLeases(options.delayLease, {
        queueName,
        canonical: this.#canonical,
        logger: this.#logger,
        retryDelay: options.restartDelay,
        republish: (items) => host.republish(items),
        renewed: (proxy) => {
          const delivery = deliveryOfProxy(proxy)
          if (isLive(delivery)) this.#settleDelivery(delivery, 'ack', proxy.messageId)
          else this.#memory.remember(proxy.messageId, proxy.body, 'ack')
        },
      })
    }
  }

  /** Deliveries this consumer holds that are not settled (for `join`). */
  get outstanding(): number {
    return (this.#sub?.outstanding.size ?? 0) + this.#staleCount
  }

  /** Delayed messages held here for lease renewal (not yet handed to the worker). */
  get leaseHeld(): number {
    return this.#leases?.size ?? 0
  }

  /** Times a held delayed message was re-published to renew its lease. */
  get leaseRenewals(): number {
    return this.#leases?.renewals ?? 0
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
    while (!this.#closed && this.#receiving) {
      let sub: Subscription | undefined
      try {
        const model = await this.#host.consumeConnection.get(this.#closing.signal)
        if (this.#closed) break
        const channel = await model.createChannel()
        sub = newSubscription(this, ++this.#subCount, channel)
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
        if (this.#outage.failing) this.#outage.recovered(`Consuming ${this.queueName} again`)
        else if (sub.id > 1) this.#logger.info(`Consuming ${this.queueName} again`)
        this.#restart.reset()
        if (this.#closed) break
        await sub.ended
      } catch (error) {
        if (this.#closed) break
        const classified = classifyAmqpError(error)
        const meta = errorMeta(classified)
        if (classified.retryable) this.#outage.failed(`Could not consume ${this.queueName}; retrying`, meta)
        else this.#logger.error(`Could not consume ${this.queueName}; retrying`, meta)
        if (sub) {
          this.#endSubscription(sub)
          await sub.channel.close().catch(() => undefined)
        }
        await sleep(this.#restart.next(), this.#closing.signal)
      } finally {
        // Closed while subscribing: don't leave the channel (and its deliveries) behind.
        if (this.#closed && sub?.open) {
          await sub.channel.close().catch(() => undefined)
          this.#endSubscription(sub)
        }
      }
    }
  }

  /** The channel is gone: what it delivered comes back from the server. */
  #endSubscription(sub: Subscription): void {
    if (!sub.open) return
    sub.open = false
    for (const r of sub.recent) this.#memory.remember(r.messageId, r.body, r.action)
    sub.recent.length = 0
    this.#ready = this.#ready.filter((p) => deliveryOfProxy(p).sub !== sub)
    this.#leases?.dropSubscription(sub)
    for (const proxy of this.#handedOut) if (deliveryOfProxy(proxy).sub === sub) this.#addStale(proxy)
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
    const decoded = decodeOrReport(raw.content, this.#host.encoder, this.#logger, this.#metaOf(raw))
    if (!decoded.ok) {
      this.#settleDelivery(delivery, 'nack', undefined)
      return
    }
    const message = decoded.message
    if (raw.fields.redelivered && this.#matchRedelivery(message, delivery)) return
    if (!this.#receiving) {
      // Delivered before the server confirmed the cancel: straight back to the queue.
      this.#settleDelivery(delivery, 'requeue', message.messageId)
      this.#host.notifySettled()
      return
    }
    const proxy = proxyFor(message, delivery)
    if (this.#leases?.hold(proxy, delivery.deliveredAt)) return
    this.#ready.push(proxy)
    this.#arrived.notify()
  }

  /** What the log entry of an undecodable delivery names it by. */
  #metaOf(raw: ConsumeMessage): Record<string, unknown> {
    // The AMQP message-id property (if the producer set one) identifies it in the dead-letter queue.
    const amqpMessageId: unknown = raw.properties.messageId
    if (typeof amqpMessageId === 'string') return { amqpMessageId, deliveryTag: raw.fields.deliveryTag }
    this.#decodeMeta.deliveryTag = raw.fields.deliveryTag
    return this.#decodeMeta
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
        rebindProxy(proxy, delivery)
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

  /** `message` as one of this consumer's deliveries; `InvalidArgumentError` for any other. */
  #own(message: MessageProxy): RabbitmqMessageProxy {
    if (!(message instanceof RabbitmqMessageProxy) || deliveryOfProxy(message).sub.owner !== this) {
      throw foreignMessageError('RabbitmqConsumer', this.queueName, message)
    }
    return message
  }

  #settle(message: MessageProxy, action: SettleAction): void {
    const proxy = this.#own(message)
    this.#handedOut.delete(proxy)
    this.#removeStale(proxy)
    const delivery = deliveryOfProxy(proxy)
    if (!isLive(delivery)) {
      this.#memory.remember(proxy.messageId, proxy.body, action)
      this.#logger.debug(`Ignoring the ${action} of a delivery from a closed channel; RabbitMQ delivers it again`, {
        messageId: proxy.messageId,
      })
      this.#host.notifySettled()
      return
    }
    this.#settleDelivery(delivery, action, proxy.messageId)
  }

  async ack(message: MessageProxy): Promise<void> {
    this.#settle(message, 'ack')
  }

  async nack(message: MessageProxy): Promise<void> {
    this.#settle(message, 'nack')
  }

  async requeue(messages: readonly MessageProxy[]): Promise<void> {
    const proxies = messages.map((message) => this.#own(message))
    for (const proxy of proxies) {
      this.#handedOut.delete(proxy)
      this.#removeStale(proxy)
      // A delivery from a dead channel is back in the queue already.
      const delivery = deliveryOfProxy(proxy)
      if (isLive(delivery)) this.#settleDelivery(delivery, 'requeue', proxy.messageId)
    }
    this.#host.notifySettled()
  }

  // ---- stopping ----

  /**
   * Cancel the subscription (`basic.cancel`) and requeue every delivery not handed to the worker
   * (including delayed messages held for lease renewal), so other consumers get them now; the
   * channel stays open for the worker to settle what it holds.
   */
  async stopReceiving(): Promise<void> {
    if (this.#closed || !this.#receiving) return
    this.#receiving = false
    this.#arrived.notify()
    const leaseHeld = this.#leases?.stop() ?? []
    const sub = this.#sub
    if (sub?.open && sub.consumerTag !== undefined) {
      try {
        await sub.channel.cancel(sub.consumerTag)
      } catch (error) {
        // The channel is gone: what it delivered is back in the queue already.
        this.#logger.debug(`Could not cancel the consumer of ${this.queueName}`, errorMeta(error))
      }
    }
    const held = [...this.#ready, ...leaseHeld, ...(this.#leases?.stop() ?? [])]
    this.#ready = []
    for (const proxy of held) {
      const delivery = deliveryOfProxy(proxy)
      if (isLive(delivery)) this.#settleDelivery(delivery, 'requeue', proxy.messageId)
    }
    if (held.length > 0) this.#host.notifySettled()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#closing.abort()
    this.#arrived.notify()
    this.#leases?.stop()
    const sub = this.#sub
    if (sub?.open) {
      // Closing the channel returns every unacknowledged delivery to its queue.
      await sub.channel.close().catch(() => undefined)
      this.#endSubscription(sub)
    }
    await this.#loop?.catch(() => undefined)
    this.#ready = []
    this.#leases?.stop()
    this.#host.consumerClosed(this)
  }
}
