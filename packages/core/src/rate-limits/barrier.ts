import { InvalidArgumentError } from '../errors.ts'
import type { RateLimiterBackend } from './backend.ts'

export interface BarrierOptions {
  /** Ms after which the barrier (and its events) expire (default 900 000). */
  ttl?: number
}

export interface BarrierWaitOptions {
  /** Wait for the other parties (default true); with false, return at once. */
  block?: boolean
  /** How long a blocking wait lasts, in ms; absent waits until the barrier clears. */
  timeout?: number
}

/**
 * A countdown shared through a {@link RateLimiterBackend}: `create(n)` opens it for `n`
 * parties, and it clears when the last of them calls `wait`. `GroupCallbacks` uses one per
 * group run.
 *
 * Keys: the counter is `<key>`; clearing pushes an event to `<key>@events`, which blocking
 * waiters listen on. A barrier whose key has expired (or never existed) reads as cleared.
 *
 * ```ts
 * const barrier = new Barrier(backend, 'import-2024-06')
 * await barrier.create(3)
 * // in each of the three parties:
 * const cleared = await barrier.wait({ timeout: 60_000 })
 * ```
 */
export class Barrier {
  readonly backend: RateLimiterBackend
  readonly key: string
  readonly keyEvents: string
  readonly ttl: number

  constructor(backend: RateLimiterBackend, key: string, options: BarrierOptions = {}) {
    this.backend = backend
    this.key = key
    this.keyEvents = `${key}@events`
    this.ttl = options.ttl ?? 900_000
  }

  /** Open the barrier for `parties` parties. False if it already exists (it is not reset). */
  async create(parties: number): Promise<boolean> {
    if (!Number.isInteger(parties) || parties <= 0) {
      throw new InvalidArgumentError(`A barrier needs a positive whole number of parties, got ${String(parties)}`)
    }
    return this.backend.add(this.key, parties, this.ttl)
  }

  /**
   * Arrive at the barrier. True once every party has arrived: the last party gets true at once
   * and wakes the blocked ones; a call after that also returns true. Otherwise false when not
   * blocking or when `timeout` passes.
   */
  async wait(options: BarrierWaitOptions = {}): Promise<boolean> {
    // The last party's decrement would take the count below 1 and is refused: that clears it.
    const cleared = !(await this.backend.decr(this.key, 1, 1, this.ttl))
    if (cleared) {
      await this.backend.waitNotify(this.keyEvents, this.ttl)
      return true
    }
    if (!(options.block ?? true)) return false
    return this.backend.wait(this.keyEvents, options.timeout)
  }
}
