import {
  InvalidArgumentError,
  errorMeta,
  noopLogger,
  type CancelMode,
  type CancelNotice,
  type CancelSubscription,
  type Logger,
  type ScheduleMark,
  type ThroughputCount,
  type TrackedMessage,
  type TrackingBackend,
  type TrackingPage,
  type TrackingQuery,
  type TrackingUpdate,
  type UniqueClaim,
  type WorkerHeartbeat,
} from '@tq/core'
import { classifyPgError } from '../classify-error.ts'
import { checkSchemaName } from '../identifiers.ts'
import { openPool, type ConnectionOptions } from '../pool.ts'
import type { PgPool } from '../pg-types.ts'
import { SchemaGate, migrate } from '../schema.ts'
import { CancelChannel, cancelChannel, cancelPayload, cancelStatements } from './cancels.ts'
import { checkUpdate } from './codec.ts'
import { TrackingControl, checkTtl } from './control.ts'
import { listRecords } from './listing.ts'
import { RecordStore } from './records.ts'
import { trackingSchema } from './schema.ts'

/** Options of `PostgresTrackingBackend`. */
export interface PostgresTrackingBackendOptions extends ConnectionOptions {
  /** The schema of the tracking tables (default `tq`, beside the broker's). */
  schema?: string
  /** Create or upgrade the tables on first use (default true); with false, a missing or older schema is a `SchemaVersionError`. */
  migrate?: boolean
  /** Where connection trouble is logged (default: nowhere). */
  logger?: Logger
}

/** How often at most a write or a throughput count also deletes lapsed keys, cancels and heartbeats. */
const CHORES_EVERY = 60_000

/**
 * A `TrackingBackend` on PostgreSQL, in tables of its own (see `trackingSchema`) beside the
 * broker's. Any broker may use it: a PostgresBroker's deployment needs no Redis for tracking.
 *
 * - `write()`: one transaction per batch — lock the batch's rows (`SELECT … FOR UPDATE`, in id
 *   order), apply the updates in JS with `applyUpdate`, write them back in one statement per
 *   1000 records (4 round trips); a producer's batch of new messages is one INSERT instead.
 *   Batches of one backend go one after the other, in order. About once a second a write also
 *   deletes a bounded number of expired records (retention since the last update; an expired
 *   record is not read even before that).
 * - `list()`: one statement reading at most `max(1000, 10 × limit)` index rows per page (a short
 *   page with a cursor means more may follow); searches are a case-insensitive substring match
 *   on the id, actor and arguments within those rows.
 * - Cancels: a row per cancel (with its expiry) and a NOTIFY on `tq:<schema>:cancels` at
 *   commit. Subscribers share one LISTEN connection of the pool (so not behind PgBouncer in
 *   transaction mode); after it reconnects the cancels in force are read again and passed on.
 * - Unique keys, leases, schedule marks: single atomic statements.
 */
export class PostgresTrackingBackend implements TrackingBackend {
  readonly pool: PgPool
  readonly schema: string
  readonly #ownsPool: boolean
  readonly #log: Logger
  readonly #gate: SchemaGate
  readonly #records: RecordStore
  readonly #control: TrackingControl
  readonly #cancels: CancelChannel
  readonly #cancelSql: ReturnType<typeof cancelStatements>
  readonly #channel: string
  /** The last write asked for: the next goes after it. */
  #writes: Promise<void> = Promise.resolve()
  #choresAt = 0

