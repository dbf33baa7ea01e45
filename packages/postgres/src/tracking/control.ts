import {
  InvalidArgumentError,
  type ScheduleMark,
  type ThroughputCount,
  type UniqueClaim,
  type WorkerHeartbeat,
} from '@tq/core'
import type { PgQueryable } from '../pg-types.ts'
import { numberOf } from './codec.ts'

const MINUTE = 60_000
/** How long per-minute throughput counts are kept (the contract asks for 2 hours at least). */
const THROUGHPUT_KEPT = 3 * 3_600_000
/** Most lapsed rows of each table one chore run deletes. */
const CHORE_LIMIT = 1000

/** A ttl in ms: finite and not negative. */
export function checkTtl(what: string, ttl: number): number {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw new InvalidArgumentError(`${what} ttl must be a finite number of ms >= 0, got ${String(ttl)}`)
  }
  return ttl
}

/** `clock_timestamp()` plus the ms of parameter `$n`. */
const expiry = (n: number): string => `clock_timestamp() + $${n}::float8 * interval '1 ms'`

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Unique keys, worker heartbeats, throughput counts, the Scheduler's leases and schedule marks:
 * each operation one statement, the atomic ones an `INSERT … ON CONFLICT … DO UPDATE … WHERE`
 * that row locks serialize. Expiries are the server's clock.
 */
export class TrackingControl {
  readonly #db: PgQueryable
  readonly #s: string

  constructor(db: PgQueryable, schema: string) {
    this.#db = db
    this.#s = schema
  }

