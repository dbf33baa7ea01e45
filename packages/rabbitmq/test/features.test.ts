import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  QueueJoinTimeoutError,
  QueueNotFoundError,
  Worker,
  actor,
  createBroker,
  dqName,
  registerBroker,
  xqName,
  type MessageProxy,
} from '@tq/core'
import { Ledger, uniqueQueueName, waitFor } from '@tq/core/testing'
import { RabbitmqBroker, brokerPlugin, type RabbitmqBrokerOptions } from '../src/index.ts'
import { AMQP_URL, RawAmqp } from './helpers.ts'

const prefix = uniqueQueueName('tq_rmq_features')
const raw = new RawAmqp()
const brokers: RabbitmqBroker[] = []
const workers: Worker[] = []
const used = new Set<string>()

function queue(name: string): string {
  const q = `${prefix}_${name}`
  used.add(q)
  return q
}

function newBroker(options: RabbitmqBrokerOptions = {}): RabbitmqBroker {
  const broker = new RabbitmqBroker({ url: AMQP_URL, middleware: [], connectionName: prefix, ...options })
  brokers.push(broker)
  return broker
}

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeout: 5000 })
  for (const b of brokers.splice(0)) await b.close()
})

afterAll(async () => {
  await raw.deleteTopology(...used)
  await raw.close()
})

describe('RabbitmqBroker', () => {
  it('serves higher brokerPriority first with maxPriority and prefetch 1 (the opposite of actor priority)', async () => {
    const q = queue('priority')
    const broker = newBroker({ maxPriority: 10 })
    const ledger = new Ledger<number>()
    const rec = actor('rec', (p: number) => ledger.record(p), { broker, queueName: q })
    const priorities = [3, 9, 0, 7, 1, 8, 5, 2, 6, 4]
    for (const p of priorities) await rec.sendWithOptions({ args: [p], brokerPriority: p })
    const worker = new Worker(broker, { concurrency: 1, queuePrefetch: 1, workerTimeout: 100 })
    workers.push(worker)
    await worker.start()
    await ledger.waitForTotal(priorities.length, 5000)
    expect(ledger.order).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
  })

  it('rejects invalid options and priorities with InvalidArgumentError', async () => {
    expect(() => new RabbitmqBroker({ middleware: [], maxPriority: 0 })).toThrow(InvalidArgumentError)
    expect(() => new RabbitmqBroker({ middleware: [], maxPriority: 256 })).toThrow(InvalidArgumentError)
    expect(() => new RabbitmqBroker({ middleware: [], url: AMQP_URL, urls: [AMQP_URL] })).toThrow(InvalidArgumentError)
    expect(() => new RabbitmqBroker({ middleware: [], url: 'redis://127.0.0.1' })).toThrow(InvalidArgumentError)
    const broker = newBroker({ maxPriority: 10 })
    const rec = actor('rec', () => undefined, { broker, queueName: queue('bad_priority') })
    await expect(rec.sendWithOptions({ args: [], brokerPriority: 300 })).rejects.toThrow(InvalidArgumentError)
    await expect(rec.sendWithOptions({ args: [], brokerPriority: 1.5 })).rejects.toThrow(InvalidArgumentError)
    expect(new RabbitmqBroker({ middleware: [], url: AMQP_URL, heartbeat: 5 }).urls[0]).toMatch(/[?&]heartbeat=5$/)
  })

  it('batches enqueueMany, counts queues, and flushes q, q.DQ and q.XQ', async () => {
    const q = queue('batch')
    const broker = newBroker()
    const rec = actor('rec', (_x: number | string) => undefined, { broker, queueName: q })
    const sent = await broker.enqueueMany(Array.from({ length: 50 }, (_, i) => rec.message(i)))
    expect(sent.map((m) => m.args[0])).toEqual(Array.from({ length: 50 }, (_, i) => i))
    await broker.enqueueMany([rec.message('later')], { delay: 60_000 })
    await raw.publish(xqName(q), Buffer.from('dead'))
    expect(await broker.getQueueMessageCounts(q)).toEqual({ ready: 50, delayed: 1, dead: 1 })
    await broker.flush(q)
    expect(await broker.getQueueMessageCounts(q)).toEqual({ ready: 0, delayed: 0, dead: 0 })
  })

  it('join waits for messages the worker holds, times out with QueueJoinTimeoutError, and refuses unknown queues', async () => {
    const q = queue('join')
    const broker = newBroker()
    const ledger = new Ledger<string>()
    const rec = actor('rec', (x: string) => ledger.record(x), { broker, queueName: q })
    await rec.send('waiting')
    await expect(broker.join(q, { timeout: 200 })).rejects.toThrow(QueueJoinTimeoutError)
    await rec.sendWithOptions({ args: ['delayed'], delay: 300 })
    const worker = new Worker(broker, { workerTimeout: 100 })
    workers.push(worker)
    await worker.start()
    await broker.join(q, { timeout: 5000 })
    expect(ledger.order).toEqual(['waiting', 'delayed'])
    await expect(broker.join(queue('never_declared'), { timeout: 100 })).rejects.toThrow(QueueNotFoundError)
  })

  it('publishes without confirms when confirmDelivery is false', async () => {
    const q = queue('no_confirm')
    const broker = newBroker({ confirmDelivery: false })
    const rec = actor('rec', () => undefined, { broker, queueName: q })
    await broker.enqueueMany(Array.from({ length: 20 }, () => rec.message()))
    await waitFor(async () => (await raw.messageCount(q)) === 20, { message: '20 messages' })
  })

  it('is the broker for amqp:// URLs through its plugin', async () => {
    expect(brokerPlugin.schemes).toEqual(['amqp', 'amqps'])
    registerBroker(brokerPlugin)
    const broker = createBroker(AMQP_URL)
    expect(broker).toBeInstanceOf(RabbitmqBroker)
    expect((broker as RabbitmqBroker).urls).toEqual([AMQP_URL])
    await broker.close()
    const fallback = brokerPlugin.create() as RabbitmqBroker
    expect(fallback.urls).toEqual(['amqp://127.0.0.1:5672'])
    await fallback.close()
  })

  it('consumes a delay queue by its name and refuses to consume a dead-letter queue', async () => {
    const q = queue('names')
    const broker = newBroker()
    expect(() => broker.consume(xqName(q))).toThrow(InvalidArgumentError)
    const consumer = broker.consume(dqName(q), { timeout: 50 })
    expect(consumer.queueName).toBe(dqName(q))
    expect(await consumer.receive()).toEqual([])
    await consumer.close()
    expect(broker.getDeclaredQueues().has(q)).toBe(true)
  })

  it('refuses to settle a delivery through a consumer that did not deliver it', async () => {
    const q = queue('foreign')
    const broker = newBroker()
    const rec = actor('rec', () => undefined, { broker, queueName: q })
    await rec.send()
    const first = broker.consume(q, { prefetch: 1, timeout: 2000 })
    const other = broker.consume(q, { prefetch: 1, timeout: 50 })
    const [held] = await first.receive()
    await expect(other.ack(held as MessageProxy)).rejects.toThrow(InvalidArgumentError)
    await expect(other.requeue([held as MessageProxy])).rejects.toThrow(InvalidArgumentError)
    await first.ack(held as MessageProxy)
    await Promise.all([first.close(), other.close()])
    expect(await raw.messageCount(q)).toBe(0)
  })
})
