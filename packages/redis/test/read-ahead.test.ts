import { Worker, actor, type MessageProxy } from '@tq/core'
import { Ledger, uniqueQueueName } from '@tq/core/testing'
import { afterAll, expect, it } from 'vitest'
import { RedisBroker } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

// The consumer fetches ahead (up to two fetches in flight) and sends acks with its next fetch.
// Neither may break the prefetch bound, lose a message fetched ahead, or leave an ack unsent.

const namespace = uniqueNamespace('readahead')
const raw = rawClient()
afterAll(async () => {
  await deleteNamespace(raw, namespace)
  raw.disconnect()
})

const acksKey = (broker: RedisBroker, queueName: string): string => broker.acksKey(queueName)

async function setup(count: number): Promise<{ broker: RedisBroker; queueName: string }> {
  const broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [] })
  const queueName = uniqueQueueName('readahead')
  const noop = actor('noop', (_i: number) => undefined, { broker, queueName })
  await broker.enqueueMany(Array.from({ length: count }, (_, i) => noop.message(i)))
  return { broker, queueName }
}

it('never holds more than prefetch deliveries, however fast they are acked', async () => {
  const { broker, queueName } = await setup(200)
  const consumer = broker.consume(queueName, { prefetch: 4, timeout: 500 })
  let unacked = 0
  let most = 0
  let received = 0
  const acks: Promise<void>[] = []
  while (received < 200) {
    const batch = await consumer.receive()
    unacked += batch.length
    received += batch.length
    most = Math.max(most, unacked)
    // Ack half at once, so fetches start while deliveries are still held.
    for (const m of batch.slice(0, Math.ceil(batch.length / 2))) acks.push(consumer.ack(m).then(() => void unacked--))
    for (const m of batch.slice(Math.ceil(batch.length / 2))) {
      unacked--
      acks.push(consumer.ack(m))
    }
    // The Redis ack set holds what this consumer fetched and Redis has not seen acked.
    expect(await raw.scard(acksKey(broker, queueName))).toBeLessThanOrEqual(4)
  }
  await Promise.all(acks)
  expect(most).toBeLessThanOrEqual(4)
  await consumer.close()
  expect(await raw.scard(acksKey(broker, queueName))).toBe(0)
  expect(await raw.hlen(broker.key(`${queueName}.msgs`))).toBe(0)
  await broker.close()
})

it('returns messages fetched ahead to the queue on close, and sends every pending ack', async () => {
  const { broker, queueName } = await setup(50)
  const consumer = broker.consume(queueName, { prefetch: 8, timeout: 500 })
  const first = await consumer.receive()
  expect(first).toHaveLength(8)
  await Promise.all(first.map((m) => consumer.ack(m)))
  const second = await consumer.receive()
  expect(second).toHaveLength(8)
  // Four slots free: the next receive() sends a fetch of 4 with those acks on board; the worker
  // stops waiting before it lands, so its messages stay fetched ahead in the consumer.
  const acks = second.slice(0, 4).map((m) => consumer.ack(m))
  const stop = new AbortController()
  const receiving = consumer.receive({ signal: stop.signal })
  stop.abort()
  expect(await receiving).toEqual([])
  // The acks resolve when the fetch they rode on lands.
  await Promise.all(acks)
  const held: MessageProxy[] = second.slice(4)
  expect(await raw.scard(acksKey(broker, queueName))).toBe(held.length + 4)
  await consumer.close()
  // Closing returned the 4 fetched ahead; the held ones stay in flight until settled.
  expect(await raw.scard(acksKey(broker, queueName))).toBe(held.length)
  expect(await raw.llen(broker.key(queueName))).toBe(50 - 16)
  await consumer.requeue(held)
  expect(await raw.scard(acksKey(broker, queueName))).toBe(0)
  expect(await raw.llen(broker.key(queueName))).toBe(50 - 12)
  await broker.flush(queueName)
  await broker.close()
})

it('a worker at concurrency 1 processes every message once and leaves no ack behind', async () => {
  const broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [] })
  const queueName = uniqueQueueName('readahead')
  const ledger = new Ledger<number>()
  const work = actor('work', (i: number) => ledger.record(i), { broker, queueName })
  await broker.enqueueMany(Array.from({ length: 500 }, (_, i) => work.message(i)))
  const worker = new Worker(broker, { concurrency: 1, workerTimeout: 100 })
  await worker.start()
  await ledger.waitForTotal(500, 10_000)
  await broker.join(queueName, { timeout: 5000 })
  await worker.stop()
  expect(ledger.duplicates).toEqual([])
  expect(ledger.total).toBe(500)
  expect(await raw.scard(acksKey(broker, queueName))).toBe(0)
  expect(await raw.hlen(broker.key(`${queueName}.msgs`))).toBe(0)
  await broker.close()
})
