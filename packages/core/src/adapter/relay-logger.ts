import { noopLogger, type Logger } from '../logger.ts'

/**
 * A logger that forwards to a target which can be replaced later: the broker's logger. Parts a
 * broker builds in its constructor keep `broker.logger.child(…)`, and still log to the logger
 * `tq worker` (or the application) assigns to `broker.logger` afterwards. Children follow the
 * relay: each re-creates its child of the target only when the target changed.
 */
export class RelayLogger implements Logger {
  #target: Logger
  /** Bumped on every re-point, so children know their cached child is stale. */
  #version = 0

  constructor(target: Logger = noopLogger) {
    this.#target = target
  }

  /** The logger entries go to now. */
  get target(): Logger {
    return this.#target
  }

  /** Send every later entry (of this relay and of its children) to `target`. */
  pointTo(target: Logger): void {
    // Re-pointing a relay at itself (or at its own child) would loop forever.
    this.#target = target instanceof RelayLogger ? target.target : target
    this.#version++
  }

  /** Counts the re-points: a logger derived from the target is stale once this changed. */
  get version(): number {
    return this.#version
  }

  debug(msg: string, meta?: Record<string, unknown>): void {
    this.#target.debug(msg, meta)
  }
  info(msg: string, meta?: Record<string, unknown>): void {
    this.#target.info(msg, meta)
  }
  warn(msg: string, meta?: Record<string, unknown>): void {
    this.#target.warn(msg, meta)
  }
  error(msg: string, meta?: Record<string, unknown>): void {
    this.#target.error(msg, meta)
  }
  child(bindings: Record<string, unknown>): Logger {
    return new RelayChild(this, bindings)
  }
}

class RelayChild implements Logger {
  readonly #relay: RelayLogger
  readonly #bindings: Record<string, unknown>
  #cached: Logger | undefined
  #version = -1

  constructor(relay: RelayLogger, bindings: Record<string, unknown>) {
    this.#relay = relay
    this.#bindings = bindings
  }

  get #logger(): Logger {
    if (this.#version !== this.#relay.version || !this.#cached) {
      this.#cached = this.#relay.target.child(this.#bindings)
      this.#version = this.#relay.version
    }
    return this.#cached
  }

  debug(msg: string, meta?: Record<string, unknown>): void {
    this.#logger.debug(msg, meta)
  }
  info(msg: string, meta?: Record<string, unknown>): void {
    this.#logger.info(msg, meta)
  }
  warn(msg: string, meta?: Record<string, unknown>): void {
    this.#logger.warn(msg, meta)
  }
  error(msg: string, meta?: Record<string, unknown>): void {
    this.#logger.error(msg, meta)
  }
  child(bindings: Record<string, unknown>): Logger {
    return new RelayChild(this.#relay, { ...this.#bindings, ...bindings })
  }
}
