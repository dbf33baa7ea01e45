import { performance } from 'node:perf_hooks'
import type { Broker } from '../broker.ts'
import { TimeLimitExceededError } from '../errors.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { orLookup } from './lookup.ts'
import type { Middleware } from './middleware.ts'

export interface TimeLimitOptions {
  /** Default for actors without `timeLimit`, in ms (default 600 000 = 10 minutes; `Infinity` = none). */
  timeLimit?: number
}

/** setTimeout's longest delay; longer limits are reached in several hops. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * Stops waiting for actors that run too long. When a message starts, a timer is armed for its
 * time limit (message option, else actor option, else the middleware's; `Infinity` or `null`
 * means none). When it fires, the message's `signal` aborts with a `TimeLimitExceededError`,
 * the worker stops waiting for the actor, and the message fails with that error (so
 * `Retries` retries it like any other failure).
 *
 * JavaScript cannot interrupt running code: an actor that ignores its `signal` keeps running
 * in the background after the message has failed, and synchronous CPU-bound code blocks the
 * event loop so no timer fires at all. See docs/time-limits.md.
 *
 * A message-level `timeLimit` of 0 falls through to the actor's (Dramatiq's rule).
 */
export class TimeLimit implements Middleware {
  readonly actorOptions: readonly string[] = ['timeLimit']
  readonly timeLimit: number
  readonly #timers = new Map<MessageProxy, NodeJS.Timeout>()

  constructor(options: TimeLimitOptions = {}) {
    this.timeLimit = options.timeLimit ?? 600_000
  }

  /** Messages whose time limit is armed right now. */
  get pending(): number {
    return this.#timers.size
  }

  async beforeProcessMessage(broker: Broker, proxy: MessageProxy): Promise<void> {
    const limit = orLookup(proxy.options, broker.actors.get(proxy.actorName), 'timeLimit', this.timeLimit)
    if (typeof limit !== 'number' || Number.isNaN(limit) || limit === Infinity) return
    this.#arm(broker, proxy, performance.now() + Math.max(0, limit), limit)
  }

  #arm(broker: Broker, proxy: MessageProxy, deadline: number, limit: number): void {
    const remaining = Math.max(0, deadline - performance.now())
    const timer = setTimeout(
      () => {
        if (performance.now() < deadline) {
          this.#arm(broker, proxy, deadline, limit)
          return
        }
        this.#timers.delete(proxy)
        broker.logger
          .child({ component: 'time-limit' })
          .warn(`Time limit of ${limit} ms exceeded by ${proxy.toString()}`, {
            messageId: proxy.messageId,
            actor: proxy.actorName,
            timeLimit: limit,
          })
        proxy.abort(new TimeLimitExceededError(`Time limit of ${limit} ms exceeded by ${proxy.actorName}`))
      },
      Math.min(remaining, MAX_TIMER),
    )
    timer.unref()
    this.#timers.set(proxy, timer)
  }

  #clear(proxy: MessageProxy): void {
    const timer = this.#timers.get(proxy)
    if (timer === undefined) return
    clearTimeout(timer)
    this.#timers.delete(proxy)
  }

  async afterProcessMessage(_broker: Broker, proxy: MessageProxy): Promise<void> {
    this.#clear(proxy)
  }

  async afterSkipMessage(_broker: Broker, proxy: MessageProxy): Promise<void> {
    this.#clear(proxy)
  }
}
