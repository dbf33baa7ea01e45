import { computeBackoff, type BackoffOptions } from '../middleware/backoff.ts'

export { computeBackoff, type BackoffOptions }

export interface BackoffPolicy {
  /** The first delay in ms. */
  initial: number
  /** The longest delay in ms; each failure doubles the delay up to it. */
  max: number
  /** Spread each delay over [delay/2, delay) so many clients do not retry in step (default false). */
  jitter?: boolean
  /** A source of uniform numbers in [0, 1) for the jitter (tests pass their own). */
  random?: () => number
}

/**
 * The delay before the next attempt of something that keeps failing: `initial`, doubling on
 * every failure up to `max`; `reset()` after a success starts again from `initial`.
 *
 * ```ts
 * const backoff = new Backoff({ initial: 100, max: 30_000 })
 * for (;;) {
 *   try { await connect(); backoff.reset(); break }
 *   catch { await sleep(backoff.next()) } // 100, 200, 400, … 30 000
 * }
 * ```
 */
export class Backoff {
  readonly initial: number
  readonly max: number
  readonly #jitter: boolean
  readonly #random: () => number
  #failures = 0

  constructor(policy: BackoffPolicy) {
    this.initial = Math.max(0, policy.initial)
    this.max = Math.max(this.initial, policy.max)
    this.#jitter = policy.jitter ?? false
    this.#random = policy.random ?? Math.random
  }

  /** Failures since the last `reset()`. */
  get failures(): number {
    return this.#failures
  }

  /** The delay the next `next()` returns (without counting a failure). */
  peek(): number {
    // 2 ** 40 is far past any max: stop growing the exponent before it overflows to Infinity.
    const delay = Math.min(this.max, this.initial * 2 ** Math.min(this.#failures, 40))
    return this.#jitter ? Math.floor(delay / 2 + (this.#random() * delay) / 2) : delay
  }

  /** Count a failure and return how long to wait before the next attempt. */
  next(): number {
    const delay = this.peek()
    this.#failures++
    return delay
  }

  /** A success: the next failure waits `initial` again. */
  reset(): void {
    this.#failures = 0
  }
}
