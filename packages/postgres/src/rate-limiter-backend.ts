import { createHash } from 'node:crypto'
import { InvalidArgumentError, type RateLimiterBackend } from '@tq/core'
import { BackendConnection, SWEEP_BATCH, checkKey, checkTtl, type PostgresBackendOptions } from './backend-support.ts'
import { limitsSchema } from './backends-schema.ts'
import { classifyPgError } from './classify-error.ts'
import type { PgPool } from './pg-types.ts'
import { migrate } from './schema.ts'

/** Options of {@link PostgresRateLimiterBackend}: where the counters are stored. */
export type PostgresRateLimiterBackendOptions = PostgresBackendOptions

/** `statement_timestamp() + ttl`: every expiry is on the server's clock. */
const EXPIRES = (param: string): string => `statement_timestamp() + ${param}::float8 * interval '1 millisecond'`
/** A row's value, or 0 once it has expired (expired rows count as absent). */
const LIVE = `CASE WHEN r.expires_at > statement_timestamp() THEN r.value ELSE 0 END`

/** A bounded change: `incr` (`<=` maximum) or `decr` (`>=` minimum); `upsert` when absent may pass. */
type Bounded = 'incrUpsert' | 'incrUpdate' | 'decrUpsert' | 'decrUpdate'

function statements(schema: string): Record<Bounded | 'add' | 'sum' | 'lock' | 'notify' | 'notified' | 'peek', string> {
  const t = `${schema}.rate_limits`
  const events = `${schema}.rate_limit_events`
  // $1 key, $2 delta, $3 bound, $4 ttl. The upsert inserts `delta` for an absent key (the caller
  // checked that it passes); the update form is for a delta that only a live row can take.
  const upsert = (cmp: string): string => `INSERT INTO ${t} AS r (key, value, expires_at)
VALUES ($1, $2::bigint, ${EXPIRES('$4')})
ON CONFLICT (key) DO UPDATE SET value = ${LIVE} + $2::bigint, expires_at = EXCLUDED.expires_at
WHERE ${LIVE} + $2::bigint ${cmp} $3::bigint
RETURNING 1`
  const update = (cmp: string): string => `UPDATE ${t} SET value = value + $2::bigint, expires_at = ${EXPIRES('$4')}
WHERE key = $1 AND expires_at > statement_timestamp() AND value + $2::bigint ${cmp} $3::bigint
RETURNING 1`
  return {
    add: `INSERT INTO ${t} AS r (key, value, expires_at) VALUES ($1, $2::bigint, ${EXPIRES('$3')})
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
WHERE r.expires_at <= statement_timestamp()
RETURNING 1`,
    incrUpsert: upsert('<='),
    incrUpdate: update('<='),
    decrUpsert: upsert('>='),
    decrUpdate: update('>='),
    lock: `SELECT pg_advisory_xact_lock($1::int4, k) FROM unnest($2::int4[]) AS k`,
    // $1 key, $2 amount, $3 maximum, $4 ttl, $5 the keys summed.
    sum: `WITH sums AS (
  SELECT coalesce((SELECT value FROM ${t} WHERE key = $1 AND expires_at > statement_timestamp()), 0) AS current,
         coalesce((SELECT sum(value) FROM ${t} WHERE key = ANY($5::text[]) AND expires_at > statement_timestamp()), 0) AS total
)
INSERT INTO ${t} AS r (key, value, expires_at)
SELECT $1, $2::bigint, ${EXPIRES('$4')} FROM sums
WHERE sums.current + $2::bigint <= $3::bigint AND sums.total + $2::bigint <= $3::bigint
ON CONFLICT (key) DO UPDATE SET value = ${LIVE} + $2::bigint, expires_at = EXCLUDED.expires_at
WHERE ${LIVE} + $2::bigint <= $3::bigint
RETURNING 1`,
    notify: `WITH noted AS (
  INSERT INTO ${events} AS e (key, notified, expires_at) VALUES ($1, 1, ${EXPIRES('$2')})
  ON CONFLICT (key) DO UPDATE
  SET notified = CASE WHEN e.expires_at > statement_timestamp() THEN e.notified + 1 ELSE 1 END,
      expires_at = EXCLUDED.expires_at
  RETURNING e.key
)
SELECT pg_notify($3, key) FROM noted`,
    notified: `SELECT 1 FROM ${events} WHERE key = $1 AND expires_at > statement_timestamp()`,
    peek: `SELECT value FROM ${t} WHERE key = $1 AND expires_at > statement_timestamp()`,
  }
}

