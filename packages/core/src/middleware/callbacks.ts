import type { Broker } from '../broker.ts'
import { errorMessage, errorTypeName } from '../errors.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { orLookup, truthy } from './lookup.ts'
import type { Middleware, ProcessOutcome } from './middleware.ts'

/** What an `onFailure` callback receives as its second argument. */
export interface FailureInfo {
  /** The error's class name (`TypeError`, `TimeLimitExceededError`, …). */
  type: string
  /** The error's message. */
  message: string
}

/**
 * Sends a message to another actor when a message succeeds or fails. Both options name an
 * actor (given as the actor or its name; messages carry the name):
 * - `onSuccess`: sent `(message, result)` after the actor returns;
 * - `onFailure`: sent `(message, { type, message })` after **every** failure, including ones
 *   `Retries` will retry.
 *
 * `message` is the original message as Dramatiq's wire dict (snake_case keys, as
 * `Message.toWire()` gives it), so callback actors written in Python and in TypeScript see the
 * same shape; `Message.fromWire(dict)` turns it back into a `Message`. Because `Retries` runs
 * first, its options already show this failure (`retries`, `traceback`, `requeue_timestamp`).
 *
 * ```ts
 * const onErr = actor('onErr', (message: WireMessage, error: FailureInfo) => { … })
 * const risky = actor(work, { onFailure: onErr })
 * ```
 */
export class Callbacks implements Middleware {
  readonly actorOptions: readonly string[] = ['onSuccess', 'onFailure']

  // Synchronous unless a callback is sent: most messages have none, and cost no promise here.
  afterProcessMessage(broker: Broker, proxy: MessageProxy, outcome: ProcessOutcome): Promise<void> | undefined {
    const actor = broker.actors.get(proxy.actorName)
    if (outcome.exception === undefined) {
      const target = orLookup(proxy.options, actor, 'onSuccess', undefined)
      if (!truthy(target) || typeof target !== 'string') return undefined
      return this.#send(broker, target, proxy, outcome.result === undefined ? null : outcome.result)
    }
    const target = orLookup(proxy.options, actor, 'onFailure', undefined)
    if (!truthy(target) || typeof target !== 'string') return undefined
    const info: FailureInfo = { type: errorTypeName(outcome.exception), message: errorMessage(outcome.exception) }
    return this.#send(broker, target, proxy, info)
  }

  async #send(broker: Broker, target: string, proxy: MessageProxy, value: unknown): Promise<void> {
    await broker.getActor(target).send(proxy.message.toWire(), value)
  }
}
