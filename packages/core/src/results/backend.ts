import type { MessageFields } from '../wire.ts'

export interface ResultGetOptions {
  /** Wait for the result instead of failing with `ResultMissingError`. */
  block?: boolean
  /** How long a blocking read waits, in ms (default 10 000). */
  timeout?: number
}

/**
 * Where actors' results are stored and read. Implementations: `StubResultBackend` (in
 * memory), `RedisResultBackend` (`@tq/results-redis`).
 */
export interface ResultBackend {
  /** Read a message's result; throws `ResultMissingError`, `ResultTimeoutError` or `ResultFailureError`. */
  getResult(message: MessageFields, options?: ResultGetOptions): Promise<unknown>
  /** Store a successful result for `ttl` ms. */
  storeResult(message: MessageFields, result: unknown, ttl: number): Promise<void>
  /** Store a failure (Dramatiq's `{__t, exn: {type, msg}}` shape) for `ttl` ms. */
  storeException(message: MessageFields, error: unknown, ttl: number): Promise<void>
}
