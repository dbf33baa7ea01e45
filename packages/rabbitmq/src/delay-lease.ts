import { errorMeta, type Logger } from '@tq/core'
import { OutageLog } from '@tq/core/adapter'
import { deliveryOfProxy, isLive, type RabbitmqMessageProxy, type Subscription } from './delivery.ts'
import type { PublishItem } from './publisher.ts'

/** What the lease holder needs from its consumer. */
export interface LeaseHost {
  /** The delay queue (`q.DQ`) the held messages are re-published to. */
  readonly queueName: string
  /** Its canonical queue. */
  readonly canonical: string
  readonly logger: Logger
  /** Milliseconds before retrying a renewal that failed. */
  readonly retryDelay: number
  /** Publish messages again, bypassing middleware. */
  republish(items: readonly PublishItem[]): Promise<void>
  /** Settle the old delivery of a renewed message (its copy is on the delay queue now). */
  renewed(proxy: RabbitmqMessageProxy): void
}

/**
 * Delay leases (Dramatiq #827): on a delay queue, a message whose eta is further away than
 * `lease` is held here, not handed to the worker, and re-published to the delay queue (then its
 * old delivery acked) every `lease`, so no delivery stays unacknowledged long enough to hit
 * RabbitMQ's `consumer_timeout`. The worker only gets it once its eta is less than `lease` away.
 */
export class DelayLeases {
  readonly lease: number
  /** Times a held delayed message was re-published to renew its lease. */
  renewals = 0
  readonly #host: LeaseHost
  readonly #outage: OutageLog
  /** Held deliveries, in arrival order. */
  #held: RabbitmqMessageProxy[] = []
  #timer: NodeJS.Timeout | undefined
  #renewing = false
  #retryAt = 0
  #stopped = false

  constructor(lease: number, host: LeaseHost) {
    this.lease = lease
    this.#host = host
    this.#outage = new OutageLog(host.logger)
  }

  /** Delayed messages held for lease renewal. */
  get size(): number {
    return this.#held.length
  }

  /** Hold `proxy` if it is due later than a lease from its delivery; false to hand it over. */
  hold(proxy: RabbitmqMessageProxy, deliveredAt: number): boolean {
    const eta = proxy.options.eta
    if (typeof eta !== 'number' || eta - deliveredAt <= this.lease) return false
    this.#held.push(proxy)
    this.#schedule()
    return true
  }

  /** Forget what a dead subscription delivered: it is back in the queue already. */
  dropSubscription(sub: Subscription): void {
    this.#held = this.#held.filter((p) => deliveryOfProxy(p).sub !== sub)
  }

  /** Stop renewing and hand back every held message (to be requeued or dropped). */
  stop(): RabbitmqMessageProxy[] {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    const held = this.#held
    this.#held = []
    return held
  }

  #schedule(): void {
    if (this.#timer || this.#renewing || this.#stopped) return
    const first = this.#held[0]
    if (!first) return
    const now = Date.now()
    const wait = Math.max(0, deliveryOfProxy(first).deliveredAt + this.lease - now, this.#retryAt - now)
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#renew()
    }, wait)
    this.#timer.unref?.()
  }

  /** Re-publish every held delayed message whose lease is up, then ack its old delivery. */
  async #renew(): Promise<void> {
    this.#renewing = true
    try {
      const now = Date.now()
      const due: RabbitmqMessageProxy[] = []
      while (this.#held.length > 0) {
        const first = this.#held[0] as RabbitmqMessageProxy
        if (deliveryOfProxy(first).deliveredAt + this.lease > now) break
        this.#held.shift()
        // A delivery whose channel died is back in the queue already.
        if (isLive(deliveryOfProxy(first))) due.push(first)
      }
      if (due.length === 0 || this.#stopped) return
      try {
        await this.#host.republish(due.map((proxy) => this.#item(proxy)))
      } catch (error) {
        // Keep holding them and try again soon. Should the channel die meanwhile (even by
        // consumer_timeout), RabbitMQ redelivers them: late at worst, never early or lost.
        this.#outage.failed(`Could not renew the lease of ${due.length} delayed message(s); retrying`, errorMeta(error))
        this.#held.unshift(...due.filter((p) => isLive(deliveryOfProxy(p))))
        this.#retryAt = Date.now() + this.#host.retryDelay
        return
      }
      this.#retryAt = 0
      this.#outage.recovered(`Renewing the leases of delayed messages on ${this.#host.queueName} again`)
      for (const proxy of due) {
        this.renewals++
        this.#host.logger.debug('Renewed the lease of a delayed message (re-published to the delay queue)', {
          messageId: proxy.messageId,
          heldFor: Date.now() - deliveryOfProxy(proxy).deliveredAt,
          eta: proxy.options.eta,
        })
        this.#host.renewed(proxy)
      }
    } finally {
      this.#renewing = false
      this.#schedule()
    }
  }

  #item(proxy: RabbitmqMessageProxy): PublishItem {
    const priority: unknown = deliveryOfProxy(proxy).raw.properties.priority
    return {
      routingKey: this.#host.queueName,
      canonical: this.#host.canonical,
      body: proxy.body,
      priority: typeof priority === 'number' ? priority : undefined,
    }
  }
}
