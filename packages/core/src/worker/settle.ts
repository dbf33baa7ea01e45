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
 * goes through or the stop deadline passes (the broker then redelivers the message). Never throws.
 */
export async function settleMessage(context: SettleContext, consumer: Consumer, proxy: MessageProxy): Promise<void> {
  const { broker, logger } = context
  const failed = proxy.failed
  let backoff: Backoff | undefined
  for (;;) {
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
    } catch (error) {
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
        continue
      }
      logger.error(`Failed to ${failed ? 'nack' : 'ack'} message`, { messageId: proxy.messageId, ...errorMeta(error) })
      return
    }
  }
}
