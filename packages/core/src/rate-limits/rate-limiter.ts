import { RateLimitExceededError } from '../errors.ts'
import type { RateLimiterBackend } from './backend.ts'

export interface AcquireOptions {
  /**
   * Throw `RateLimitExceededError` when no slot is free (default true). Inside an actor that
   * error is retried with backoff by `Retries`. With `false`, `acquire` resolves with
   * `{ acquired: false }` instead and does not run the function.
   */
  raiseOnFailure?: boolean
}

/** What `acquire` resolves with: whether a slot was taken, and the function's result if so. */
export type AcquireResult<T> = { acquired: true; result: T } | { acquired: false; result: undefined }

/**
 * The base of rate limiters: a key in a {@link RateLimiterBackend} and a way to take and give
 * back a slot. JavaScript has no `with`, so there are two ways to use one:
 *
 * ```ts
 * // Run a function while holding a slot (released afterwards, even if it throws):
 * const { result } = await limiter.acquire(() => callApi())
 *
 * // Or take and release the slot yourself:
 * if (await limiter.tryAcquire()) {
 *   try { await callApi() } finally { await limiter.release() }
 * }
 * ```
 */
export abstract class RateLimiter {
  readonly backend: RateLimiterBackend
  readonly key: string

  constructor(backend: RateLimiterBackend, key: string) {
    this.backend = backend
    this.key = key
  }

  /** Take a slot. */
  protected abstract acquireSlot(): Promise<boolean>

  /** Give a slot back (a no-op for limiters whose slots expire by themselves). */
  protected async releaseSlot(): Promise<void> {}

  /** Try to take a slot; true if taken. Pair every successful call with {@link release}. */
  tryAcquire(): Promise<boolean> {
    return this.acquireSlot()
  }

  /** Give back a slot taken by {@link tryAcquire}. */
  release(): Promise<void> {
    return this.releaseSlot()
  }

  /**
   * Run `fn` while holding a slot, then release it (also when `fn` throws). When no slot is
   * free: throws `RateLimitExceededError`, or with `raiseOnFailure: false` resolves with
   * `{ acquired: false, result: undefined }` without running `fn`.
   */
  acquire<T>(fn: () => T | PromiseLike<T>, options?: { raiseOnFailure?: true }): Promise<{ acquired: true; result: T }>
  acquire<T>(fn: () => T | PromiseLike<T>, options: AcquireOptions): Promise<AcquireResult<T>>
  async acquire<T>(fn: () => T | PromiseLike<T>, options: AcquireOptions = {}): Promise<AcquireResult<T>> {
    const acquired = await this.acquireSlot()
    if (!acquired) {
      if (options.raiseOnFailure ?? true) {
        throw new RateLimitExceededError(`rate limit exceeded for key ${JSON.stringify(this.key)}`)
      }
      return { acquired: false, result: undefined }
    }
    try {
      return { acquired: true, result: await fn() }
    } finally {
      await this.releaseSlot()
    }
  }
}
