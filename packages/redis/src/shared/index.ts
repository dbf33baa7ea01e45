/**
 * `@tq/redis/shared`: what tq's Redis adapters share — the broker and the rate-limiter backend
 * here, the result backend in `@tq/results-redis` — so they classify errors, take their ioredis
 * client and run blocking commands the same way:
 *
 * - `classifyRedisFailure(error, other)`: an ioredis error as tq's connection errors
 *   (`ConnectionFailedError`, `ConnectionClosedError`, `BrokerConnectionError`), or what `other`
 *   makes of the rest (a `BrokerError`, a `ResultError`);
 * - `RedisClientHandle`: a client opened from a URL (owned) or given (borrowed, closed only with
 *   `closeClient`), with the redacted server description and the explicit SELECT that catches a
 *   database index the server does not have; `quit(client)` closes one cleanly;
 * - `BlockingPool`: the connections blocking commands hold while they wait.
 *
 * Semver-covered like the main entry; meant for Redis adapters, not for applications.
 */
export { classifyRedisFailure, isReplyError, type OtherRedisError } from './classify-error.ts'
export {
  RedisClientHandle,
  quit,
  toBuffer,
  type AdapterRedisOptions,
  type RedisClientSource,
  type RedisClientSpec,
} from './client.ts'
export { BlockingPool, type BlockingPoolOptions } from './blocking-pool.ts'
