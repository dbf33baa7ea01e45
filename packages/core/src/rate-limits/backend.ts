/**
 * The storage behind rate limiters and barriers. Every operation must be atomic with respect
 * to every other client of the same store; values are integers and every `ttl` is in ms.
 *
 * Implementations: `StubRateLimiterBackend` (in memory, one process) and
 * `RedisRateLimiterBackend` (`@tq/redis`, shared with Dramatiq: same keys, decimal-string
 * values).
 *
 * Not promised: fairness between waiters, or that a `ttl` is refreshed by reads.
 */
export interface RateLimiterBackend {
  /** Set `key` to `value` (expiring after `ttl`) only if it does not exist. True if it was set. */
  add(key: string, value: number, ttl: number): Promise<boolean>
  /**
   * Add `amount` to `key` (absent counts as 0) unless the result would exceed `maximum`; the
   * ttl is reset on success. True if it was incremented.
   */
  incr(key: string, amount: number, maximum: number, ttl: number): Promise<boolean>
  /**
   * Subtract `amount` from `key` (absent counts as 0) unless the result would fall below
   * `minimum`; the ttl is reset on success. True if it was decremented.
   */
  decr(key: string, amount: number, minimum: number, ttl: number): Promise<boolean>
  /**
   * Add `amount` to `key` only if neither `key + amount` nor `amount + Σ values of keys()`
   * exceeds `maximum` (`keys` is called inside the atomic section and usually includes `key`).
   */
  incrAndSum(key: string, keys: () => string[], amount: number, maximum: number, ttl: number): Promise<boolean>
  /**
   * Wait until `key` has been notified with {@link waitNotify} (at once if it already has, and
   * the notification has not expired). `timeout` in ms; absent waits forever. True if notified.
   */
  wait(key: string, timeout?: number): Promise<boolean>
  /** Record a notification on `key` (kept for `ttl` ms) and wake its waiters. */
  waitNotify(key: string, ttl: number): Promise<void>
}
