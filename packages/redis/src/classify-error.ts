import { BrokerConnectionError, BrokerError, ConnectionClosedError, ConnectionFailedError, TqError } from '@tq/core'

/** Socket error codes that mean an established connection went away. */
const CLOSED_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END',
])
/** Socket error codes that mean a connection could not be made. */
const FAILED_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EADDRNOTAVAIL',
])
/** Server replies that mean "not now" rather than "never": retrying later can succeed. */
const TRANSIENT_REPLIES = ['LOADING', 'BUSY', 'MASTERDOWN', 'READONLY', 'TRYAGAIN', 'CLUSTERDOWN', 'NOREPLICAS']

/**
 * Map an error from ioredis (or the socket under it) to tq's error hierarchy:
 * - a connection that was lost (closed socket, command aborted by the close, reset) →
 *   `ConnectionClosedError` (retryable);
 * - a connection that could not be made (refused, DNS, connect timeout, ioredis giving up
 *   after `maxRetriesPerRequest` reconnects) → `ConnectionFailedError` (retryable);
 * - a server that is temporarily unable to serve (`LOADING`, `BUSY`, `READONLY`, …) or a
 *   command timeout → `BrokerConnectionError` (retryable);
 * - anything else (`WRONGTYPE`, script errors, bugs) → `BrokerError` (not retryable).
 * A `TqError` is returned as it is. The original error is kept as `cause`.
 */
export function classifyRedisError(error: unknown): TqError {
  if (TqError.is(error)) return error
  const name = error instanceof Error ? error.name : ''
  const message = error instanceof Error ? error.message : String(error)
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  const options = { cause: error }

  if (name === 'MaxRetriesPerRequestError') {
    return new ConnectionFailedError(`Redis is unreachable: ${message}`, options)
  }
  if (typeof code === 'string' && FAILED_CODES.has(code)) {
    return new ConnectionFailedError(`Could not connect to Redis: ${message}`, options)
  }
  if (typeof code === 'string' && CLOSED_CODES.has(code)) {
    return new ConnectionClosedError(`Redis connection lost: ${message}`, options)
  }
  if (
    name === 'AbortError' ||
    message === 'Connection is closed.' ||
    /connection (is )?closed|aborted due to connection close|stream isn't writeable|socket (closed|hang up|timeout)/i.test(
      message,
    )
  ) {
    return new ConnectionClosedError(`Redis connection lost: ${message}`, options)
  }
  if (/^connect ETIMEDOUT|^connect ECONNREFUSED/.test(message)) {
    return new ConnectionFailedError(`Could not connect to Redis: ${message}`, options)
  }
  if (message === 'Command timed out' || /timed out/i.test(message)) {
    return new BrokerConnectionError(`Redis command timed out: ${message}`, undefined, options)
  }
  if (name === 'ReplyError') {
    const head = message.split(' ', 1)[0] ?? ''
    if (TRANSIENT_REPLIES.includes(head)) {
      return new BrokerConnectionError(`Redis is temporarily unavailable: ${message}`, undefined, options)
    }
    return new BrokerError(`Redis error: ${message}`, undefined, options)
  }
  return new BrokerError(`Redis broker error: ${message}`, undefined, options)
}
