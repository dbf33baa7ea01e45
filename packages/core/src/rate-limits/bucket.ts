import type { RateLimiterBackend } from './backend.ts'
import { RateLimiter } from './rate-limiter.ts'

export interface BucketRateLimiterOptions {
  /** Acquisitions allowed per bucket (default 1). */
  limit?: number
  /** The bucket length in ms (default 1000). */
  bucket?: number
}

/**
 * Allows `limit` acquisitions per fixed time bucket (`bucket` ms, aligned to the Unix epoch).
 * Slots are not released; they expire with their bucket. Because buckets are fixed, up to
 * `2 * limit` acquisitions can happen around a bucket boundary; use `WindowRateLimiter` for a
 * sliding window.
 *
 * Key: `<key>@<now - now % bucket>` (Unix ms).
 */
export class BucketRateLimiter extends RateLimiter {
  readonly limit: number
  readonly bucket: number

  constructor(backend: RateLimiterBackend, key: string, options: BucketRateLimiterOptions = {}) {
    super(backend, key)
    this.limit = options.limit ?? 1
    this.bucket = options.bucket ?? 1000
  }

  /** The key of the current bucket. */
  currentKey(now = Date.now()): string {
    return `${this.key}@${now - (now % this.bucket)}`
  }

  protected override async acquireSlot(): Promise<boolean> {
    const key = this.currentKey()
    if (await this.backend.add(key, 1, this.bucket)) return true
    return this.backend.incr(key, 1, this.limit, this.bucket)
  }
}
