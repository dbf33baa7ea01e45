import { QueueJoinTimeoutError } from '../errors.ts'
import type { Notifier } from '../notifier.ts'

export interface JoinPollOptions {
  /** Give up after this many ms with `QueueJoinTimeoutError` (default: wait forever). */
  timeout?: number | undefined
  /** Ms between checks when nothing wakes the loop earlier (default 100). */
  interval?: number | undefined
  /** Checked again at once when notified (e.g. when this process settles a message). */
  wake?: Notifier | undefined
}

/**
 * The loop behind `Broker.join()` on a broker that can only be asked: resolve once `isEmpty()`
 * holds, checking every `interval` ms (or on `wake`), and reject with `QueueJoinTimeoutError`
 * naming `queueName` when `timeout` passes first.
 */
export async function pollUntilEmpty(
  queueName: string,
  isEmpty: () => Promise<boolean>,
  options: JoinPollOptions = {},
): Promise<void> {
  const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout
  const interval = options.interval ?? 100
  for (;;) {
    if (await isEmpty()) return
    const remaining = deadline - Date.now()
    if (remaining <= 0) throw new QueueJoinTimeoutError(queueName, options.timeout ?? 0)
    const wait = Math.min(remaining, interval)
    if (options.wake) await options.wake.wait(wait)
    else await new Promise((resolve) => setTimeout(resolve, wait))
  }
}
