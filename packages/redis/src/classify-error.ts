import { BrokerError, type TqError } from '@tq/core'
import { classifyRedisFailure } from './shared/classify-error.ts'

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
  return classifyRedisFailure(error, brokerError)
}

function brokerError(message: string, reply: boolean, options: { cause: unknown }): TqError {
  return new BrokerError(`${reply ? 'Redis error' : 'Redis broker error'}: ${message}`, undefined, options)
}
