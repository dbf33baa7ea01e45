import {
  ConfigurationError,
  ConnectionClosedError,
  InvalidArgumentError,
  errorMeta,
  noopLogger,
  sleep,
  type Logger,
} from '@tq/core'
import { Backoff } from '@tq/core/adapter'
import { classifyPgError } from './classify-error.ts'
import { channelName, checkSchemaName } from './identifiers.ts'
import { KeyDoorbell } from './key-doorbell.ts'
import type { PgPool, PgPoolClient, PgQueryConfig, PgResult } from './pg-types.ts'
import { openPool, type ConnectionOptions } from './pool.ts'
import { SchemaGate, type SchemaComponent } from './schema.ts'
import { inTransaction } from './transact.ts'

/**
 * The options shared by `PostgresResultBackend` and `PostgresRateLimiterBackend`: the pool
 * (yours, or one built from `connectionString`), the schema, migrations and LISTEN.
 */
export interface PostgresBackendOptions extends ConnectionOptions {
  /** The schema of tq's tables (default `tq`). */
  schema?: string
  /**
   * Create or upgrade the tables on first use (default true); with false, a missing or older
   * schema is a `SchemaVersionError`.
   */
  migrate?: boolean
  /**
   * Wake blocking waits with LISTEN/NOTIFY (default true; holds one connection of the pool
   * from the first blocking wait on). With false, or behind PgBouncer in transaction mode,
   * waits poll (100 ms doubling to 1 s).
   */
  listen?: boolean
  /** Where connection problems are logged (entries tagged `component: "postgres"`). */
  logger?: Logger
}

/** How often a blocking wait looks again without a notification: a lost one only costs this much latency. */
export const RECHECK_MS = 1000
/** At most this long between two sweeps of expired rows (sooner while each sweep fills its batch). */
const SWEEP_INTERVAL_MS = 60_000
/** Rows deleted by one sweep statement. */
export const SWEEP_BATCH = 1000
/** Longest key (UTF-8 bytes): it must fit a btree entry and a NOTIFY payload. */
const MAX_KEY_BYTES = 2000

/** The NOTIFY channel of a backend's part (`tq:<schema>:results`), shortened for very long schema names. */
export function backendChannel(schema: string, part: string): string {
  return channelName(schema, part)
}

/** Check a key: a non-empty string of at most 2000 UTF-8 bytes. */
export function checkKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new InvalidArgumentError(`A key must be a non-empty string of at most ${MAX_KEY_BYTES} bytes`)
  }
  return key
}

/** Check a ttl in ms: a finite number, above 0 (or at least 0 with `allowZero`). */
export function checkTtl(ttl: number, allowZero = false): number {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0 || (ttl === 0 && !allowZero)) {
    throw new InvalidArgumentError(
      `ttl must be a ${allowZero ? 'non-negative' : 'positive'} number of ms, got ${String(ttl)}`,
    )
  }
  return ttl
}

/** What a backend gives its connection: who it is, its tables, its NOTIFY part and its sweep. */
export interface BackendSpec {
  /** The class name, for errors. */
  owner: string
  /** `results` or `limits`: the schema component's name and the channel's last part. */
  component: SchemaComponent
  /** Delete a batch of expired rows; resolves with how many went. */
  sweep: (db: BackendConnection) => Promise<number>
}

/**
 * What both backends need from PostgreSQL: the pool (theirs or the user's), the schema gate, a
 * classified `query`, short transactions, blocking waits on the doorbell and the sweep of
 * expired rows.
 */
export class BackendConnection {
  readonly pool: PgPool
  readonly schema: string
  readonly channel: string
  readonly #owner: string
  readonly #ownsPool: boolean
  readonly #log: Logger
  readonly #gate: SchemaGate
  readonly #bell: KeyDoorbell | undefined
  readonly #reads = new Map<string, { rings: number; read: Promise<unknown> }>()
  readonly #closing = new AbortController()
  readonly #sweep: () => Promise<number>
  #sweeping: Promise<void> | undefined
  #lastSweep = 0
  #sweepAgain = false

