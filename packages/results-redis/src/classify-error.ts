import {
  BrokerConnectionError,
  ConnectionClosedError,
  ConnectionFailedError,
  ErrorCode,
  ResultError,
  TqError,
} from '@tq/core'

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
/** Server replies that mean "not now" rather than "never". */
const TRANSIENT_REPLIES = new Set([
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'READONLY',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'NOREPLICAS',
])

/**
 * Map an error from ioredis (or the socket under it) to tq's error hierarchy:
 *
 * - a connection that could not be made (refused, DNS, connect timeout, ioredis giving up
 *   after `maxRetriesPerRequest` reconnects) → `ConnectionFailedError` (retryable);
 * - a connection that was lost or closed under a command → `ConnectionClosedError` (retryable);
 * - a server that cannot serve right now (`LOADING`, `BUSY`, `READONLY`, …) or a command
 *   timeout → `BrokerConnectionError` (retryable);
 * - anything else (`WRONGTYPE` because the key holds something that is not a result list,
 *   bugs) → `ResultError` (not retryable).
 *
 * A `TqError` is returned as it is; the original error is kept as `cause`.
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
    /connection (is )?closed|aborted due to connection close|stream isn't writeable|socket (closed|hang up|timeout)/i.test(
      message,
    )
  ) {
    return new ConnectionClosedError(`Redis connection lost: ${message}`, options)
  }
  if (/timed out/i.test(message)) {
    return new BrokerConnectionError(`Redis command timed out: ${message}`, undefined, options)
  }
  if (name === 'ReplyError') {
    const head = message.split(' ', 1)[0] ?? ''
    if (TRANSIENT_REPLIES.has(head)) {
      return new BrokerConnectionError(`Redis is temporarily unavailable: ${message}`, undefined, options)
    }
    return new ResultError(`Redis error: ${message}`, ErrorCode.RESULT, options)
  }
  return new ResultError(`Redis result backend error: ${message}`, ErrorCode.RESULT, options)
}
