import type { TrackedMessage, TrackingBackend, TrackingPage, TrackingQuery, TrackingUpdate } from './backend.ts'
import { applyUpdate, publicRecord, type StoredRecord } from './apply.ts'
import { decodeCursor, encodeCursor, isAfter, matches, newestFirst, pageSize } from './query.ts'

/** An in-memory `TrackingBackend`, for tests and the StubBroker. */
export class StubTrackingBackend implements TrackingBackend {
  readonly #records = new Map<string, StoredRecord>()
  #sweptAt = -Infinity

  /** How many records it holds. */
  get size(): number {
    return this.#records.size
  }

  async write(updates: readonly TrackingUpdate[], retention: number): Promise<void> {
    for (const update of updates) {
      this.#records.set(update.messageId, applyUpdate(this.#records.get(update.messageId), update))
    }
    // Expired records go at most once a second (or when the retention is shorter): not a scan per write.
    const now = Date.now()
    if (now - this.#sweptAt < Math.min(1000, retention)) return
    this.#sweptAt = now
    const cutoff = now - retention
    for (const [id, record] of this.#records) if (record.updatedAt < cutoff) this.#records.delete(id)
  }

  async get(messageId: string): Promise<TrackedMessage | undefined> {
    const record = this.#records.get(messageId)
    return record && publicRecord(structuredClone(record))
  }

  async list(query: TrackingQuery = {}): Promise<TrackingPage> {
    const limit = pageSize(query)
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
    const found = [...this.#records.values()]
      .filter((r) => (after === undefined || isAfter(r, after)) && matches(r, query))
      .sort(newestFirst)
    const items = found.slice(0, limit).map((r) => publicRecord(structuredClone(r)))
    const last = items.at(-1)
    return found.length > limit && last ? { items, cursor: encodeCursor(last) } : { items }
  }

  async delete(messageId: string): Promise<void> {
    this.#records.delete(messageId)
  }
}
