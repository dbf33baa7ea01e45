import { MessageProxy, type Message } from '@tq/core'
import type { Channel, ConsumeMessage } from 'amqplib'
import type { SettleAction } from './settle-memory.ts'

/** One consume subscription: a channel, its consumer tag and its unsettled deliveries. */
export interface Subscription {
  readonly id: number
  /** The consumer that opened it: a delivery is settled only through its own consumer. */
  readonly owner: object
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

/** One AMQP delivery: the subscription (channel) it came on and when. */
export interface Delivery {
  readonly sub: Subscription
  readonly raw: ConsumeMessage
  readonly deliveredAt: number
}

/** A new subscription on `channel`, numbered `id`. */
export function newSubscription(owner: object, id: number, channel: Channel): Subscription {
  let end!: () => void
  const ended = new Promise<void>((resolve) => (end = resolve))
  return { id, owner, channel, open: true, consumerTag: undefined, outstanding: new Map(), recent: [], ended, end }
}

/** Whether the delivery can still be settled: its channel is open and nothing settled it yet. */
export function isLive(delivery: Delivery): boolean {
  return delivery.sub.open && delivery.sub.outstanding.get(delivery.raw.fields.deliveryTag) === delivery
}

// The proxy's delivery is the consumer's business, not its users': these reach the private
// field from this package's modules without making it a public (internal) property.
let create!: (message: Message, body: Buffer, delivery: Delivery) => RabbitmqMessageProxy
let deliveryOf!: (proxy: RabbitmqMessageProxy) => Delivery
let rebind!: (proxy: RabbitmqMessageProxy, delivery: Delivery) => void

/** A delivery from RabbitMQ, as the worker sees it. */
export class RabbitmqMessageProxy<R = unknown> extends MessageProxy<R> {
  /** The body exactly as it was delivered. */
  readonly body: Buffer
  /** The delivery this message is settled through (re-bound after a reconnect). */
  #delivery: Delivery

  static {
    create = (message, body, delivery) => new RabbitmqMessageProxy(message, body, delivery)
    deliveryOf = (proxy) => proxy.#delivery
    rebind = (proxy, delivery) => {
      proxy.#delivery = delivery
      proxy.redelivered = true
    }
  }

  private constructor(message: Message<R>, body: Buffer, delivery: Delivery) {
    super(message)
    this.body = body
    this.#delivery = delivery
    this.redelivered = delivery.raw.fields.redelivered
  }

  /** The AMQP delivery tag (valid on the channel that delivered it). */
  get deliveryTag(): number {
    return this.#delivery.raw.fields.deliveryTag
  }
}

/** The proxy the worker gets for a decoded delivery. */
export function proxyFor(message: Message, delivery: Delivery): RabbitmqMessageProxy {
  return create(message, delivery.raw.content, delivery)
}

/** The delivery a proxy is settled through. */
export function deliveryOfProxy(proxy: RabbitmqMessageProxy): Delivery {
  return deliveryOf(proxy)
}

/** Re-bind a proxy the worker holds to the redelivery of its message (the old channel died). */
export function rebindProxy(proxy: RabbitmqMessageProxy, delivery: Delivery): void {
  rebind(proxy, delivery)
}