  constructor(options: PostgresTrackingBackendOptions = {}) {
    const schema = checkSchemaName(options.schema ?? 'tq')
    this.schema = schema
    this.#log = (options.logger ?? noopLogger).child({ component: 'tracking-postgres' })
    const opened = openPool(options, this.#log, 'tq-tracking')
    this.pool = opened.pool
    this.#ownsPool = opened.owned
    this.#gate = new SchemaGate({
      pool: this.pool,
      schema,
      components: [trackingSchema],
      migrate: options.migrate ?? true,
      logger: this.#log,
    })
    this.#records = new RecordStore({ pool: this.pool, schema, logger: this.#log })
    this.#control = new TrackingControl(this.pool, schema)
    this.#cancelSql = cancelStatements(schema)
    this.#channel = cancelChannel(schema)
    this.#cancels = new CancelChannel({
      pool: this.pool,
      channel: this.#channel,
      logger: this.#log,
      pending: () => this.#pendingCancels(),
    })
  }

  /** Create or upgrade the tracking tables now; resolves with the migrations it applied. */
  migrate(): Promise<Array<{ component: string; version: number }>> {
    return migrate(this.pool, this.schema, [trackingSchema], this.#log).catch((error: unknown) => {
      throw classifyPgError(error)
    })
  }

  async write(updates: readonly TrackingUpdate[], retention: number): Promise<void> {
    if (updates.length === 0) return
    if (typeof retention !== 'number' || !Number.isFinite(retention) || retention < 0) {
      throw new InvalidArgumentError(`Tracking retention must be a finite number of ms >= 0, got ${String(retention)}`)
    }
    for (const update of updates) checkUpdate(update)
    // In the order asked for, even when one is asked for while another is going: a later update
    // of a message must not land before an earlier one.
    const done = this.#writes.then(() => this.#run(() => this.#records.write(updates, retention)))
    this.#writes = done.catch(() => undefined)
    await done
    await this.#maybeChores()
  }

  /** The record, or `undefined`; a row that does not decode throws `DecodeError` (`list()` leaves it out). */
  get(messageId: string): Promise<TrackedMessage | undefined> {
    return this.#run(() => this.#records.get(messageId))
  }

  list(query: TrackingQuery = {}): Promise<TrackingPage> {
    return this.#run(() => listRecords(this.pool, this.#records.table, query))
  }

  delete(messageId: string): Promise<void> {
    return this.#run(() => this.#records.delete(messageId))
  }

  async requestCancel(messageId: string, mode: CancelMode, ttl: number): Promise<void> {
    if (mode !== 'cancel' && mode !== 'delete') {
      throw new InvalidArgumentError(`A cancel's mode is 'cancel' or 'delete', got ${JSON.stringify(mode)}`)
    }
    checkTtl('A cancel', ttl)
    await this.#run(() =>
      this.pool.query({
        text: this.#cancelSql.request,
        values: [messageId, mode, ttl, this.#channel, cancelPayload({ messageId, mode })],
      }),
    )
  }

  async clearCancel(messageId: string): Promise<void> {
    await this.#run(() =>
      this.pool.query({
        text: this.#cancelSql.clear,
        values: [messageId, this.#channel, cancelPayload({ messageId, mode: 'clear' })],
      }),
    )
  }

  /** On the backend's LISTEN connection (one of the pool's, held while anyone is subscribed). */
  async subscribeCancels(listener: (notice: CancelNotice) => void): Promise<CancelSubscription> {
    await this.#gate.ensure()
    return this.#cancels.subscribe(listener)
  }

  claimUnique(key: string, messageId: string, ttl: number): Promise<string | undefined> {
    return this.#run(() => this.#control.claimUnique(key, messageId, ttl))
  }

  releaseUnique(claims: readonly UniqueClaim[]): Promise<void> {
    return this.#run(() => this.#control.releaseUnique(claims))
  }

  heartbeat(worker: WorkerHeartbeat, ttl: number): Promise<void> {
    return this.#run(() => this.#control.heartbeat(worker, ttl))
  }

  removeWorker(workerId: string): Promise<void> {
    return this.#run(() => this.#control.removeWorker(workerId))
  }

  workers(): Promise<WorkerHeartbeat[]> {
    return this.#run(() => this.#control.workers())
  }

  async addThroughput(counts: readonly ThroughputCount[]): Promise<void> {
    await this.#run(() => this.#control.addThroughput(counts))
    await this.#maybeChores()
  }

  throughput(since: number): Promise<ThroughputCount[]> {
    return this.#run(() => this.#control.throughput(since))
  }

  acquireLease(name: string, owner: string, ttl: number): Promise<boolean> {
    return this.#run(() => this.#control.acquireLease(name, owner, ttl))
  }

  releaseLease(name: string, owner: string): Promise<void> {
    return this.#run(() => this.#control.releaseLease(name, owner))
  }

  scheduleMarks(ids: readonly string[]): Promise<Map<string, ScheduleMark>> {
    return this.#run(() => this.#control.scheduleMarks(ids))
  }

  advanceSchedule(id: string, mark: ScheduleMark): Promise<boolean> {
    return this.#run(() => this.#control.advanceSchedule(id, mark))
  }

  /** Stop listening for cancels; end the pool if the backend built it (a given `pool` stays open). */
  async close(): Promise<void> {
    await this.#cancels.close()
    await this.#writes
    if (this.#ownsPool) await this.pool.end().catch(() => undefined)
  }

  async #pendingCancels(): Promise<Map<string, CancelMode>> {
    const { rows } = await this.pool.query<{ message_id: string; mode: string }>(this.#cancelSql.pending)
    const pending = new Map<string, CancelMode>()
    for (const row of rows) if (row.mode === 'cancel' || row.mode === 'delete') pending.set(row.message_id, row.mode)
    return pending
  }

  /** Once the tables are there, `fn`; what node-postgres throws comes out as tq errors. */
  async #run<T>(fn: () => Promise<T>): Promise<T> {
    await this.#gate.ensure()
    try {
      return await fn()
    } catch (error) {
      throw classifyPgError(error)
    }
  }

  /** At most once a minute: lapsed unique keys, cancels, heartbeats and old throughput go (best effort). */
  async #maybeChores(): Promise<void> {
    const now = Date.now()
    if (now - this.#choresAt < CHORES_EVERY) return
    this.#choresAt = now
    await this.#control.chores().catch((error: unknown) => {
      this.#log.warn(
        'Could not delete lapsed tracking rows; trying again in a minute',
        errorMeta(classifyPgError(error)),
      )
    })
  }
}
