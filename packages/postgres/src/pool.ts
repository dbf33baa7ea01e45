import pg from 'pg'
import { errorMeta, type Logger } from '@tq/core'
import { classifyPgError } from './classify-error.ts'
import { describeConnection, type OwnPoolOptions } from './options.ts'
import type { PgPool } from './pg-types.ts'

/** How a tq component reaches PostgreSQL: your pool, or a URL for a pool of its own. */
export interface ConnectionOptions {
  /** Your node-postgres `Pool`; never ended by tq. Takes precedence over `connectionString`. */
  pool?: PgPool
  /** `postgres://…` for a pool of tq's own (default: node-postgres's `PG*` environment variables). */
  connectionString?: string | undefined
  /** Options of tq's own pool (ignored with `pool`). */
  poolOptions?: OwnPoolOptions
}

export interface OpenedPool {
  pool: PgPool
  /** Whether tq built it (and ends it on close). */
  owned: boolean
  /** Host and database for log lines (empty for a pool of yours). */
  where: Record<string, string>
}

/** The user's pool, or one of tq's own (max 10, `application_name`, an 'error' listener so a dying idle connection does not crash the process). */
export function openPool(options: ConnectionOptions, logger: Logger, applicationName = 'tq'): OpenedPool {
  if (options.pool) return { pool: options.pool, owned: false, where: {} }
  const own = new pg.Pool({
    max: 10,
    idleTimeoutMillis: 10_000,
    connectionTimeoutMillis: 10_000,
    application_name: applicationName,
    ...options.poolOptions,
    ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }),
  })
  own.on('error', (error) => {
    logger.warn('An idle PostgreSQL connection failed', errorMeta(classifyPgError(error)))
  })
  return { pool: own, owned: true, where: describeConnection(options.connectionString) }
}
