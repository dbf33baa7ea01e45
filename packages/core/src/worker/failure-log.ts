import type { AnyActor } from '../actor.ts'
import { CancelledError, RateLimitExceededError, Retry } from '../errors.ts'
import { errorMeta, type Logger } from '../logger.ts'
import type { MessageProxy } from '../message-proxy.ts'

/**
 * Log an actor's failure at the level it deserves: a full rate limit and an asked-for retry are
 * debug entries, a cancel is info, an error the actor declared with `throws` is info, anything else an error.
 */
export function logActorFailure(logger: Logger, actor: AnyActor, proxy: MessageProxy, error: unknown): void {
  const meta = { messageId: proxy.messageId, actor: actor.actorName, ...errorMeta(error) }
  if (error instanceof RateLimitExceededError) {
    logger.debug(`Rate limit exceeded in ${proxy.toString()}`, meta)
  } else if (error instanceof CancelledError) {
    logger.info(`Cancelled ${proxy.toString()}`, meta)
  } else if (error instanceof Retry) {
    logger.debug(`Retry requested by ${proxy.toString()}`, meta)
  } else if (isThrown(actor, proxy, error)) {
    logger.info(`Failed to process message ${proxy.toString()} with expected error`, meta)
  } else {
    logger.error(`Failed to process message ${proxy.toString()}`, meta)
  }
}

/** Whether `error` is one the actor (or the message) declared it throws. */
function isThrown(actor: AnyActor, proxy: MessageProxy, error: unknown): boolean {
  const throws = (proxy.options['throws'] ?? actor.options.throws) as unknown
  if (!throws) return false
  const classes = Array.isArray(throws) ? throws : [throws]
  return classes.some((c) => typeof c === 'function' && error instanceof (c as abstract new () => unknown))
}
