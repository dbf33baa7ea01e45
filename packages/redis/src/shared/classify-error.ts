import { BrokerConnectionError, ConnectionClosedError, ConnectionFailedError, TqError, errorMessage } from '@tq/core'
import { socketErrorKind } from '@tq/core/adapter'

/** Server replies that mean "not now" rather than "never": retrying later can succeed. */
const TRANSIENT_REPLIES: ReadonlySet<string> = new Set([
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'READONLY',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'NOREPLICAS',
])

/** Messages of ioredis (and the socket under it) for a connection that went away under a command. */
const CLOSED_MESSAGE =
  /connection (is )?closed|aborted due to connection close|stream isn't writeable|socket (closed|hang up|timeout)/i

/** Whether `error` is a reply of the Redis server (ioredis's `ReplyError`: `WRONGTYPE …`, `ERR …`). */
export function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError'
}

/**
 * What an error that is not about the connection becomes: a `BrokerError` for the broker, a
 * `ResultError` for the result backend. `reply` tells a server reply from anything else.
 */
export type OtherRedisError = (message: string, reply: boolean, options: { cause: unknown }) => TqError

/**
 * Map an error from ioredis (or the socket under it) to tq's error hierarchy, the one
 * classification every Redis adapter of tq shares:
 * - a connection that could not be made (refused, DNS, connect timeout, ioredis giving up
 *   after `maxRetriesPerRequest` reconnects) → `ConnectionFailedError` (retryable);
 * - a connection that was lost (closed socket, command aborted by the close, reset) →
 *   `ConnectionClosedError` (retryable);
 * - a server that is temporarily unable to serve (`LOADING`, `BUSY`, `READONLY`, …) or a
 *   command timeout → `BrokerConnectionError` (retryable);
 * - anything else (`WRONGTYPE`, script errors, bugs) → what `other` makes of it.
 * A `TqError` is returned as it is. The original error is kept as `cause`.
 */
export function classifyRedisFailure(error: unknown, other: OtherRedisError): TqError {
  if (TqError.is(error)) return error
  const name = error instanceof Error ? error.name : ''
  const message = errorMessage(error)
  const options = { cause: error }

  if (name === 'MaxRetriesPerRequestError') {
    return new ConnectionFailedError(`Redis is unreachable: ${message}`, options)
  }
  const socket = socketErrorKind(error)
  if (socket === 'connect-failed') return new ConnectionFailedError(`Could not connect to Redis: ${message}`, options)
  if (socket === 'connection-closed' || name === 'AbortError' || CLOSED_MESSAGE.test(message)) {
    return new ConnectionClosedError(`Redis connection lost: ${message}`, options)
  }
  if (/timed out/i.test(message)) {
    return new BrokerConnectionError(`Redis command timed out: ${message}`, undefined, options)
  }
  const reply = name === 'ReplyError'
  if (reply && TRANSIENT_REPLIES.has(message.split(' ', 1)[0] ?? '')) {
    return new BrokerConnectionError(`Redis is temporarily unavailable: ${message}`, undefined, options)
  }
  return other(message, reply, options)
}
