import { InvalidArgumentError, type BrokerOptions } from '@tq/core'
import { checkSchemaName } from './identifiers.ts'
import type { ConnectionOptions } from './pool.ts'

/** Options of the pool a broker builds for itself (node-postgres `PoolConfig` fields). */
export interface OwnPoolOptions {
  /** Most connections (default 10). */
  max?: number
  /** Ms before an idle connection closes (default 10 000). */
  idleTimeoutMillis?: number
  /** Ms to wait for a connection before failing (default 10 000). */
  connectionTimeoutMillis?: number
  /** `application_name` of the connections (default `tq`). */
  application_name?: string
  [key: string]: unknown
}

export interface PostgresBrokerOptions extends BrokerOptions, ConnectionOptions {
  /** The schema of tq's tables (default `tq`). */
  schema?: string
  /** Create or upgrade the tables on first use (default true); with false, a missing or older schema is an error. */
  migrate?: boolean
  /**
   * Wake idle consumers with LISTEN/NOTIFY (default true; holds one connection of the pool).
   * Turn off behind PgBouncer in transaction mode: consumers then only poll.
   */
  listen?: boolean
  /** Ms between claims of an idle consumer when no notification arrives (default 1000). */
  pollInterval?: number
  /** Ms between a consuming broker's heartbeats (default 5000). */
  heartbeatInterval?: number
  /** Ms without a heartbeat after which a worker's claimed messages go back to their queue (default 60 000). */
  heartbeatTimeout?: number
  /** Ms dead letters are kept (default 7 days, as Dramatiq). */
  deadLetterTtl?: number
  /** Prefetch of consumers opened without one (default 1). */
  defaultPrefetch?: number
}

export interface PostgresSettings {
  schema: string
  migrate: boolean
  listen: boolean
  pollInterval: number
  heartbeatInterval: number
  heartbeatTimeout: number
  deadLetterTtl: number
  defaultPrefetch: number
}

const SEVEN_DAYS = 7 * 24 * 60 * 60 * 1000

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`${name} must be a positive number, got ${JSON.stringify(value)}`)
  }
  return value
}

export function resolveSettings(options: PostgresBrokerOptions): PostgresSettings {
  const heartbeatInterval = positive('heartbeatInterval', options.heartbeatInterval, 5000)
  const heartbeatTimeout = positive('heartbeatTimeout', options.heartbeatTimeout, 60_000)
  if (heartbeatTimeout <= heartbeatInterval) {
    throw new InvalidArgumentError(
      `heartbeatTimeout (${heartbeatTimeout} ms) must be longer than heartbeatInterval (${heartbeatInterval} ms)`,
    )
  }
  return {
    schema: checkSchemaName(options.schema ?? 'tq'),
    migrate: options.migrate ?? true,
    listen: options.listen ?? true,
    pollInterval: positive('pollInterval', options.pollInterval, 1000),
    heartbeatInterval,
    heartbeatTimeout,
    deadLetterTtl: positive('deadLetterTtl', options.deadLetterTtl, SEVEN_DAYS),
    defaultPrefetch: positive('defaultPrefetch', options.defaultPrefetch, 1),
  }
}

/** Where a connection string points, without its password, for log lines. */
export function describeConnection(connectionString: string | undefined): Record<string, string> {
  if (!connectionString) return {}
  try {
    const url = new URL(connectionString)
    return {
      host: url.port ? `${url.hostname}:${url.port}` : url.hostname,
      ...(url.pathname.length > 1 ? { database: decodeURIComponent(url.pathname.slice(1)) } : {}),
    }
  } catch {
    return {}
  }
}
