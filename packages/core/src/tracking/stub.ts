import type {
  CancelMode,
  CancelNotice,
  CancelSubscription,
  TrackedMessage,
  TrackingBackend,
  TrackingPage,
  TrackingQuery,
  ScheduleMark,
  ThroughputCount,
  TrackingUpdate,
  UniqueClaim,
  WorkerHeartbeat,
} from './backend.ts'
import { applyUpdate, publicRecord, type StoredRecord } from './apply.ts'
import { decodeCursor, encodeCursor, isAfter, matches, newestFirst, pageSize } from './query.ts'

const MINUTE = 60_000
/** How long per-minute throughput counts are kept. */
const THROUGHPUT_KEPT = 2 * 3_600_000

/** A value that lapses at `expiresAt` (Unix ms). */
interface Expiring<T> {
  value: T
  expiresAt: number
}

/**
 * An in-memory `TrackingBackend`, for tests and the StubBroker: its cancel channel reaches the
 * workers of this process (share one instance between the `Tracking` middleware and `Admin`).
 */
export class StubTrackingBackend implements TrackingBackend {
  readonly #records = new Map<string, StoredRecord>()
  readonly #cancels = new Map<string, Expiring<CancelMode>>()
  readonly #listeners = new Set<(notice: CancelNotice) => void>()
  readonly #unique = new Map<string, Expiring<string>>()
  readonly #workers = new Map<string, Expiring<WorkerHeartbeat>>()
  /** `<minute>\0<queue>` → counts. */
  readonly #throughput = new Map<string, ThroughputCount>()
  readonly #leases = new Map<string, Expiring<string>>()
  readonly #schedules = new Map<string, ScheduleMark>()
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

  async requestCancel(messageId: string, mode: CancelMode, ttl: number): Promise<void> {
    this.#cancels.set(messageId, { value: mode, expiresAt: Date.now() + ttl })
    this.#notify({ messageId, mode })
  }

  async clearCancel(messageId: string): Promise<void> {
    this.#cancels.delete(messageId)
    this.#notify({ messageId, mode: 'clear' })
  }

  async subscribeCancels(listener: (notice: CancelNotice) => void): Promise<CancelSubscription> {
    const pending = new Map<string, CancelMode>()
    for (const [id, mode] of live(this.#cancels)) pending.set(id, mode)
    this.#listeners.add(listener)
    return {
      pending,
      close: async () => {
        this.#listeners.delete(listener)
      },
    }
  }

  async claimUnique(key: string, messageId: string, ttl: number): Promise<string | undefined> {
    const held = this.#unique.get(key)
    if (held && held.expiresAt > Date.now() && held.value !== messageId) return held.value
    if (!held || held.expiresAt <= Date.now()) this.#unique.set(key, { value: messageId, expiresAt: Date.now() + ttl })
    return undefined
  }

  async releaseUnique(claims: readonly UniqueClaim[]): Promise<void> {
    for (const { key, messageId } of claims) if (this.#unique.get(key)?.value === messageId) this.#unique.delete(key)
  }

  async heartbeat(worker: WorkerHeartbeat, ttl: number): Promise<void> {
    this.#workers.set(worker.id, { value: structuredClone(worker), expiresAt: Date.now() + ttl })
  }

  async removeWorker(workerId: string): Promise<void> {
    this.#workers.delete(workerId)
  }

  async workers(): Promise<WorkerHeartbeat[]> {
    return [...live(this.#workers)]
      .map(([, worker]) => structuredClone(worker))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  async addThroughput(counts: readonly ThroughputCount[]): Promise<void> {
    for (const count of counts) {
      const key = `${count.minute}\0${count.queue}`
      const held = this.#throughput.get(key)
      if (held) {
        held.processed += count.processed
        held.failed += count.failed
      } else this.#throughput.set(key, { ...count })
    }
    const cutoff = Date.now() - THROUGHPUT_KEPT
    for (const [key, count] of this.#throughput) if (count.minute < cutoff) this.#throughput.delete(key)
  }

  async throughput(since: number): Promise<ThroughputCount[]> {
    return [...this.#throughput.values()]
      .filter((count) => count.minute + MINUTE > since)
      .map((count) => ({ ...count }))
      .sort((a, b) => a.minute - b.minute || (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0))
  }

  async acquireLease(name: string, owner: string, ttl: number): Promise<boolean> {
    const held = this.#leases.get(name)
    const now = Date.now()
    if (held && held.expiresAt > now && held.value !== owner) return false
    this.#leases.set(name, { value: owner, expiresAt: now + ttl })
    return true
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    if (this.#leases.get(name)?.value === owner) this.#leases.delete(name)
  }

  async scheduleMarks(ids: readonly string[]): Promise<Map<string, ScheduleMark>> {
    const marks = new Map<string, ScheduleMark>()
    for (const id of ids) {
      const mark = this.#schedules.get(id)
      if (mark) marks.set(id, { ...mark })
    }
    return marks
  }

  async advanceSchedule(id: string, mark: ScheduleMark): Promise<boolean> {
    const stored = this.#schedules.get(id)
    if (stored && stored.through >= mark.through) return false
    this.#schedules.set(id, { ...mark })
    return true
  }

  #notify(notice: CancelNotice): void {
    // As over a network: listeners hear it after the call that sent it.
    for (const listener of this.#listeners) queueMicrotask(() => listener(notice))
  }
}

/** The entries of `map` that have not lapsed (dropping those that have). */
function* live<T>(map: Map<string, Expiring<T>>): Generator<[string, T]> {
  const now = Date.now()
  for (const [key, entry] of map) {
    if (entry.expiresAt <= now) map.delete(key)
    else yield [key, entry.value]
  }
}
