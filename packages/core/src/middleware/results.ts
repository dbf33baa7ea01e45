import type { Broker } from '../broker.ts'
import { errorMeta, type Logger } from '../logger.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { ResultBackend } from '../results/backend.ts'
import { presentLookup, truthy } from './lookup.ts'
import type { Middleware, ProcessOutcome } from './middleware.ts'

export interface ResultsOptions {
  /** Where results go. */
  backend: ResultBackend
  /** Store results of actors that do not say (default false). */
  storeResults?: boolean
  /** How long results are kept, in ms (default 600 000 = 10 minutes). */
  resultTtl?: number
}

/**
 * Stores actors' results in a result backend, so senders can read them with
 * `message.getResult()`, `pipeline.getResult()` or `group.getResults()`.
 *
 * Actor and message options: `storeResults`, `resultTtl`. The message option wins when it is
 * set (even to `false` or `0`), then the actor's, then the middleware's.
 *
 * - On success, the result is stored (an actor returning nothing stores `null`).
 * - A failure is stored only once the message is given up on (when it is nacked): a message
 *   that will be retried has no result until its last attempt. Readers then get a
 *   `ResultFailureError` carrying the error's type and message.
 * - A skipped message that was not failed stores `null`.
 *
 * Add it after the default stack so its hooks run before `Pipelines` enqueues the next step:
 *
 * ```ts
 * const broker = new StubBroker({ middleware: [...defaultMiddleware(), new Results({ backend })] })
 * ```
 */
export class Results implements Middleware {
  readonly actorOptions: readonly string[] = ['storeResults', 'resultTtl']
  /** Found by `broker.getResultBackend()`. */
  readonly resultBackend: ResultBackend
  readonly storeResults: boolean
  readonly resultTtl: number

  constructor(options: ResultsOptions) {
    this.resultBackend = options.backend
    this.storeResults = options.storeResults ?? false
    this.resultTtl = options.resultTtl ?? 600_000
  }

  /** The backend (Dramatiq's name for it). */
  get backend(): ResultBackend {
    return this.resultBackend
  }

  /** Whether to store this message's result, and for how long. */
  lookupOptions(broker: Broker, proxy: MessageProxy): { storeResults: boolean; resultTtl: number } {
    // An unknown actor still honours the message's own options (the failure is worth storing).
    const actor = broker.actors.get(proxy.actorName)
    const store = presentLookup(proxy.options, actor, 'storeResults', this.storeResults)
    const ttl = presentLookup(proxy.options, actor, 'resultTtl', this.resultTtl)
    return {
      storeResults: truthy(store),
      resultTtl: typeof ttl === 'number' && Number.isFinite(ttl) && ttl >= 0 ? ttl : this.resultTtl,
    }
  }

  async afterProcessMessage(broker: Broker, proxy: MessageProxy, outcome: ProcessOutcome): Promise<void> {
    const { storeResults, resultTtl } = this.lookupOptions(broker, proxy)
    if (storeResults) {
      // A failure is stored when the message is nacked (see afterNack).
      if (outcome.exception !== undefined || proxy.failed) return
      try {
        await this.resultBackend.storeResult(proxy.message, outcome.result, resultTtl)
      } catch (error) {
        // Most likely a value the encoder cannot carry: store that failure so readers see it
        // instead of waiting for a result that never comes.
        logger(broker).error(`Could not store the result of ${proxy.toString()}`, {
          messageId: proxy.messageId,
          ...errorMeta(error),
        })
        await this.resultBackend.storeException(proxy.message, error, resultTtl)
      }
      return
    }
    if (outcome.result !== undefined && outcome.result !== null && proxy.options.pipeTarget === undefined) {
      logger(broker).warn(
        `Actor ${proxy.actorName} returned a value but does not store results, so the value was discarded. ` +
          'Set storeResults on the actor (or the Results middleware) to keep it, or pipe it into another actor.',
        { messageId: proxy.messageId, actor: proxy.actorName },
      )
    }
  }

  async afterSkipMessage(broker: Broker, proxy: MessageProxy): Promise<void> {
    if (proxy.failed) return
    const { storeResults, resultTtl } = this.lookupOptions(broker, proxy)
    if (storeResults) await this.resultBackend.storeResult(proxy.message, null, resultTtl)
  }

  async afterNack(broker: Broker, proxy: MessageProxy): Promise<void> {
    if (!proxy.failed) return
    const { storeResults, resultTtl } = this.lookupOptions(broker, proxy)
    if (storeResults) {
      await this.resultBackend.storeException(proxy.message, proxy.exception ?? new Error('unknown'), resultTtl)
    }
  }
}

function logger(broker: Broker): Logger {
  return broker.logger.child({ component: 'results' })
}
