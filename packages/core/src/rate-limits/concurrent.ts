import type { RateLimiterBackend } from './backend.ts'
import { RateLimiter } from './rate-limiter.ts'

export interface ConcurrentRateLimiterOptions {
  /** How many holders at once (default 1: a distributed mutex). */
  limit?: number
  /** Ms after which the count expires, so a crashed holder cannot block forever (default 900 000). */
  ttl?: number
}

/**
 * Caps how many holders run at once across every process sharing the backend. With
 * `limit: 1` it is a distributed mutex. The counter lives under the key itself.
 *
 * ```ts
 * const mutex = new ConcurrentRateLimiter(backend, 'sync-accounts')
 * await mutex.acquire(() => syncAccounts())
 * ```
 */
export class ConcurrentRateLimiter extends RateLimiter {
  readonly limit: number
  readonly ttl: number

  constructor(backend: RateLimiterBackend, key: string, options: ConcurrentRateLimiterOptions = {}) {
    super(backend, key)
    this.limit = options.limit ?? 1
    this.ttl = options.ttl ?? 900_000
  }

  protected override async acquireSlot(): Promise<boolean> {
    if (await this.backend.add(this.key, 1, this.ttl)) return true
    return this.backend.incr(this.key, 1, this.limit, this.ttl)
  }

  protected override async releaseSlot(): Promise<void> {
    await this.backend.decr(this.key, 1, 0, this.ttl)
  }
}
