import { ErrorCode, ResultError, type TqError } from '@tq/core'
import { classifyRedisFailure } from '@tq/redis/shared'

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
 * A `TqError` is returned as it is; the original error is kept as `cause`. The classification
 * is @tq/redis's (`classifyRedisFailure` of `@tq/redis/shared`), with `ResultError` for the rest.
 */
export function classifyRedisError(error: unknown): TqError {
  return classifyRedisFailure(error, resultError)
}

function resultError(message: string, reply: boolean, options: { cause: unknown }): TqError {
  return new ResultError(
    `${reply ? 'Redis error' : 'Redis result backend error'}: ${message}`,
    ErrorCode.RESULT,
    options,
  )
}
