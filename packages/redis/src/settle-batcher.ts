import type { HeldIds } from './fetch-gate.ts'
import type { QueueKeys } from './keys.ts'
import type { RunScript } from './scripts.ts'

/** An ack or nack waiting for its script call. */
export interface PendingSettle {
  readonly id: Buffer
  readonly key: string
  resolve(): void
  reject(error: unknown): void
}

/** Ids per script call. */
export const BATCH = 1000

export interface SettleBatcherOptions {
  readonly keys: QueueKeys
  readonly run: RunScript
  /** The consumer's held ids: an id is forgotten once Redis confirmed it settled. */
  readonly held: HeldIds
  /** Whether acks alone should wait: a fetch is in flight (and will carry them) and the consumer is open. */
  readonly fetchWillCarry: () => boolean
  /** Something was settled in Redis (`join()` looks again). */
  readonly settled: () => void
}

/**
 * A consumer's acks and nacks, batched: everything settled in one turn of the event loop goes
 * out in one script call per kind (and 1000 ids), and what arrives while a batch is in flight
 * goes in the next one. Acks alone wait for a fetch in flight, which carries them (`take()`).
 */
export class SettleBatcher {
  readonly #options: SettleBatcherOptions
  #acks: PendingSettle[] = []
  #nacks: PendingSettle[] = []
  #scheduled = false
  #deferred = false
  #flushing: Promise<void> | undefined

  constructor(options: SettleBatcherOptions) {
    this.#options = options
  }

  /** The flush in flight, if any. */
  get flushing(): Promise<void> | undefined {
    return this.#flushing
  }

  ack(id: Buffer, key: string): Promise<void> {
    return this.#add(this.#acks, id, key)
  }

  nack(id: Buffer, key: string): Promise<void> {
    return this.#add(this.#nacks, id, key)
  }

  #add(list: PendingSettle[], id: Buffer, key: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      list.push({ id, key, resolve, reject })
      this.#schedule()
    })
  }

  /** Up to `BATCH` pending acks, for a fetch to carry (settle them with `settle(acks, fetch)`). */
  take(): PendingSettle[] {
    return this.#acks.length === 0 ? [] : this.#acks.splice(0, BATCH)
  }

  /** A fetch landed: acks that waited for it and were not carried go out now. */
  fetchLanded(): void {
    if (!this.#deferred) return
    this.#deferred = false
    if (this.#acks.length > 0) this.#schedule()
  }

  /** Resolve `ops` once `call` succeeded (their ids are no longer held), or reject them. */
  async settle(ops: PendingSettle[], call: Promise<unknown>): Promise<void> {
    try {
      await call
    } catch (error) {
      // Still held: a retried ack finds the id, and reconcile leaves it alone.
      for (const op of ops) op.reject(error)
      return
    }
    const held = this.#options.held.ids
    for (const op of ops) {
      held.delete(op.key)
      op.resolve()
    }
    this.#options.settled()
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return
    this.#scheduled = true
    // Everything settled in this turn of the event loop goes out in one call.
    setImmediate(() => {
      this.#scheduled = false
      // Acks alone (no nacks) wait for the fetch in flight to land: the next fetch carries them,
      // or, if none starts, the flush scheduled when it lands sends them.
      if (this.#nacks.length === 0 && this.#options.fetchWillCarry()) {
        this.#deferred = true
        return
      }
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = undefined
        // Ops that arrived after the last batch was taken but before this ran.
        if (this.#acks.length > 0 || this.#nacks.length > 0) this.#schedule()
      })
    })
  }

  async #flush(): Promise<void> {
    const { keys, run } = this.#options
    // Ops that arrive while a batch is in flight go out together in the next one.
    while (this.#acks.length > 0 || this.#nacks.length > 0) {
      const acks = this.#acks
      const nacks = this.#nacks
      this.#acks = []
      this.#nacks = []
      const calls: Promise<void>[] = []
      for (let i = 0; i < acks.length; i += BATCH) {
        const chunk = acks.slice(i, i + BATCH)
        calls.push(this.settle(chunk, run('ack', [keys.acks, keys.msgs], ids(chunk))))
      }
      for (let i = 0; i < nacks.length; i += BATCH) {
        const chunk = nacks.slice(i, i + BATCH)
        calls.push(this.settle(chunk, run('nack', [keys.acks, keys.msgs, keys.xq, keys.xqMsgs], ids(chunk))))
      }
      await Promise.all(calls)
    }
  }
}

const ids = (ops: readonly PendingSettle[]): Buffer[] => ops.map((op) => op.id)