function sweepSql(table: string): string {
  return `DELETE FROM ${table} WHERE key IN (
  SELECT key FROM ${table} WHERE expires_at < statement_timestamp()
  ORDER BY expires_at LIMIT ${SWEEP_BATCH} FOR UPDATE SKIP LOCKED
) AND expires_at < statement_timestamp()`
}

/** A signed 32-bit number from the MD5 of `text`: one half of an advisory lock key. */
function lockHalf(text: string): number {
  return createHash('md5').update(text, 'utf8').digest().readInt32BE(0)
}

/** The family a key belongs to: `<key>` of `<key>@<number>` (a window's second, a bucket's ms). */
export function keyGroup(key: string): string {
  return key.replace(/@\d+$/, '')
}

function checkInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value)) throw new InvalidArgumentError(`${name} must be an integer, got ${String(value)}`)
  return value
}

/**
 * Rate limiters and barriers on PostgreSQL: counters are rows of `<schema>.rate_limits` (key,
 * bigint value, `expires_at`), notifications rows of `<schema>.rate_limit_events`. A row past
 * its `expires_at` (on the server's clock) counts as absent, as an expired Redis key does, and
 * the writers delete such rows now and then.
 *
 * Every operation is atomic across processes:
 *
 * - `add`, `incr` and `decr` are each one `INSERT … ON CONFLICT (key) DO UPDATE … WHERE …` (or,
 *   when an absent key could not take the change anyway, one `UPDATE … WHERE …`): the row lock
 *   of the upsert serializes concurrent writers of a key, and the bound is checked on the row
 *   as it is once locked.
 * - `incrAndSum` must read several counters and write one without any of them changing in
 *   between. It runs a short transaction: it takes `pg_advisory_xact_lock` on the key's group
 *   (the key without its `@<number>` suffix, so every second of a `WindowRateLimiter` shares one
 *   lock; the groups of all the summed keys when they differ, in a fixed order so two callers
 *   never deadlock), then one statement (with a snapshot taken after the lock was granted)
 *   sums the live counters and does the bounded upsert. Concurrent `incrAndSum`s of a group
 *   therefore run one after the other and each sees the previous one's count; `keys()` is called
 *   inside the transaction. Plain `incr`/`add` calls on the same keys do not take the lock (no
 *   tq limiter mixes them with `incrAndSum`).
 * - `waitNotify` upserts the key's notification with its ttl and sends
 *   `pg_notify('tq:<schema>:limits', key)` in the same statement; `wait` looks for a live
 *   notification, then sleeps until the key is notified, looking again every second and at its
 *   deadline in any case, so a lost notification only costs latency.
 *
 * ```ts
 * const backend = new PostgresRateLimiterBackend({ connectionString: 'postgres://localhost/app' })
 * const mutex = new ConcurrentRateLimiter(backend, 'sync-accounts', { limit: 1 })
 * await mutex.acquire(() => syncAccounts())
 * ```
 */
export class PostgresRateLimiterBackend implements RateLimiterBackend {
  /** The pool the counters go through (the given `pool`, or the backend's own). */
  readonly pool: PgPool
  /** The schema of the `rate_limits` and `rate_limit_events` tables. */
  readonly schema: string
  readonly #db: BackendConnection
  readonly #sql: ReturnType<typeof statements>
  readonly #lockSpace: number

