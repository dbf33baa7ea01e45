import { actor } from '@tq/core'
import { uniqueQueueName } from '@tq/core/testing'
import { afterAll, afterEach, expect, it, vi } from 'vitest'
import { RedisBroker } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

// On Node 20 a long-lived AbortSignal never drops the dependants AbortSignal.any() gives it
// (nodejs/node#55351): one combined signal per receive() grew a worker by ~35 MB per million
// messages. The consumer combines the worker's signal once.

const namespace = uniqueNamespace('signal')
const raw = rawClient()
afterEach(() => vi.restoreAllMocks())
afterAll(async () => {
  await deleteNamespace(raw, namespace)
  raw.disconnect()
})

it('combines the caller signal once, not on every receive()', async () => {
  const broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [] })
  const queueName = uniqueQueueName('signal')
  const noop = actor('noop', () => undefined, { broker, queueName })
  for (let i = 0; i < 20; i++) await noop.send()
  const consumer = broker.consume(queueName, { prefetch: 1, timeout: 200 })
  const stop = new AbortController()
  const any = vi.spyOn(AbortSignal, 'any')
  for (let i = 0; i < 20; i++) {
    const [m] = await consumer.receive({ signal: stop.signal })
    await consumer.ack(m!)
  }
  expect(any.mock.calls.length).toBeLessThanOrEqual(1)
  await consumer.close()
  await broker.flush(queueName)
  await broker.close()
})
