import { errorMeta, type Logger } from '@tq/core'
import { classifySqsError } from './classify-error.ts'
import type { Delivery } from './message-proxy.ts'
import type { Receipts } from './receipts.ts'

export interface VisibilityExtenderOptions {
  readonly queueName: string
  /** Seconds each extension makes a message invisible for (the broker's `visibilityTimeout`). */
  readonly visibilityTimeout: number
  readonly receipts: Pick<Receipts, 'changeVisibility'>
  readonly logger: Logger
  /** The consumer's outstanding deliveries (read, never changed, here). */
  readonly outstanding: ReadonlySet<Delivery>
}

/**
 * Keeps the outstanding deliveries of one consumer invisible to other consumers: one timer, set
 * for the earliest extension due, extends every delivery due by then (or nearly) by
 * `visibilityTimeout` seconds, every half of it. A delivery whose extension failed for good is
 * left to its timeout (SQS may deliver it again); one that failed for now is retried within a
 * second.
 */
export class VisibilityExtender {
  /** Milliseconds after a (re)extension at which the next one is due: half the visibility timeout. */
  readonly interval: number
  readonly #options: VisibilityExtenderOptions
  #timer: NodeJS.Timeout | undefined
  #timerAt = Infinity

  constructor(options: VisibilityExtenderOptions) {
    this.#options = options
    this.interval = (options.visibilityTimeout * 1000) / 2
  }

  /** Set the timer for the earliest extension due (or clear it when none is). */
  schedule(): void {
    let next = Infinity
    for (const p of this.#options.outstanding) if (!p.extension && p.nextExtendAt < next) next = p.nextExtendAt
    if (next === Infinity) {
      this.#clear()
      return
    }
    if (this.#timer && this.#timerAt <= next) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timerAt = next
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined
        this.#timerAt = Infinity
        void this.#extend()
      },
      Math.max(0, next - Date.now()),
    )
    this.#timer.unref()
  }

  /** Extend nothing more (the broker is closing). */
  stop(): void {
    this.#clear()
    for (const p of this.#options.outstanding) p.nextExtendAt = Infinity
  }

  #clear(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#timerAt = Infinity
  }

  /** Extend the visibility of every outstanding delivery whose extension is due (or nearly). */
  async #extend(): Promise<void> {
    const window = Date.now() + this.interval / 2
    const due = [...this.#options.outstanding].filter((p) => !p.extension && p.nextExtendAt <= window)
    await Promise.all(
      due.map((delivery) => {
        const extension = this.#extendOne(delivery).finally(() => (delivery.extension = undefined))
        delivery.extension = extension
        return extension
      }),
    )
    this.schedule()
  }

  async #extendOne(delivery: Delivery): Promise<void> {
    const { queueName, visibilityTimeout, receipts, logger, outstanding } = this.#options
    const startedAt = Date.now()
    try {
      await receipts.changeVisibility(queueName, delivery.receiptHandle, visibilityTimeout)
      delivery.nextExtendAt = startedAt + this.interval
    } catch (caught) {
      const error = classifySqsError(caught)
      if (!outstanding.has(delivery)) return
      delivery.nextExtendAt = error.retryable ? Date.now() + Math.min(1000, this.interval / 2) : Infinity
      logger.warn(
        error.retryable
          ? 'Could not extend the visibility timeout of a message; retrying'
          : 'Could not extend the visibility timeout of a message; SQS may deliver it again',
        { messageId: delivery.messageId, queue: queueName, ...errorMeta(error) },
      )
    }
  }
}
