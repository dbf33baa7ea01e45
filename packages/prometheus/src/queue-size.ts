import type { Broker } from '@tq/core'

/**
 * The capability behind `dramatiq_queue_size` before @tq/core had `Broker.queueCounts()`: a
 * broker with a `getQueueSize(queue)` method still gets the gauge.
 *
 * @deprecated Implement `queueCounts(queueName)` (a `Broker` capability in @tq/core) instead:
 * `dramatiq_queue_size` is its `ready + delayed`, and other tools use the same counts.
 */
export interface QueueSizeCapable {
  /** Messages waiting in `queueName` (a canonical name) and its delay queue. */
  getQueueSize(queueName: string): number | Promise<number>
}

export type QueueSizeReader = (queueName: string) => Promise<number>

function toCount(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (typeof value === 'bigint') return Number(value)
  throw new TypeError(`${what} returned ${String(value)}, not a number`)
}

/**
 * How to read a queue's size from `broker`: the messages waiting in it and its delay queue,
 * `ready + delayed` of `broker.queueCounts(queue)` (every tq broker has it), else a legacy
 * `getQueueSize(queue)` method. `undefined` when the broker offers neither: no gauge then.
 */
export function queueSizeReader(broker: Broker): QueueSizeReader | undefined {
  if (typeof broker.queueCounts === 'function') {
    const counts = broker.queueCounts.bind(broker)
    return async (queue) => {
      const c = await counts(queue)
      return toCount(c.ready, 'queueCounts().ready') + toCount(c.delayed, 'queueCounts().delayed')
    }
  }
  const legacy = (broker as Partial<QueueSizeCapable>).getQueueSize
  if (typeof legacy === 'function') {
    const getQueueSize = legacy.bind(broker)
    return async (queue) => toCount(await getQueueSize(queue), 'getQueueSize')
  }
  return undefined
}
