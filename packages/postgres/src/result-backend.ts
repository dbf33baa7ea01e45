import { Missing, ResultBackendBase, type ResultBackendOptions } from '@tq/core'
import { BackendConnection, SWEEP_BATCH, checkKey, checkTtl, type PostgresBackendOptions } from './backend-support.ts'
import { resultsSchema } from './backends-schema.ts'
import type { PgPool } from './pg-types.ts'
import { migrate } from './schema.ts'
import { classifyPgError } from './classify-error.ts'

/** Options of {@link PostgresResultBackend}: the keys and encoding of results, and where they are stored. */
export interface PostgresResultBackendOptions extends ResultBackendOptions, PostgresBackendOptions {}

interface Statements {
  get: string
  store: string
  sweep: string
}

function statements(schema: string): Statements {
  const table = `${schema}.results`
  return {
    get: `SELECT value FROM ${table} WHERE key = $1 AND expires_at > statement_timestamp()`,
    // One statement: the upsert, then the notification (delivered at commit, i.e. right away).
    store: `WITH stored AS (
  INSERT INTO ${table} AS r (key, value, expires_at)
  VALUES ($1, $2, statement_timestamp() + $3::float8 * interval '1 millisecond')
  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
  RETURNING r.key
)
SELECT pg_notify($4, key) FROM stored`,
    // Rows a writer is replacing right now are skipped, and one revived meanwhile is kept.
    sweep: `DELETE FROM ${table} WHERE key IN (
  SELECT key FROM ${table} WHERE expires_at < statement_timestamp()
  ORDER BY expires_at LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED
) AND expires_at < statement_timestamp()`,
  }
}

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * A result backend on PostgreSQL: each result is a row of `<schema>.results` (key, encoded
 * value, `expires_at`), with the keys and values of every tq result backend (Dramatiq's MD5 keys
 * and JSON by default), so a Python or Redis peer's conventions carry over.
 *
 * - `store` is one upsert that also sends `pg_notify('tq:<schema>:results', key)`;
 * - a non-blocking read is one `SELECT`, which ignores expired rows;
 * - a blocking read looks, then sleeps until the key's notification arrives (one LISTEN
 *   connection per backend, shared by every wait), looking again every second and at the
 *   deadline in any case, so a lost notification only costs latency; it never polls otherwise.
 *   Waits for one result in a process share their reads.
 *
 * Expired rows are deleted by `store`, a bounded batch at most once a minute (more often while
 * there is a backlog). The tables are created on first use (`migrate: true`, the default) or by
 * `tq postgres migrate`.
 *
 * ```ts
 * const backend = new PostgresResultBackend({ connectionString: 'postgres://localhost/app' })
 * broker.addMiddleware(new Results({ backend }))
 * const message = await add.send(1, 2)
 * await message.getResult({ block: true, timeout: 5000 }) // 3
 * ```
 */
export class PostgresResultBackend extends ResultBackendBase {
  /** The pool results go through (the given `pool`, or the backend's own). */
  readonly pool: PgPool
  /** The schema of the `results` table. */
  readonly schema: string
  readonly #db: BackendConnection
  readonly #sql: Statements
  readonly #names: { get: string; store: string }

  constructor(options: PostgresResultBackendOptions = {}) {
    super(options)
    this.#db = new BackendConnection(options, {
      owner: 'PostgresResultBackend',
      component: resultsSchema,
      sweep: async (db) => (await db.query({ text: this.#sql.sweep })).rowCount ?? 0,
    })
    this.pool = this.#db.pool
    this.schema = this.#db.schema
    this.#sql = statements(this.schema)
    this.#names = { get: `tq_${this.schema}_result_get`, store: `tq_${this.schema}_result_store` }
  }

  /** Whether blocking waits are woken by notifications now (the LISTEN connection is up; it opens at the first wait). */
  get listening(): boolean {
    return this.#db.listening
  }

  /** Create or upgrade the `results` table now; resolves with the migrations it applied. */
  async migrate(): Promise<Array<{ component: string; version: number }>> {
    try {
      return await migrate(this.pool, this.schema, [resultsSchema])
    } catch (error) {
      throw classifyPgError(error)
    }
  }

  /**
   * Stop: pending blocking reads fail with `ConnectionClosedError`, the LISTEN connection is
   * given back, and the pool is ended if the backend built it (a given `pool` stays open).
   * Later reads and writes throw `ConfigurationError`.
   */
  async close(): Promise<void> {
    await this.#db.close()
  }

  /** One `SELECT` of the row, unless it has expired. */
  protected override async get(key: string): Promise<Uint8Array | Missing> {
    const { rows } = await this.#db.query<{ value: Buffer }>({
      name: this.#names.get,
      text: this.#sql.get,
      values: [checkKey(key)],
    })
    const row = rows[0]
    return row ? new Uint8Array(row.value.buffer, row.value.byteOffset, row.value.byteLength) : Missing
  }

  /** One upsert (which notifies the key's waiters), expiring `ttl` ms from now on the server's clock. */
  protected override async store(key: string, value: Uint8Array, ttl: number): Promise<void> {
    await this.#db.query({
      name: this.#names.store,
      text: this.#sql.store,
      values: [checkKey(key), asBuffer(value), checkTtl(ttl, true), this.#db.channel],
    })
    this.#db.sweepSoon()
  }

  /**
   * Look once; if nothing is stored yet, sleep on the key's notification (looking again when it
   * comes, every second, and at the deadline). `Missing` when the time runs out.
   */
  protected override async waitFor(key: string, timeoutMs: number): Promise<Uint8Array | Missing> {
    checkKey(key)
    const found = await this.#db.waitUntil(key, timeoutMs, async () => {
      const value = await this.get(key)
      return value === Missing ? undefined : value
    })
    return found ?? Missing
  }
}
