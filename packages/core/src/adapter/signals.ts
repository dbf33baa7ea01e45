/**
 * Combines the signal a caller passes to every call (the worker passes the same one to each
 * `receive()`) with a signal of the callee's own (its close), creating the combined signal once
 * per caller signal instead of once per call: `AbortSignal.any()` per call leaks on Node 20 (a
 * long-lived source never drops its dependants, nodejs/node#55351), tens of MB per million
 * messages.
 */
export class SignalCombiner {
  readonly #own: AbortSignal
  #caller: AbortSignal | undefined
  #combined: AbortSignal | undefined

  constructor(own: AbortSignal) {
    this.#own = own
  }

  /** `own` alone, or `own` combined with `caller` (cached while the caller passes the same one). */
  with(caller: AbortSignal | undefined): AbortSignal {
    if (!caller) return this.#own
    if (caller !== this.#caller || !this.#combined) {
      this.#caller = caller
      this.#combined = AbortSignal.any([caller, this.#own])
    }
    return this.#combined
  }
}
