import { DecodeError, errorMeta, type Logger, type TrackedMessage, type TrackingUpdate } from '@tq/core'
import { applyUpdate, publicRecord, type StoredRecord } from '@tq/core/adapter'
import { sqlState } from '../classify-error.ts'
import type { PgPool, PgPoolClient, PgQueryable } from '../pg-types.ts'
import { decodeRow, encodeRecord, numberOf, type EncodedRecord, type LockedRow, type RecordRow } from './codec.ts'

/** Most records in one write statement (a bigger batch takes several, in the same transaction). */
const RECORDS_PER_STATEMENT = 1000
/** And about this many bytes of values. */
const BYTES_PER_STATEMENT = 8 * 1024 * 1024
/** Most expired records one sweep deletes beyond two per record the write carried. */
const SWEEP_EXTRA = 1000
/** Times a write is tried when PostgreSQL picks its transaction as a deadlock's victim. */
const DEADLOCK_TRIES = 3
/** Rounds of a write whose new records other writers keep inserting first (one is the rule). */
const MAX_ROUNDS = 5

/** The columns a listing and `get()` read of a record. */
const RECORD_COLUMNS =
  'm.message_id, m.queue, m.actor, m.state, m.state_at, m.enqueued_at, m.updated_at, ' +
  'm.data::text AS data, m.args::text AS args, m.kwargs::text AS kwargs, m.body'

/** The statements of `<schema>.tracked_messages`. */
export interface RecordStatements {
  readonly table: string
  /** Lock the rows of ids $1 (in id order, so two writers never wait on each other in a cycle). */
  readonly lock: string
  /** Update the known rows and insert the new ones of one batch; returns the ids it inserted. */
  readonly upsert: string
  /** Delete at most $2 records expired at $1, skipping rows another transaction holds. */
  readonly sweep: string
  readonly get: string
  readonly delete: string
}

