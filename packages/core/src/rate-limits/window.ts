import type { RateLimiterBackend } from './backend.ts'
import { RateLimiter } from './rate-limiter.ts'

export interface WindowRateLimiterOptions {
  /** Acquisitions allowed per window (default 1). */
  limit?: number
  /** The window length in **seconds** (default 1), as in Dramatiq. */
  window?: number
}

/**
 * Allows `limit` acquisitions in any sliding window of `window` seconds (1-second
 * granularity). Slots are not released; they age out of the window.
 *
 * Keys: one counter per second, `<key>@<Unix seconds>`, each kept for the window's length.
 */
export class WindowRateLimiter extends RateLimiter {
  readonly limit: number
  readonly window: number

  constructor(backend: RateLimiterBackend, key: string, options: WindowRateLimiterOptions = {}) {
    super(backend, key)
    this.limit = options.limit ?? 1
    this.window = options.window ?? 1
  }

  /** The keys of the current window, newest first. */
  windowKeys(now = Date.now()): string[] {
    const second = Math.floor(now / 1000)
    const keys: string[] = []
    for (let i = 0; i < this.window; i++) keys.push(`${this.key}@${second - i}`)
    return keys
  }

  protected override async acquireSlot(): Promise<boolean> {
    const current = `${this.key}@${Math.floor(Date.now() / 1000)}`
    return this.backend.incrAndSum(current, () => this.windowKeys(), 1, this.limit, this.window * 1000)
  }
}
