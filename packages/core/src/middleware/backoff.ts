/** Options of {@link computeBackoff}. */
export interface BackoffOptions {
  /** The base delay in ms: the first backoff (attempt 0) is between `factor` and `2 * factor`. Default 5. */
  factor?: number
  /** Randomise each delay (default true). Without jitter the delays are exactly `factor * 2^attempts`. */
  jitter?: boolean
  /** The longest delay in ms (default 2000). */
  maxBackoff?: number
  /** The exponent stops growing here (default 32). */
  maxExponent?: number
  /** A source of uniform numbers in [0, 1); defaults to `Math.random` (tests pass their own). */
  random?: () => number
}

/**
 * An exponential backoff with jitter, in whole milliseconds: `factor * 2^min(attempts,
 * maxExponent)`, multiplied by a random factor in [1, 2). A value above `maxBackoff` becomes
 * `maxBackoff` times a random factor in [0.5, 1). The result is never below
 * `min(factor, maxBackoff)`, so the first retry never waits less than the minimum backoff.
 *
 * `attempts` counts the earlier attempts: pass 0 for the first retry.
 *
 * ```ts
 * computeBackoff(0, { factor: 15_000, maxBackoff: 604_800_000 }) // 15 000 – 30 000
 * computeBackoff(3, { factor: 100, maxBackoff: 500 })             // 250 – 500
 * ```
 */
export function computeBackoff(attempts: number, options: BackoffOptions = {}): number {
  const factor = Math.max(0, options.factor ?? 5)
  const maxBackoff = Math.max(0, options.maxBackoff ?? 2000)
  const maxExponent = options.maxExponent ?? 32
  const random = options.random ?? Math.random
  const jitter = options.jitter ?? true
  const exponent = Math.min(Math.max(0, attempts), maxExponent)
  let backoff = factor * 2 ** exponent
  if (jitter) backoff *= 1 + random()
  if (backoff > maxBackoff) backoff = jitter ? maxBackoff * (0.5 + random() / 2) : maxBackoff
  return Math.floor(Math.max(backoff, Math.min(factor, maxBackoff)))
}