/** The statements of `<schema>.tracked_messages` (the schema checked already). */
export function recordStatements(schema: string): RecordStatements {
  const table = `${schema}.tracked_messages`
  return {
    table,
    lock: `SELECT message_id, queue, actor, state, state_at, enqueued_at, updated_at, expires_at, data::text AS data
FROM ${table} WHERE message_id = ANY($1::text[]) ORDER BY message_id FOR UPDATE`,
    upsert: `WITH u AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::float8[],
    $8::float8[], $9::text[], $10::bool[], $11::text[], $12::text[], $13::text[], $14::bool[], $15::bytea[], $16::bool[])
    AS u(message_id, queue, actor, state, state_at, enqueued_at, updated_at, expires_at, data, args_set, args, kwargs,
      search, body_set, body, fresh)
), changed AS (
  UPDATE ${table} t SET queue = u.queue, actor = u.actor, state = u.state, state_at = u.state_at,
    enqueued_at = u.enqueued_at, updated_at = u.updated_at, expires_at = u.expires_at, data = u.data::json,
    args = CASE WHEN u.args_set THEN u.args::json ELSE t.args END,
    kwargs = CASE WHEN u.args_set THEN u.kwargs::json ELSE t.kwargs END,
    search = CASE WHEN u.args_set THEN u.search ELSE t.search END,
    body = CASE WHEN u.body_set THEN u.body ELSE t.body END
  FROM u WHERE NOT u.fresh AND t.message_id = u.message_id
)
INSERT INTO ${table} (message_id, queue, actor, state, state_at, enqueued_at, updated_at, expires_at, search, data, args,
  kwargs, body)
SELECT message_id, queue, actor, state, state_at, enqueued_at, updated_at, expires_at, search, data::json, args::json,
  kwargs::json, body FROM u WHERE u.fresh
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id`,
    sweep: `DELETE FROM ${table} WHERE message_id IN (
  SELECT message_id FROM ${table} WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
    get: `SELECT ${RECORD_COLUMNS} FROM ${table} m WHERE m.message_id = $1 AND m.expires_at > $2`,
    delete: `DELETE FROM ${table} WHERE message_id = $1`,
  }
}

/** A record to write, and whether its row was absent when the write locked the others. */
type Pending = EncodedRecord & { fresh: boolean }

/** The 16 arrays of the upsert statement, one element per record. */
function upsertValues(records: readonly Pending[]): unknown[][] {
  const columns: unknown[][] = Array.from({ length: 16 }, () => [])
  for (const r of records) {
    const row = [
      r.messageId,
      r.queue,
      r.actor,
      r.state,
      r.stateAt,
      r.enqueuedAt,
      r.updatedAt,
      r.expiresAt,
      r.data,
      r.argsSet,
      r.args,
      r.kwargs,
      r.search,
      r.bodySet,
      r.body,
      r.fresh,
    ]
    row.forEach((value, i) => (columns[i] as unknown[]).push(value))
  }
  return columns
}

/** Records in statements of at most `RECORDS_PER_STATEMENT` and about `BYTES_PER_STATEMENT`. */
function* statementsOf(records: readonly Pending[]): Generator<Pending[]> {
  let chunk: Pending[] = []
  let bytes = 0
  for (const record of records) {
    const size =
      record.data.length + (record.args?.length ?? 0) + (record.kwargs?.length ?? 0) + 2 * (record.body?.length ?? 0)
    if (chunk.length > 0 && (chunk.length >= RECORDS_PER_STATEMENT || bytes + size > BYTES_PER_STATEMENT)) {
      yield chunk
      chunk = []
      bytes = 0
    }
    chunk.push(record)
    bytes += size
  }
  if (chunk.length > 0) yield chunk
}

/**
 * The records' side of `PostgresTrackingBackend`. A write locks the rows it changes (`SELECT …
 * FOR UPDATE`, in id order) in one transaction, applies the updates with `applyUpdate` and
 * writes every record back in one statement (an UPDATE of the known rows and an INSERT of the
 * new ones). A new record another writer inserted meanwhile (a worker's update racing its
 * producer's enqueue) is not overwritten: its updates are applied again on the row now there.
 * A batch whose messages all start with an enqueue (a producer's) first tries one plain INSERT
 * instead, outside a transaction; only the messages already recorded go the locked way.
 * Arguments, search text and body are neither read nor rewritten unless the batch changes them.
 */
export class RecordStore {
  readonly #pool: PgPool
  readonly #sql: RecordStatements
  readonly #log: Logger
  #sweptAt = -Infinity

  constructor(options: { pool: PgPool; schema: string; logger: Logger }) {
    this.#pool = options.pool
    this.#sql = recordStatements(options.schema)
    this.#log = options.logger
  }

  get table(): string {
    return this.#sql.table
  }

  /**
   * Apply checked updates, grouped by message in their order; the errors are node-postgres's.
   * When every message starts with an enqueue, its records are first inserted as new ones; the
   * messages recorded already (a retry, a worker that reported first) take the locked path.
   */
  async write(updates: readonly TrackingUpdate[], retention: number): Promise<void> {
    let byMessage = new Map<string, TrackingUpdate[]>()
    for (const update of updates) {
      const list = byMessage.get(update.messageId)
      if (list) list.push(update)
      else byMessage.set(update.messageId, [update])
    }
    if ([...byMessage.values()].every((list) => list[0]?.kind === 'enqueued')) {
      const now = Date.now()
      const fresh = [...byMessage.keys()].sort().map((id) => this.#build(id, undefined, byMessage, retention, now))
      try {
        const inserted = await this.#upsert(this.#pool, fresh)
        if (inserted.size === byMessage.size) return await this.#sweep(this.#pool, now, retention, byMessage.size)
        byMessage = new Map([...byMessage].filter(([id]) => !inserted.has(id)))
      } catch (error) {
        // A deadlock's victim: all of them take the locked path (applying an update again to the
        // record an earlier statement inserted changes nothing).
        if (sqlState(error) !== '40P01') throw error
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#transaction(byMessage, retention)
      } catch (error) {
        // The other transaction of a deadlock went on; this one had no effect and may run again.
        if (attempt >= DEADLOCK_TRIES || sqlState(error) !== '40P01') throw error
      }
    }
  }

  async #transaction(byMessage: ReadonlyMap<string, readonly TrackingUpdate[]>, retention: number): Promise<void> {
    const now = Date.now()
    const client = await this.#pool.connect()
    let healthy = true
    try {
      await client.query('BEGIN')
      let ids = [...byMessage.keys()].sort()
      for (let round = 1; ids.length > 0; round++) {
        if (round > MAX_ROUNDS) throw new Error(`tracking records kept being inserted under this write: ${ids.length}`)
        ids = await this.#round(client, ids, byMessage, retention, now)
      }
      await this.#sweep(client, now, retention, byMessage.size)
      await client.query('COMMIT')
    } catch (error) {
      // A connection that cannot even roll back is not given back to the pool.
      await client.query('ROLLBACK').catch(() => {
        healthy = false
      })
      throw error
    } finally {
      client.release(!healthy)
    }
  }

  /** Lock, apply and write the records of `ids`; resolves with the ids another writer inserted first. */
  async #round(
    client: PgPoolClient,
    ids: readonly string[],
    byMessage: ReadonlyMap<string, readonly TrackingUpdate[]>,
    retention: number,
    now: number,
  ): Promise<string[]> {
    const { rows } = await client.query<LockedRow>({ text: this.#sql.lock, values: [ids] })
    const locked = new Map(rows.map((row) => [row.message_id, row]))
    const pending = ids.map((id) => this.#build(id, locked.get(id), byMessage, retention, now))
    const inserted = await this.#upsert(client, pending)
    const raced = pending.filter((p) => p.fresh && !inserted.has(p.messageId)).map((p) => p.messageId)
    if (raced.length > 0) {
      this.#log.debug('Tracking records another writer inserted meanwhile get their updates applied again', {
        records: raced.length,
      })
    }
    return raced
  }

  /** The record of `id` after its updates, from its locked row (or none: a new record). */
  #build(
    id: string,
    row: LockedRow | undefined,
    byMessage: ReadonlyMap<string, readonly TrackingUpdate[]>,
    retention: number,
    now: number,
  ): Pending {
    // An expired record (not swept yet) or a corrupt one starts again, written whole.
    let record = row && numberOf(row.expires_at) > now ? this.#decodeLocked(row) : undefined
    const whole = record === undefined
    let argsSet = whole
    for (const update of byMessage.get(id) ?? []) {
      record = applyUpdate(record, update)
      if (update.kind === 'enqueued') argsSet = true
    }
    if (!record) throw new Error(`no tracking updates for ${id}`)
    // Only an enqueue sets a body, and the locked read leaves the stored one out.
    const bodySet = whole || record.body !== undefined
    return { ...encodeRecord(record, argsSet, bodySet, retention), fresh: row === undefined }
  }

  /** Write records, one statement per chunk; resolves with the ids of the new rows it inserted. */
  async #upsert(db: PgQueryable, pending: readonly Pending[]): Promise<Set<string>> {
    const inserted = new Set<string>()
    for (const chunk of statementsOf(pending)) {
      const result = await db.query<{ message_id: string }>({ text: this.#sql.upsert, values: upsertValues(chunk) })
      for (const r of result.rows) inserted.add(r.message_id)
    }
    return inserted
  }

  #decodeLocked(row: LockedRow): StoredRecord | undefined {
    try {
      return decodeRow(row, this.#sql.table)
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error
      this.#log.warn('A corrupt tracking record is replaced by the updates written to it', {
        messageId: row.message_id,
        ...errorMeta(error),
      })
      return undefined
    }
  }

  /** Delete expired records, at most once a second (or per retention, if shorter), a bounded number. */
  async #sweep(db: PgQueryable, now: number, retention: number, written: number): Promise<void> {
    if (now - this.#sweptAt < Math.min(1000, retention)) return
    this.#sweptAt = now
    const limit = 2 * written + SWEEP_EXTRA
    const { rowCount } = await db.query(this.#sql.sweep, [now, limit])
    // More are left: the next write sweeps again.
    if ((rowCount ?? 0) >= limit) this.#sweptAt = -Infinity
  }

  /** The record, `undefined` when absent or expired; `DecodeError` for a corrupt one. */
  async get(messageId: string): Promise<TrackedMessage | undefined> {
    const { rows } = await this.#pool.query<RecordRow>({ text: this.#sql.get, values: [messageId, Date.now()] })
    const row = rows[0]
    return row && publicRecord(decodeRow(row, this.#sql.table))
  }

  async delete(messageId: string): Promise<void> {
    await this.#pool.query({ text: this.#sql.delete, values: [messageId] })
  }
}
