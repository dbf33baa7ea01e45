import type { Broker } from '../broker.ts'
import { Message } from '../message.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { RateLimiterBackend } from '../rate-limits/backend.ts'
import { Barrier } from '../rate-limits/barrier.ts'
import type { Middleware, ProcessOutcome } from './middleware.ts'

export interface GroupCallbacksOptions {
  /** Where the group barriers live (shared by every worker: use a Redis backend in production). */
  rateLimiterBackend: RateLimiterBackend
  /** How long a group's barrier lives, in ms (default 86 400 000 = 1 day). */
  barrierTtl?: number
}

/**
 * Runs a group's completion callbacks (`group.addCompletionCallback(message)`) once every
 * child has succeeded. `group.run()` creates a barrier named by a fresh UUID with one party
 * per child and tags each child message with `groupCompletionUuid` and
 * `groupCompletionCallbacks`; each child that succeeds arrives at the barrier, and the one
 * that clears it enqueues the callbacks (with their original ids).
 *
 * A child that fails for good (or is skipped) never arrives, so the callbacks never run.
 */
export class GroupCallbacks implements Middleware {
  readonly actorOptions: readonly string[] = []
  readonly rateLimiterBackend: RateLimiterBackend
  readonly barrierTtl: number

  constructor(options: GroupCallbacksOptions) {
    this.rateLimiterBackend = options.rateLimiterBackend
    this.barrierTtl = options.barrierTtl ?? 86_400_000
  }

  async afterProcessMessage(broker: Broker, proxy: MessageProxy, outcome: ProcessOutcome): Promise<void> {
    if (outcome.exception !== undefined || proxy.failed) return
    const uuid = proxy.options.groupCompletionUuid
    const callbacks = proxy.options.groupCompletionCallbacks
    if (typeof uuid !== 'string' || !Array.isArray(callbacks)) return
    const barrier = new Barrier(this.rateLimiterBackend, uuid, { ttl: this.barrierTtl })
    if (!(await barrier.wait({ block: false }))) return
    broker.logger.child({ component: 'group-callbacks' }).debug(`Group ${uuid} completed; enqueueing its callbacks`, {
      messageId: proxy.messageId,
      callbacks: callbacks.length,
    })
    for (const fields of callbacks) await broker.enqueue(Message.fromFields(fields))
  }
}
