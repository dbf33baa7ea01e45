import type { PgPool } from './pg-types.ts'

interface Pending {
  ids: string[]
  waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }>
}

/** Most ids in one ack statement. */
const MAX_BATCH = 2000

/**
 * Acks of one worker, coalesced: while one DELETE is in flight the next acks gather, and go
 * together in the next statement (one round trip for many acks under load, no wait when idle).
 */
export class AckBatcher {
  readonly #pool: PgPool
  readonly #text: string
  readonly #name: string
  readonly #workerId: string
  #pending: Pending = { ids: [], waiters: [] }
  #inFlight: Promise<void> | undefined
  #scheduled = false
  /** Called with how many acked rows were no longer claimed by this worker. */
  readonly #onLost: (lost: number) => void

  constructor(options: { pool: PgPool; text: string; name: string; workerId: string; onLost: (lost: number) => void }) {
    this.#pool = options.pool
    this.#text = options.text
    this.#name = options.name
    this.#workerId = options.workerId
    this.#onLost = options.onLost
  }

  ack(rowId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.ids.push(rowId)
      this.#pending.waiters.push({ resolve, reject })
      this.#schedule()
    })
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#flush()
    })
  }

  #flush(): void {
    if (this.#pending.ids.length === 0) return
    const batch = this.#pending
    this.#pending = { ids: [], waiters: [] }
    if (batch.ids.length > MAX_BATCH) {
      this.#pending = { ids: batch.ids.splice(MAX_BATCH), waiters: batch.waiters.splice(MAX_BATCH) }
    }
    this.#inFlight = this.#pool
      .query({ name: this.#name, text: this.#text, values: [batch.ids, this.#workerId] })
      .then(
        (result) => {
          const lost = batch.ids.length - (result.rowCount ?? batch.ids.length)
          if (lost > 0) this.#onLost(lost)
          for (const w of batch.waiters) w.resolve()
        },
        (error: unknown) => {
          for (const w of batch.waiters) w.reject(error)
        },
      )
      .finally(() => {
        this.#inFlight = undefined
        if (this.#pending.ids.length > 0) this.#flush()
      })
  }

  /** Resolves once every ack handed in so far was sent (or failed). */
  async drain(): Promise<void> {
    while (this.#inFlight || this.#pending.ids.length > 0 || this.#scheduled) {
      if (this.#inFlight) await this.#inFlight
      else await new Promise((resolve) => setImmediate(resolve))
    }
  }
}
