import type { AnyActor, ErrorClass } from '../actor.ts'
import type { Broker } from '../broker.ts'
import { CancelledError, Retry } from '../errors.ts'
import { errorMeta } from '../logger.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { computeBackoff } from './backoff.ts'
import { orLookup, presentLookup, truthy } from './lookup.ts'
import type { Middleware, ProcessOutcome } from './middleware.ts'

/** Decides whether a failed message is retried: `retries` counts the earlier retries (0 on the first failure). */
export type RetryWhen = (retries: number, error: unknown) => boolean

export interface RetriesOptions {
  /** How many times a failing message is retried (default 20; `null` = forever). Attempts = `maxRetries + 1`. */
  maxRetries?: number | null
  /** The first backoff in ms (default 15 000). */
  minBackoff?: number
  /** The longest backoff in ms (default and upper bound 7 days). */
  maxBackoff?: number
  /** Retry only while this returns true; replaces `maxRetries`. */
  retryWhen?: RetryWhen
}

/** What an `onRetryExhausted` callback receives as its second argument. */
export interface RetryExhaustedInfo {
  /** Retries made before the last failure. */
  retries: number
  max_retries: number | null
}

const DEFAULT_MIN_BACKOFF = 15_000
/** Also the longest backoff ever used, whatever the options say. */
const DEFAULT_MAX_BACKOFF = 7 * 24 * 60 * 60 * 1000

function errorClasses(value: unknown): ErrorClass[] {
  const list = Array.isArray(value) ? (value as unknown[]) : [value]
  return list.filter((c): c is ErrorClass => typeof c === 'function')
}

function isOneOf(error: unknown, classes: readonly ErrorClass[]): boolean {
  return classes.some((c) => error instanceof c)
}

function traceback(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`
  return String(error)
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && !Number.isNaN(value) ? value : fallback
}

/**
 * Retries failed messages with exponential backoff, as Dramatiq does.
 *
 * After a failure: an error listed in `throws` dead-letters the message at once. Otherwise the
 * message's `retries` option is incremented and `traceback` and `requeueTimestamp` are set
 * (they travel with the message). If retries are exhausted (`retryWhen(retries, error)` is
 * false, or without `retryWhen`, `retries >= maxRetries`), the message is failed (dead-lettered)
 * and `onRetryExhausted` is sent `(message, { retries, max_retries })`. Otherwise the same
 * message (same `messageId` and `messageTimestamp`) is enqueued again after a backoff:
 * `Retry.delay` when the actor threw `new Retry('…', { delay })`, else
 * `computeBackoff(retries, { factor: minBackoff, maxBackoff })`. The failed delivery is acked.
 *
 * Options: `maxRetries`, `minBackoff` and `maxBackoff` are read from the message, else the
 * actor, else the middleware (explicit `0` and `null` are honoured); `retryWhen` from the actor
 * or the middleware only; `throws` from the message, else the actor.
 */
export class Retries implements Middleware {
  readonly actorOptions: readonly string[] = [
    'maxRetries',
    'minBackoff',
    'maxBackoff',
    'retryWhen',
    'throws',
    'onRetryExhausted',
  ]
  readonly maxRetries: number | null
  readonly minBackoff: number
  readonly maxBackoff: number
  readonly retryWhen: RetryWhen | undefined

  constructor(options: RetriesOptions = {}) {
    this.maxRetries = options.maxRetries === undefined ? 20 : options.maxRetries
    // `||`: a middleware value of 0 means "the default" (Dramatiq's rule).
    this.minBackoff = options.minBackoff || DEFAULT_MIN_BACKOFF
    this.maxBackoff = options.maxBackoff || DEFAULT_MAX_BACKOFF
    this.retryWhen = options.retryWhen
  }

  // Synchronous for a message that succeeded (most of them): no promise.
  afterProcessMessage(broker: Broker, proxy: MessageProxy, outcome: ProcessOutcome): Promise<void> | undefined {
    const error = outcome.exception
    if (error === undefined) return undefined
    return this.#retry(broker, proxy, error)
  }

  async #retry(broker: Broker, proxy: MessageProxy, error: unknown): Promise<void> {
    const logger = broker.logger.child({ component: 'retries' })
    const actor = broker.actors.get(proxy.actorName)
    const options = proxy.options

    // A cancelled message is done: acked (Tracking records it `cancelled`), never retried.
    if (error instanceof CancelledError) return

    const throws = orLookup(options, actor, 'throws', undefined)
    if (truthy(throws) && isOneOf(error, errorClasses(throws))) {
      logger.info(`Not retrying ${proxy.toString()}: it threw an error listed in throws`, {
        messageId: proxy.messageId,
      })
      proxy.fail()
      return
    }

    const retries = numberOr(options.retries, 0)
    options.retries = retries + 1
    options.traceback = traceback(error)
    options.requeueTimestamp = Date.now()

    const maxRetries = this.#maxRetries(options, actor)
    const retryWhen = this.#retryWhen(actor)
    const exhausted = retryWhen ? !retryWhen(retries, error) : maxRetries !== null && retries >= maxRetries
    if (exhausted) {
      logger.warn(`Retries exceeded for ${proxy.toString()}`, { messageId: proxy.messageId, retries, maxRetries })
      proxy.fail()
      const target = orLookup(options, actor, 'onRetryExhausted', undefined)
      if (truthy(target) && typeof target === 'string') {
        const info: RetryExhaustedInfo = { retries, max_retries: maxRetries }
        await broker.getActor(target).send(proxy.message.toWire(), info)
      }
      return
    }

    let delay: number
    if (error instanceof Retry && typeof error.delay === 'number') {
      delay = Math.max(0, error.delay)
    } else {
      const minBackoff = numberOr(presentLookup(options, actor, 'minBackoff', this.minBackoff), this.minBackoff)
      const maxBackoff = numberOr(presentLookup(options, actor, 'maxBackoff', this.maxBackoff), this.maxBackoff)
      delay = computeBackoff(retries, {
        factor: minBackoff,
        maxBackoff: Math.min(maxBackoff, DEFAULT_MAX_BACKOFF),
      })
    }
    logger.info(`Retrying ${proxy.toString()} in ${delay} ms`, {
      messageId: proxy.messageId,
      retries: retries + 1,
      delay,
    })
    try {
      await broker.enqueue(proxy.message, { delay })
    } catch (enqueueError) {
      // Acking now would lose the message: dead-letter it instead.
      logger.error(`Could not enqueue the retry of ${proxy.toString()}; dead-lettering it`, {
        messageId: proxy.messageId,
        ...errorMeta(enqueueError),
      })
      proxy.fail()
    }
  }

  #maxRetries(options: Record<string, unknown>, actor: AnyActor | undefined): number | null {
    const value = presentLookup(options, actor, 'maxRetries', this.maxRetries)
    if (value === null) return null
    return numberOr(value, this.maxRetries ?? Infinity)
  }

  #retryWhen(actor: AnyActor | undefined): RetryWhen | undefined {
    const fromActor = actor?.options.retryWhen
    if (typeof fromActor === 'function') return fromActor
    return this.retryWhen
  }
}
