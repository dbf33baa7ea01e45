import { classifyPgError } from './classify-error.ts'
import type { PgPool, PgPoolClient } from './pg-types.ts'

/**
 * Run `fn` in a transaction on one connection of `pool`: committed if `fn` resolves, rolled back
 * if it throws (the error rethrown as `classifyPgError` reads it). A connection that failed under
 * the transaction is destroyed rather than given back to the pool.
 */
export async function inTransaction<T>(pool: PgPool, fn: (client: PgPoolClient) => Promise<T>): Promise<T> {
  let client: PgPoolClient
  try {
    client = await pool.connect()
  } catch (error) {
    throw classifyPgError(error)
  }
  let broken: unknown
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    broken = error
    await client.query('ROLLBACK').catch(() => undefined)
    throw classifyPgError(error)
  } finally {
    client.release(broken instanceof Error && classifyPgError(broken).retryable ? broken : undefined)
  }
}