  constructor(options: PostgresRateLimiterBackendOptions = {}) {
    this.#db = new BackendConnection(options, {
      owner: 'PostgresRateLimiterBackend',
      component: limitsSchema,
      sweep: async (db) => {
        let deleted = 0
        for (const table of ['rate_limits', 'rate_limit_events']) {
          deleted += (await db.query({ text: sweepSql(`${db.schema}.${table}`) })).rowCount ?? 0
        }
        return deleted
      },
    })
    this.pool = this.#db.pool
    this.schema = this.#db.schema
    this.#sql = statements(this.schema)
    this.#lockSpace = lockHalf(`tq:${this.schema}:limits`)
  }

  /** Whether blocking waits are woken by notifications now (the LISTEN connection is up; it opens at the first wait). */
  get listening(): boolean {
    return this.#db.listening
  }

  /** Create or upgrade the tables now; resolves with the migrations it applied. */
  async migrate(): Promise<Array<{ component: string; version: number }>> {
    try {
      return await migrate(this.pool, this.schema, [limitsSchema])
    } catch (error) {
      throw classifyPgError(error)
    }
  }

  async #run(name: keyof ReturnType<typeof statements>, values: unknown[]): Promise<boolean> {
    const { rowCount } = await this.#db.query({
      name: `tq_${this.schema}_limit_${name}`,
      text: this.#sql[name],
      values,
    })
    return (rowCount ?? 0) > 0
  }

  /** One upsert that only replaces an expired row. */
  async add(key: string, value: number, ttl: number): Promise<boolean> {
    const added = await this.#run('add', [checkKey(key), checkInteger('value', value), checkTtl(ttl)])
    this.#db.sweepSoon()
    return added
  }

  /** One bounded upsert (or update, when `amount` alone passes `maximum`). */
  async incr(key: string, amount: number, maximum: number, ttl: number): Promise<boolean> {
    checkInteger('amount', amount)
    return this.#bounded(
      amount <= maximum ? 'incrUpsert' : 'incrUpdate',
      key,
      amount,
      checkInteger('maximum', maximum),
      ttl,
    )
  }

  /** One bounded upsert (or update, when `-amount` alone is below `minimum`). */
  async decr(key: string, amount: number, minimum: number, ttl: number): Promise<boolean> {
    checkInteger('amount', amount)
    return this.#bounded(
      -amount >= minimum ? 'decrUpsert' : 'decrUpdate',
      key,
      -amount,
      checkInteger('minimum', minimum),
      ttl,
    )
  }

  async #bounded(statement: Bounded, key: string, delta: number, bound: number, ttl: number): Promise<boolean> {
    const changed = await this.#run(statement, [checkKey(key), delta, bound, checkTtl(ttl)])
    this.#db.sweepSoon()
    return changed
  }

  /** See the class comment: a transaction holding the advisory lock of the keys' group(s). */
  async incrAndSum(key: string, keys: () => string[], amount: number, maximum: number, ttl: number): Promise<boolean> {
    checkKey(key)
    checkInteger('amount', amount)
    checkInteger('maximum', maximum)
    checkTtl(ttl)
    const changed = await this.#db.transaction(async (client) => {
      const summed = keys().map(checkKey)
      const locks = [...new Set([key, ...summed].map((k) => lockHalf(keyGroup(k))))].sort((a, b) => a - b)
      await client.query({
        name: `tq_${this.schema}_limit_lock`,
        text: this.#sql.lock,
        values: [this.#lockSpace, locks],
      })
      const { rowCount } = await client.query({
        name: `tq_${this.schema}_limit_sum`,
        text: this.#sql.sum,
        values: [key, amount, maximum, ttl, summed],
      })
      return (rowCount ?? 0) > 0
    })
    this.#db.sweepSoon()
    return changed
  }

  /**
   * Wait until `key` has a live notification (true at once if it has); false after `timeout`
   * ms. Without `timeout`, waits until notified or closed.
   */
  async wait(key: string, timeout?: number): Promise<boolean> {
    checkKey(key)
    if (timeout !== undefined && (typeof timeout !== 'number' || Number.isNaN(timeout))) {
      throw new InvalidArgumentError(`timeout must be a number of ms, got ${String(timeout)}`)
    }
    const ms = timeout === undefined || timeout === Infinity ? undefined : Math.max(0, timeout)
    const found = await this.#db.waitUntil(key, ms, async () =>
      (await this.#run('notified', [key])) ? true : undefined,
    )
    return found ?? false
  }

  /** One upsert of the key's notification (kept `ttl` ms) that also NOTIFYs its waiters. */
  async waitNotify(key: string, ttl: number): Promise<void> {
    await this.#run('notify', [checkKey(key), checkTtl(ttl), this.#db.channel])
    this.#db.sweepSoon()
  }

  /** The live value of a counter (`undefined` if absent or expired). For tests and debugging. */
  async peek(key: string): Promise<number | undefined> {
    const { rows } = await this.#db.query<{ value: string }>({ text: this.#sql.peek, values: [checkKey(key)] })
    return rows[0] ? Number(rows[0].value) : undefined
  }

  /**
   * Stop: pending waits fail with `ConnectionClosedError`, the LISTEN connection is given back,
   * and the pool is ended if the backend built it (a given `pool` stays open).
   */
  async close(): Promise<void> {
    await this.#db.close()
  }
}
