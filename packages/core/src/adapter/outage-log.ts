import type { Logger } from '../logger.ts'

/**
 * Logs a failure that repeats until it stops — a server that is down, a loop that keeps retrying
 * — as one warning when it starts, debug entries while it lasts and one info entry when it is
 * over, instead of a warning every retry.
 */
export class OutageLog {
  readonly #logger: Logger
  #failing = false

  constructor(logger: Logger) {
    this.#logger = logger
  }

  /** Whether the last report was a failure. */
  get failing(): boolean {
    return this.#failing
  }

  /** A failed attempt: a warning if it is the first since the last success, else a debug entry. */
  failed(msg: string, meta?: Record<string, unknown>): void {
    if (this.#failing) this.#logger.debug(msg, meta)
    else this.#logger.warn(msg, meta)
    this.#failing = true
  }

  /** A success: logs `msg` (info) only if it ends an outage. */
  recovered(msg: string, meta?: Record<string, unknown>): void {
    if (!this.#failing) return
    this.#failing = false
    this.#logger.info(msg, meta)
  }
}