  constructor(options: PostgresBackendOptions, spec: BackendSpec) {
    this.#owner = spec.owner
    this.schema = checkSchemaName(options.schema ?? 'tq')
    this.channel = backendChannel(this.schema, spec.component.name)
    this.#log = (options.logger ?? noopLogger).child({ component: 'postgres' })
    const opened = openPool(options, this.#log, `tq ${spec.component.name}`)
    this.pool = opened.pool
    this.#ownsPool = opened.owned
    const migrate = options.migrate ?? true
    this.#gate = new SchemaGate({
      pool: this.pool,
      schema: this.schema,
      components: [spec.component],
      migrate,
      logger: this.#log,
    })
    this.#bell =
      (options.listen ?? true)
        ? new KeyDoorbell({ pool: this.pool, channel: this.channel, logger: this.#log })
        : undefined
    this.#sweep = () => spec.sweep(this)
  }

  /** Whether the LISTEN connection is up (not before the first blocking wait, with `listen: false`, or while reconnecting). */
  get listening(): boolean {
    return this.#bell?.listening ?? false
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing.signal.aborted
  }

  /** Throw `ConfigurationError` once closed. */
  assertOpen(): void {
    if (this.closed) throw new ConfigurationError(`This ${this.#owner} is closed`)
  }

  /** Run one statement once the tables are known to be right; errors classified. */
  async query<R>(config: PgQueryConfig): Promise<PgResult<R>> {
    this.assertOpen()
    if (!this.#gate.ready) await this.#gate.ensure()
    try {
      return await this.pool.query<R>(config)
    } catch (error) {
      throw classifyPgError(error)
    }
  }

  /** Run `fn` in a transaction on one connection (committed if it resolves); errors classified. */
  async transaction<T>(fn: (client: PgPoolClient) => Promise<T>): Promise<T> {
    this.assertOpen()
    if (!this.#gate.ready) await this.#gate.ensure()
    return inTransaction(this.pool, fn)
  }

  /**
   * Wait up to `timeoutMs` (forever when undefined) for `look` to find something. It looks,
   * then sleeps on the key's doorbell, looking again when the key is rung, every
   * {@link RECHECK_MS} in any case, and once more at the deadline. A ring during a look makes
   * it look again, so a write between the look and the sleep is not missed. Concurrent waits
   * on one key share a look that started after the latest ring.
   */
  async waitUntil<T>(
    key: string,
    timeoutMs: number | undefined,
    look: () => Promise<T | undefined>,
  ): Promise<T | undefined> {
    if (timeoutMs !== undefined && Number.isNaN(timeoutMs)) throw new InvalidArgumentError('A wait timeout is NaN')
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs
    const bell = this.#bell
    bell?.start()
    const watched = bell?.watch(key)
    const backoff = new Backoff({ initial: 100, max: RECHECK_MS })
    try {
      for (;;) {
        const seen = watched?.rings ?? 0
        const found = await this.#sharedLook(key, seen, look)
        if (found !== undefined) return found
        const remaining = deadline - Date.now()
        if (remaining <= 0) return undefined
        this.#assertNotClosing()
        if (watched) {
          if (watched.rings !== seen) continue
          await watched.notifier.wait(Math.min(remaining, RECHECK_MS))
        } else {
          await sleep(Math.min(remaining, backoff.next()), this.#closing.signal)
        }
        this.#assertNotClosing()
      }
    } finally {
      if (bell && watched) bell.unwatch(key, watched)
    }
  }

  async #sharedLook<T>(key: string, rings: number, look: () => Promise<T | undefined>): Promise<T | undefined> {
    const pending = this.#reads.get(key)
    if (pending && pending.rings === rings) return pending.read as Promise<T | undefined>
    const entry = { rings, read: look() as Promise<unknown> }
    this.#reads.set(key, entry)
    try {
      return (await entry.read) as T | undefined
    } finally {
      if (this.#reads.get(key) === entry) this.#reads.delete(key)
    }
  }

  #assertNotClosing(): void {
    if (this.closed) throw new ConnectionClosedError(`The ${this.#owner} was closed while waiting`)
  }

  /** Start a sweep of expired rows unless one ran less than a minute ago (or the last one filled its batch). */
  sweepSoon(): void {
    if (this.#sweeping || this.closed) return
    if (!this.#sweepAgain && Date.now() - this.#lastSweep < SWEEP_INTERVAL_MS) return
    this.#lastSweep = Date.now()
    this.#sweeping = this.#sweep()
      .then(
        (deleted) => {
          this.#sweepAgain = deleted >= SWEEP_BATCH
        },
        (error: unknown) => {
          this.#sweepAgain = false
          this.#log.debug('Could not delete expired rows; trying again later', {
            schema: this.schema,
            ...errorMeta(classifyPgError(error)),
          })
        },
      )
      .finally(() => {
        this.#sweeping = undefined
      })
  }

  /** Fail pending waits, stop the doorbell, let a running sweep finish, end the pool if it is ours. */
  async close(): Promise<void> {
    if (this.closed) return
    this.#closing.abort()
    await this.#bell?.close()
    await this.#sweeping
    if (this.#ownsPool) await this.pool.end()
  }
}
