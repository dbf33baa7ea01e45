import type { Broker } from '../broker.ts'
import { SkipMessage } from '../errors.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { orLookup, truthy } from './lookup.ts'
import type { Middleware } from './middleware.ts'

export interface AgeLimitOptions {
  /** Default for actors without `maxAge`: ms after `messageTimestamp` past which a message is dropped. Unlimited by default. */
  maxAge?: number
}

/**
 * Dead-letters messages that are too old to be worth running. A message whose age
 * (`now - messageTimestamp`) is at least `maxAge` (message option, else actor option, else the
 * middleware's) is failed and skipped before its actor runs; `afterSkipMessage` fires and the
 * worker nacks it. `messageTimestamp` survives retries, so `maxAge` also bounds how long a
 * message keeps being retried.
 *
 * A message-level `maxAge` of 0 falls through to the actor's (Dramatiq's rule); an actor-level
 * 0 disables the limit.
 */
export class AgeLimit implements Middleware {
  readonly actorOptions: readonly string[] = ['maxAge']
  readonly maxAge: number | undefined

  constructor(options: AgeLimitOptions = {}) {
    this.maxAge = options.maxAge
  }

  beforeProcessMessage(broker: Broker, proxy: MessageProxy): void {
    const maxAge = orLookup(proxy.options, broker.actors.get(proxy.actorName), 'maxAge', this.maxAge)
    if (!truthy(maxAge) || typeof maxAge !== 'number') return
    const age = Date.now() - proxy.messageTimestamp
    if (age < maxAge) return
    broker.logger
      .child({ component: 'age-limit' })
      .warn(`Message ${proxy.messageId} is older than its age limit; dead-lettering it`, {
        messageId: proxy.messageId,
        actor: proxy.actorName,
        age,
        maxAge,
      })
    const skip = new SkipMessage(`Message age limit of ${maxAge} ms exceeded`)
    proxy.fail()
    // Kept on the delivery so result backends and `StubBroker.join` can report why it failed.
    proxy.stuffException(skip)
    throw skip
  }
}
