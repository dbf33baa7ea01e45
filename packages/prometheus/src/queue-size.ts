import { StubBroker, dqName } from '@tq/core'
import type { Broker } from '@tq/core'

/**
 * The optional broker capability behind `dramatiq_queue_size`. @tq/core's `Broker` does not
 * require it: a broker that can count the messages waiting in a queue adds this method, and
 * the `Prometheus` middleware finds it by its name.
 *
 * ```ts
 * class MyBroker extends Broker implements QueueSizeCapable {
 *   async getQueueSize(queueName: string): Promise<number> {
 *     return this.client.count(queueName) // ready + delayed messages of the canonical queue
 *   }
 * }
 * ```
 */
export interface QueueSizeCapable {
  /** Messages waiting in `queueName` (a canonical name) and its delay queue. */
  getQueueSize(queueName: string): number | Promise<number>
}

export type QueueSizeReader = (queueName: string) => Promise<number>

type Fn = (...args: unknown[]) => unknown

function method(target: object, name: string): Fn | undefined {
  const value = (target as Record<string, unknown>)[name]
  return typeof value === 'function' ? (value as Fn).bind(target) : undefined
}

function toCount(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (typeof value === 'bigint') return Number(value)
  throw new TypeError(`${what} returned ${String(value)}, not a number`)
}

/**
 * How to read a queue's size from `broker`, in order of preference:
 * 1. `getQueueSize(queue)` — the documented capability (`QueueSizeCapable`);
 * 2. `qsize(queue)` — Dramatiq's name, which `RedisBroker` implements (queue, delay queue and
 *    in-flight messages);
 * 3. `getQueueMessageCounts(queue)` → `{ ready, delayed }` — `RabbitmqBroker`;
 * 4. a `StubBroker`: `size(queue) + size(queue.DQ)`.
 * `undefined` when the broker offers none of them.
 */
export function queueSizeReader(broker: Broker): QueueSizeReader | undefined {
  const getQueueSize = method(broker, 'getQueueSize')
  if (getQueueSize) return async (queue) => toCount(await getQueueSize(queue), 'getQueueSize')
  const qsize = method(broker, 'qsize')
  if (qsize) return async (queue) => toCount(await qsize(queue), 'qsize')
  const counts = method(broker, 'getQueueMessageCounts')
  if (counts) {
    return async (queue) => {
      const result = (await counts(queue)) as { ready?: unknown; delayed?: unknown } | undefined
      return toCount(result?.ready, 'getQueueMessageCounts().ready') + toCount(result?.delayed ?? 0, 'delayed')
    }
  }
  if (broker instanceof StubBroker) {
    return (queue) => Promise.resolve(broker.size(queue) + broker.size(dqName(queue)))
  }
  return undefined
}
