import { Backoff } from '../adapter/backoff.ts'
import type { Broker, Consumer } from '../broker.ts'
import { errorMeta, type Logger } from '../logger.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { sleep } from '../notifier.ts'

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
  let before: Promise<void> | undefined
  try {
    before = context.broker.runBefore(proxy.failed ? 'beforeNack' : 'beforeAck', proxy)
  } catch (error) {
    return settleRetrying(context, consumer, proxy, asError(error))
  }
  if (before === undefined) return settleOnce(context, consumer, proxy)
  return before.then(
    () => settleOnce(context, consumer, proxy),
    (error: unknown) => settleRetrying(context, consumer, proxy, asError(error)),
  )
}

/** The ack or nack and the after hooks, once; a failure goes on to the retrying loop. */
function settleOnce(context: SettleContext, consumer: Consumer, proxy: MessageProxy): Promise<void> {
  const failed = proxy.failed
  let settling: Promise<void>
  try {
    settling = failed ? consumer.nack(proxy) : consumer.ack(proxy)
  } catch (error) {
    return settleRetrying(context, consumer, proxy, asError(error))
  }
  return settling.then(
    () => context.broker.runAfter(failed ? 'afterNack' : 'afterAck', proxy),
    (error: unknown) => settleRetrying(context, consumer, proxy, asError(error)),
  )
}

function asError(error: unknown): unknown {
  return error ?? new Error(`Settling threw ${String(error)}`)
}

/** The settle loop, from the error of a first attempt; each retry runs the hooks again. */
async function settleRetrying(
  context: SettleContext,
  consumer: Consumer,
  proxy: MessageProxy,
  firstError: unknown,
): Promise<void> {
  // `firstError` is never undefined (asError), so the loop starts with the retry decision.
  const { broker, logger } = context
  const failed = proxy.failed
  let backoff: Backoff | undefined
  let error = firstError
  for (;;) {
    if (error === undefined) {
      try {
        if (failed) {
          await broker.emitBefore('beforeNack', proxy)
          await consumer.nack(proxy)
          await broker.emitAfter('afterNack', proxy)
        } else {
          await broker.emitBefore('beforeAck', proxy)
          await consumer.ack(proxy)
          await broker.emitAfter('afterAck', proxy)
        }
        return
      } catch (caught) {
        error = asError(caught)
      }
    }
    if (broker.isRetryableError(error) && Date.now() < context.deadline()) {
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
      error = undefined
      continue
    }
    logger.error(`Failed to ${failed ? 'nack' : 'ack'} message`, { messageId: proxy.messageId, ...errorMeta(error) })
    return
  }
}
