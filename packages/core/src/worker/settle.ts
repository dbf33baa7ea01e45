import { Backoff } from '../adapter/backoff.ts'
import type { Broker, Consumer } from '../broker.ts'
import { errorMeta, type Logger } from '../logger.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { sleep } from '../notifier.ts'
import { RESOLVED } from '../internal/promises.ts'

/** First pause before retrying a failed ack/nack (ms); it doubles up to the worker's `ackRetryDelay`. */
const FIRST_ACK_RETRY_DELAY = 100

export interface SettleContext {
  broker: Broker
  logger: Logger
  /** Longest pause between retries (ms). */
  ackRetryDelay: number
  /** Unix ms after which a failing ack/nack is given up on (a stop's deadline; Infinity otherwise). */
  deadline: () => number
}

/**
 * Ack the message, or nack it if it failed, with the ack/nack hooks. A retryable error (the
 * connection dropped) is retried — soon after a blip, backing off during an outage — until it
 * goes through or the stop deadline passes (the broker then redelivers the message). Never
 * rejects. With synchronous hooks (the default stack has none here) it costs the consumer's
 * promise and one more.
 */
export function settleMessage(context: SettleContext, consumer: Consumer, proxy: MessageProxy): Promise<void> {
  let attempt: Promise<void>
  try {
    attempt = settleOnce(context, consumer, proxy)
  } catch (error) {
    return settleRetrying(context, consumer, proxy, asError(error))
  }
  return attempt.then(undefined, (error: unknown) => settleRetrying(context, consumer, proxy, asError(error)))
}

/**
 * One attempt: the before hooks, the ack or nack, the after hooks. Waits only for what returned
 * a promise; may throw synchronously (a before hook's `SkipMessage`, a consumer's own throw).
 */
function settleOnce(context: SettleContext, consumer: Consumer, proxy: MessageProxy): Promise<void> {
  const { broker } = context
  const failed = proxy.failed
  const settle = (): Promise<void> =>
    (failed ? consumer.nack(proxy) : consumer.ack(proxy)).then(
      () => broker.runAfter(failed ? 'afterNack' : 'afterAck', proxy) ?? RESOLVED,
    )
  const before = broker.runBefore(failed ? 'beforeNack' : 'beforeAck', proxy)
  return before === undefined ? settle() : before.then(settle)
}

function asError(error: unknown): unknown {
  return error ?? new Error(`Settling threw ${String(error)}`)
}

/** After a failed attempt: retry a retryable error (hooks included) until the deadline, else log. */
async function settleRetrying(
  context: SettleContext,
  consumer: Consumer,
  proxy: MessageProxy,
  firstError: unknown,
): Promise<void> {
  const { broker, logger } = context
  const failed = proxy.failed
  let backoff: Backoff | undefined
  let error = firstError
  for (;;) {
    if (!broker.isRetryableError(error) || Date.now() >= context.deadline()) {
      logger.error(`Failed to ${failed ? 'nack' : 'ack'} message`, { messageId: proxy.messageId, ...errorMeta(error) })
      return
    }
    backoff ??= new Backoff({
      initial: Math.min(FIRST_ACK_RETRY_DELAY, context.ackRetryDelay),
      max: context.ackRetryDelay,
    })
    const delay = backoff.next()
    logger.warn(`Could not ${failed ? 'nack' : 'ack'} message; retrying in ${delay} ms`, {
      messageId: proxy.messageId,
      ...errorMeta(error),
    })
    await sleep(delay)
    try {
      await settleOnce(context, consumer, proxy)
      return
    } catch (caught) {
      error = asError(caught)
    }
  }
}
