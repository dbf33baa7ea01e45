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
  // One timer for every armed message, set for the earliest deadline. It is re-armed only when a
  // new deadline is earlier, so messages with equal limits cost a map entry each and no timer.
  readonly #deadlines = new Map<MessageProxy, { deadline: number; limit: number; broker: Broker }>()
  #timer: NodeJS.Timeout | undefined
  #timerAt = Infinity

  constructor(options: TimeLimitOptions = {}) {
    this.timeLimit = options.timeLimit ?? 600_000
  }

  /** Messages whose time limit is armed right now. */
  get pending(): number {
    return this.#deadlines.size
  }

  beforeProcessMessage(broker: Broker, proxy: MessageProxy): void {
    const limit = orLookup(proxy.options, broker.actors.get(proxy.actorName), 'timeLimit', this.timeLimit)
    if (typeof limit !== 'number' || Number.isNaN(limit) || limit === Infinity) return
    const deadline = performance.now() + Math.max(0, limit)
    this.#deadlines.set(proxy, { deadline, limit, broker })
    if (deadline < this.#timerAt) this.#schedule(deadline)
  }

  #schedule(at: number): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timerAt = at
    // Limits longer than a timer can wait (about 24.8 days) are reached in several hops.
    this.#timer = setTimeout(() => this.#check(), Math.min(MAX_TIMER, Math.max(0, at - performance.now())))
    this.#timer.unref()
  }

  #check(): void {
    this.#timer = undefined
    this.#timerAt = Infinity
    const now = performance.now()
    let next = Infinity
    for (const [proxy, { deadline, limit, broker }] of this.#deadlines) {
      if (deadline > now) {
        if (deadline < next) next = deadline
        continue
      }
      this.#deadlines.delete(proxy)
      broker.logger
        .child({ component: 'time-limit' })
        .warn(`Time limit of ${limit} ms exceeded by ${proxy.toString()}`, {
          messageId: proxy.messageId,
          actor: proxy.actorName,
          timeLimit: limit,
        })
      proxy.abort(new TimeLimitExceededError(`Time limit of ${limit} ms exceeded by ${proxy.actorName}`))
    }
    if (next < Infinity) this.#schedule(next)
  }

  afterProcessMessage(_broker: Broker, proxy: MessageProxy): void {
    this.#deadlines.delete(proxy)
  }

  afterSkipMessage(_broker: Broker, proxy: MessageProxy): void {
    this.#deadlines.delete(proxy)
  }
}
