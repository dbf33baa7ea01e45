// What the PostgreSQL systems share: the default URL, the bench schemas, and a short-lived admin
// connection for the resets (drop a schema, analyze it) that happen before the clock starts.
import pg from 'pg'
import type { SystemName } from './types.ts'

export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test'

/** Each system keeps to a schema of its own (never its default, so nothing else is touched). */
export const SCHEMAS = {
  tq: 'tqbench',
  graphile: 'graphile_worker_bench',
  pgBoss: 'pgboss_bench',
  /** The application's own table of the transaction scenario. */
  app: 'tqbench_app',
} as const

/** The schema of each PostgreSQL system. */
export const SCHEMA_OF: Partial<Record<SystemName, string>> = {
  'tq-postgres': SCHEMAS.tq,
  'graphile-worker': SCHEMAS.graphile,
  'pg-boss': SCHEMAS.pgBoss,
}

/** Run `fn` on a fresh connection of its own, closed afterwards. */
export async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'tqbench-admin' })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** Drop every schema the PostgreSQL systems use (at the end of a run: the database is shared). */
export async function dropBenchSchemas(url: string): Promise<void> {
  for (const schema of Object.values(SCHEMAS)) await dropSchema(url, schema)
}

/** Drop a schema and everything in it (the systems' migrations then recreate it). */
export function dropSchema(url: string, schema: string): Promise<void> {
  return withAdmin(url, async (client) => {
    // A worker of an earlier scenario may still hold a lock for a moment: wait rather than fail.
    await client.query(`SET lock_timeout = '10s'`)
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })
}

/** Refresh the planner statistics of a schema's tables (after a bulk seed, as autovacuum soon would). */
export function analyzeSchema(url: string, schema: string): Promise<void> {
  return withAdmin(url, async (client) => {
    const { rows } = await client.query<{ sql: string }>(
      `SELECT format('ANALYZE %I.%I', schemaname, tablename) AS sql FROM pg_tables WHERE schemaname = $1`,
      [schema],
    )
    for (const { sql } of rows) await client.query(sql)
  })
}

/** The server's version, or `unreachable`. */
export async function postgresVersion(url: string): Promise<string> {
  try {
    return await withAdmin(url, async (client) => {
      const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)
      return (rows[0]?.v ?? '?').split(' ')[0] ?? '?'
    })
  } catch {
    return 'unreachable'
  }
}

/** `count` consecutive integers from 0, `size` at a time, without building them all at once. */
export function* ranges(count: number, size: number): Generator<number[]> {
  for (let start = 0; start < count; start += size) {
    yield Array.from({ length: Math.min(size, count - start) }, (_, i) => start + i)
  }
}
