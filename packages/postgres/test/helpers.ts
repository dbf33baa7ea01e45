import { randomUUID } from 'node:crypto'
import pg from 'pg'

/** The test database (trust auth on the machine; `.ci/run` starts the server). */
export const PG_URL = process.env['TQ_POSTGRES_TEST_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test'

/** A schema of its own for one test file, dropped by `dropSchema`. */
export function testSchema(prefix = 'tq_test'): string {
  return `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 10)}`
}

/** A pool on the test database. */
export function testPool(max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, max, application_name: 'tq-test' })
  pool.on('error', () => undefined)
  return pool
}

export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
}
