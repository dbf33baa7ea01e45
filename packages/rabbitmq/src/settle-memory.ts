/** What the worker decided for a delivery. */
export type SettleAction = 'ack' | 'nack'

interface Entry {
  readonly body: Buffer
  readonly action: SettleAction
  readonly expires: number
}

/**
 * Remembers, for a while, messages the worker finished whose ack or nack may not have reached
 * RabbitMQ because the channel died (the ack came after the channel closed, or was still in the
 * socket buffer). When RabbitMQ redelivers such a message (`redelivered` set, same message id,
 * byte-identical body), the consumer applies the remembered decision instead of running the
 * actor a second time. Bounded in size and age; forgetting only costs a duplicate run, which
 * at-least-once delivery allows anyway.
 */
export class SettleMemory {
  readonly #entries = new Map<string, Entry[]>()
  readonly #ttl: number
  readonly #capacity: number
  #size = 0

  constructor(ttl = 10 * 60_000, capacity = 20_000) {
    this.#ttl = ttl
    this.#capacity = capacity
  }

  get size(): number {
    return this.#size
  }

  remember(messageId: string, body: Buffer, action: SettleAction): void {
    const now = Date.now()
    let list = this.#entries.get(messageId)
    if (!list) {
      list = []
      this.#entries.set(messageId, list)
    }
    list.push({ body, action, expires: now + this.#ttl })
    this.#size++
    this.#evict(now)
  }

  /** The remembered decision for this exact message, which is then forgotten. */
  take(messageId: string, body: Buffer): SettleAction | undefined {
    const list = this.#entries.get(messageId)
    if (!list) return undefined
    const now = Date.now()
    const index = list.findIndex((e) => e.expires > now && e.body.equals(body))
    if (index < 0) return undefined
    const [entry] = list.splice(index, 1)
    this.#size--
    if (list.length === 0) this.#entries.delete(messageId)
    return entry?.action
  }

  #evict(now: number): void {
    // Map iteration is insertion order, so the oldest ids come first.
    for (const [id, list] of this.#entries) {
      if (this.#size <= this.#capacity && (list[0]?.expires ?? 0) > now) break
      this.#size -= list.length
      this.#entries.delete(id)
    }
  }
}
