import type { Broker, EnqueueOptions } from '../broker.ts'
import { Message } from '../message.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { MessageFields } from '../wire.ts'
import { truthy } from './lookup.ts'
import type { Middleware, ProcessOutcome } from './middleware.ts'

/** The actor options `Pipelines` understands. */
export interface PipelinesOptions {
  /** Do not append the previous step's result to this message's arguments. */
  pipeIgnore?: boolean
}

function isFields(value: unknown): value is MessageFields {
  return typeof value === 'object' && value !== null && typeof (value as { actorName?: unknown }).actorName === 'string'
}

/** The next step of a pipeline, from the `pipeTarget` option (camelCase fields, or a wire dict). */
function nextStep(target: unknown): Message | undefined {
  if (target === undefined || target === null) return undefined
  if (isFields(target)) {
    // A fresh message, so the in-flight message's options are not shared with the next step.
    return Message.fromFields({
      ...target,
      args: [...target.args],
      kwargs: { ...target.kwargs },
      options: { ...target.options },
    })
  }
  return Message.fromWire(target)
}

/**
 * Runs the next step of a pipeline. A message built by `pipeline([...])` carries the next
 * step in its `pipeTarget` option; when the message succeeds, that step is enqueued with the
 * result appended as its last positional argument (unless `pipeIgnore` is set on the next
 * message, or on the current actor). A `delay` option on the next message delays it.
 *
 * A failed step stops the pipeline: nothing after it is enqueued. The next step keeps the
 * `messageId` and `messageTimestamp` it was created with, so `pipeline.getResult()` can find it.
 */
export class Pipelines implements Middleware {
  readonly actorOptions: readonly string[] = ['pipeIgnore', 'pipeTarget']

  // Synchronous unless there is a next step to enqueue.
  afterProcessMessage(broker: Broker, proxy: MessageProxy, outcome: ProcessOutcome): Promise<void> | undefined {
    if (outcome.exception !== undefined || proxy.failed) return undefined
    const next = nextStep(proxy.options.pipeTarget)
    if (!next) return undefined
    return this.#enqueue(broker, proxy, next, outcome)
  }

  async #enqueue(broker: Broker, proxy: MessageProxy, next: Message, outcome: ProcessOutcome): Promise<void> {
    const actor = broker.actors.get(proxy.actorName)
    const ignore = truthy(next.options.pipeIgnore) || truthy(actor?.options.pipeIgnore)
    if (!ignore) next.args.push(outcome.result === undefined ? null : outcome.result)
    const delay = next.options.delay
    const enqueueOptions: EnqueueOptions = {}
    if (typeof delay === 'number') enqueueOptions.delay = delay
    await broker.enqueue(next, enqueueOptions)
  }
}