  async claimUnique(key: string, messageId: string, ttl: number): Promise<string | undefined> {
    checkTtl('A unique key', ttl)
    // Always an update on a conflict (a no-op one unless the key lapsed): RETURNING then names the holder.
    const { rows } = await this.#db.query<{ message_id: string }>({
      text: `INSERT INTO ${this.#s}.tracking_unique AS u (key, message_id, expires_at) VALUES ($1, $2, ${expiry(3)})
ON CONFLICT (key) DO UPDATE SET
  message_id = CASE WHEN u.expires_at <= clock_timestamp() THEN EXCLUDED.message_id ELSE u.message_id END,
  expires_at = CASE WHEN u.expires_at <= clock_timestamp() THEN EXCLUDED.expires_at ELSE u.expires_at END
RETURNING message_id`,
      values: [key, messageId, ttl],
    })
    const holder = rows[0]?.message_id
    return holder === undefined || holder === messageId ? undefined : holder
  }

  async releaseUnique(claims: readonly UniqueClaim[]): Promise<void> {
    if (claims.length === 0) return
    await this.#db.query({
      text: `DELETE FROM ${this.#s}.tracking_unique u USING unnest($1::text[], $2::text[]) AS c(key, message_id)
WHERE u.key = c.key AND u.message_id = c.message_id`,
      values: [claims.map((c) => c.key), claims.map((c) => c.messageId)],
    })
  }

  async heartbeat(worker: WorkerHeartbeat, ttl: number): Promise<void> {
    checkTtl('A heartbeat', ttl)
    await this.#db.query({
      text: `INSERT INTO ${this.#s}.tracking_workers (id, heartbeat, expires_at) VALUES ($1, $2::json, ${expiry(3)})
ON CONFLICT (id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat, expires_at = EXCLUDED.expires_at`,
      values: [worker.id, JSON.stringify(worker), ttl],
    })
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.#db.query({ text: `DELETE FROM ${this.#s}.tracking_workers WHERE id = $1`, values: [workerId] })
  }

  async workers(): Promise<WorkerHeartbeat[]> {
    const { rows } = await this.#db.query<{ id: string; heartbeat: string }>(
      `SELECT id, heartbeat::text AS heartbeat FROM ${this.#s}.tracking_workers WHERE expires_at > clock_timestamp()`,
    )
    const live: WorkerHeartbeat[] = []
    for (const row of rows) {
      try {
        const worker = JSON.parse(row.heartbeat) as WorkerHeartbeat
        if (typeof worker === 'object' && worker !== null && worker.id === row.id) live.push(worker)
      } catch {
        // Not a heartbeat: left out (it lapses like the others).
      }
    }
    return live.sort((a, b) => byCodePoint(a.id, b.id))
  }

  async addThroughput(counts: readonly ThroughputCount[]): Promise<void> {
    // One row per minute and queue (a statement cannot add to a row twice).
    const sums = new Map<string, ThroughputCount>()
    for (const count of counts) {
      for (const field of ['minute', 'processed', 'failed'] as const) {
        if (!Number.isSafeInteger(count[field]) || count[field] < 0) {
          throw new InvalidArgumentError(`A throughput count's ${field} must be an integer >= 0, got ${count[field]}`)
        }
      }
      const key = `${count.minute}\u0000${count.queue}`
      const sum = sums.get(key)
      if (sum) {
        sum.processed += count.processed
        sum.failed += count.failed
      } else sums.set(key, { ...count })
    }
    if (sums.size === 0) return
    const all = [...sums.values()]
    await this.#db.query({
      text: `INSERT INTO ${this.#s}.tracking_throughput AS t (minute, queue, processed, failed)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])
ON CONFLICT (minute, queue) DO UPDATE SET processed = t.processed + EXCLUDED.processed, failed = t.failed + EXCLUDED.failed`,
      values: [
        all.map((c) => c.minute),
        all.map((c) => c.queue),
        all.map((c) => c.processed),
        all.map((c) => c.failed),
      ],
    })
  }

  async throughput(since: number): Promise<ThroughputCount[]> {
    if (typeof since !== 'number' || !Number.isFinite(since)) {
      throw new InvalidArgumentError(`throughput() takes a time in ms, got ${String(since)}`)
    }
    const { rows } = await this.#db.query<{ minute: unknown; queue: string; processed: unknown; failed: unknown }>({
      text: `SELECT minute, queue, processed, failed FROM ${this.#s}.tracking_throughput WHERE minute > $1::bigint
ORDER BY minute, queue`,
      // minute > since - 1 min, for integer minutes.
      values: [Math.floor(since - MINUTE)],
    })
    return rows.map((row) => ({
      minute: numberOf(row.minute),
      queue: row.queue,
      processed: numberOf(row.processed),
      failed: numberOf(row.failed),
    }))
  }

  async acquireLease(name: string, owner: string, ttl: number): Promise<boolean> {
    checkTtl('A lease', ttl)
    const { rows } = await this.#db.query({
      text: `INSERT INTO ${this.#s}.tracking_leases AS l (name, owner, expires_at) VALUES ($1, $2, ${expiry(3)})
ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
WHERE l.owner = EXCLUDED.owner OR l.expires_at <= clock_timestamp()
RETURNING 1`,
      values: [name, owner, ttl],
    })
    return rows.length > 0
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.#db.query({
      text: `DELETE FROM ${this.#s}.tracking_leases WHERE name = $1 AND owner = $2`,
      values: [name, owner],
    })
  }

  async scheduleMarks(ids: readonly string[]): Promise<Map<string, ScheduleMark>> {
    const marks = new Map<string, ScheduleMark>()
    if (ids.length === 0) return marks
    const { rows } = await this.#db.query<{
      id: string
      through: unknown
      last_due: unknown
      last_message_id: string | null
      last_sent_at: unknown
    }>({
      text: `SELECT id, through, last_due, last_message_id, last_sent_at FROM ${this.#s}.tracking_schedules
WHERE id = ANY($1::text[])`,
      values: [[...ids]],
    })
    for (const row of rows) {
      const mark: ScheduleMark = { through: numberOf(row.through) }
      if (row.last_due !== null) mark.lastDue = numberOf(row.last_due)
      if (row.last_message_id !== null) mark.lastMessageId = row.last_message_id
      if (row.last_sent_at !== null) mark.lastSentAt = numberOf(row.last_sent_at)
      marks.set(row.id, mark)
    }
    return marks
  }

  async advanceSchedule(id: string, mark: ScheduleMark): Promise<boolean> {
    for (const field of ['through', 'lastDue', 'lastSentAt'] as const) {
      const value = mark[field]
      if ((value !== undefined || field === 'through') && !Number.isFinite(value)) {
        throw new InvalidArgumentError(`A schedule mark's ${field} must be a time in ms, got ${String(value)}`)
      }
    }
    const { rows } = await this.#db.query({
      text: `INSERT INTO ${this.#s}.tracking_schedules AS s (id, through, last_due, last_message_id, last_sent_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET through = EXCLUDED.through, last_due = EXCLUDED.last_due,
  last_message_id = EXCLUDED.last_message_id, last_sent_at = EXCLUDED.last_sent_at, updated_at = now()
WHERE s.through < EXCLUDED.through
RETURNING 1`,
      values: [id, mark.through, mark.lastDue ?? null, mark.lastMessageId ?? null, mark.lastSentAt ?? null],
    })
    return rows.length > 0
  }

  /**
   * Delete what lapsed: unique keys, cancels and heartbeats past their expiry, throughput
   * minutes older than 3 hours; at most `CHORE_LIMIT` rows of each, in one statement. Resolves
   * with how many rows of each went.
   */
  async chores(): Promise<{ unique: number; cancels: number; workers: number; throughput: number }> {
    const s = this.#s
    const lapsed = (table: string, key: string, where: string): string =>
      `DELETE FROM ${s}.${table} WHERE (${key}) IN (SELECT ${key} FROM ${s}.${table} WHERE ${where} ` +
      `LIMIT ${CHORE_LIMIT} FOR UPDATE SKIP LOCKED) RETURNING 1`
    const lapsedNow = 'expires_at <= clock_timestamp()'
    const { rows } = await this.#db.query<{
      unique_keys: number
      cancels: number
      workers: number
      throughput: number
    }>({
      text: `WITH u AS (${lapsed('tracking_unique', 'key', lapsedNow)}),
c AS (${lapsed('tracking_cancels', 'message_id', lapsedNow)}),
w AS (${lapsed('tracking_workers', 'id', lapsedNow)}),
t AS (${lapsed('tracking_throughput', 'minute, queue', 'minute < $1::bigint')})
SELECT (SELECT count(*)::int FROM u) AS unique_keys, (SELECT count(*)::int FROM c) AS cancels,
  (SELECT count(*)::int FROM w) AS workers, (SELECT count(*)::int FROM t) AS throughput`,
      values: [Math.floor(Date.now() - THROUGHPUT_KEPT)],
    })
    const row = rows[0]
    return {
      unique: numberOf(row?.unique_keys ?? 0),
      cancels: numberOf(row?.cancels ?? 0),
      workers: numberOf(row?.workers ?? 0),
      throughput: numberOf(row?.throughput ?? 0),
    }
  }
}
