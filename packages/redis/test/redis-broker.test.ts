import { randomUUID } from 'node:crypto'
import {
  Message,
  QueueJoinTimeoutError,
  Retries,
  Worker,
  actor,
  createBroker,
  ConfigurationError,
  registerBroker,
  type Consumer,
  type MessageProxy,
} from '@tq/core'
import { Ledger, uniqueQueueName } from '@tq/core/testing'
import { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { RedisBroker, brokerPlugin, type RedisBrokerOptions } from '../src/index.ts'
import type { ScriptArg, ScriptName } from '../src/scripts.ts'
import { REDIS_URL, brokerConnectionIds, deleteNamespace, putRaw, rawClient, uniqueNamespace } from './helpers.ts'

const namespace = uniqueNamespace('broker')
const raw = rawClient()
const open: Array<{ broker: RedisBroker; workers: Worker[]; consumers: Consumer[] }> = []

/** Counts the script calls a broker makes. */
class CountingBroker extends RedisBroker {
  readonly calls = new Map<ScriptName, number>()
  protected override run(...call: [ScriptName, ScriptArg[], ScriptArg[], boolean?]): Promise<unknown> {
    this.calls.set(call[0], (this.calls.get(call[0]) ?? 0) + 1)
    return super.run(...call)
  }

  /** Run a script as the broker does (for tests that play a command by hand). */
  script(name: ScriptName, keys: ScriptArg[], args: ScriptArg[]): Promise<unknown> {
    return this.run(name, keys, args)
  }
}

function setup(options: RedisBrokerOptions = {}) {
  const broker = new CountingBroker({ url: REDIS_URL, namespace, middleware: [], ...options })
  const entry = { broker, workers: [] as Worker[], consumers: [] as Consumer[] }
  open.push(entry)
  return {
    broker,
    queueName: uniqueQueueName('rb'),
    async startWorker(o: ConstructorParameters<typeof Worker>[1] = {}) {
      const worker = new Worker(broker, { workerTimeout: 100, ...o })
      entry.workers.push(worker)
      await worker.start()
      return worker
    },
    consume(queueName: string, prefetch: number, timeout = 1000) {
      const consumer = broker.consume(queueName, { prefetch, timeout })
      entry.consumers.push(consumer)
      return consumer
    },
  }
}

afterEach(async () => {
  for (const { broker, workers, consumers } of open.splice(0)) {
    for (const w of workers) await w.stop({ timeout: 5000 })
    for (const c of consumers) await c.close()
    await broker.close()
  }
})

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await raw.quit()
})

const key = (name: string): string => `${namespace}:${name}`

describe('RedisBroker', () => {
  it('processes 10 000 messages exactly once each', async () => {
    const { broker, queueName, startWorker } = setup()
    const ledger = new Ledger<string>()
    const job = actor('job', (_i: number) => undefined, { broker, queueName })
    broker.addMiddleware({ afterProcessMessage: (_b, proxy) => ledger.record(proxy.messageId) })
    const messages = Array.from({ length: 10_000 }, (_, i) => job.message(i))
    await broker.enqueueMany(messages)
    expect(await raw.llen(key(queueName))).toBe(10_000)
    await startWorker({ concurrency: 32 })
    await ledger.waitForTotal(10_000, 30_000)
    await broker.join(queueName, { timeout: 10_000 })
    expect(ledger.counts.size).toBe(10_000)
    expect(ledger.duplicates).toEqual([])
    expect(new Set(messages.map((m) => m.messageId))).toEqual(new Set(ledger.counts.keys()))
    // Fetches and acks were batched.
    expect(broker.calls.get('ack') ?? 0).toBeLessThan(10_000 / 4)
  }, 40_000)

  it('retries through the delay queue and dead-letters after the last retry', async () => {
    const { broker, queueName, startWorker } = setup()
    broker.addMiddleware(new Retries())
    const attempts = new Ledger<string>()
    let flaky = 0
    actor(
      'flaky',
      () => {
        attempts.record('flaky')
        if (++flaky < 3) throw new Error('not yet')
      },
      { broker, queueName, maxRetries: 5, minBackoff: 10, maxBackoff: 20 },
    )
    const doomed = actor(
      'doomed',
      () => {
        attempts.record('doomed')
        throw new Error('never')
      },
      { broker, queueName, maxRetries: 2, minBackoff: 10, maxBackoff: 20 },
    )
    await broker.getActor('flaky').send()
    const sent = await doomed.send()
    await startWorker()
    await attempts.waitForTotal(6, 5000)
    await broker.join(queueName, { timeout: 5000 })
    expect(attempts.counts.get('flaky')).toBe(3)
    expect(attempts.counts.get('doomed')).toBe(3)
    const dead = await broker.deadLetters(queueName)
    expect(dead).toHaveLength(1)
    const body = JSON.parse(Buffer.from(dead[0]?.body as Uint8Array).toString())
    expect(body.message_id).toBe(sent.messageId)
    expect(body.queue_name).toBe(queueName)
    expect(body.options.retries).toBe(2)
    expect(await raw.zcard(key(`${queueName}.XQ`))).toBe(1)
  })

  it('qsize counts the queue, the delay queue and the ack sets; join waits for zero', async () => {
    const { broker, queueName, consume } = setup()
    const job = actor('job', () => undefined, { broker, queueName })
    await job.send()
    await job.send()
    await job.sendWithOptions({ args: [], delay: 60_000 })
    expect(await broker.qsize(queueName)).toBe(3)
    const consumer = consume(queueName, 1)
    const [one] = await consumer.receive()
    // Dramatiq's count: 2 payloads + 1 in this broker's ack set + 1 delayed.
    expect(await broker.qsize(queueName)).toBe(4)
    await expect(broker.join(queueName, { timeout: 50 })).rejects.toBeInstanceOf(QueueJoinTimeoutError)
    await consumer.ack(one as MessageProxy)
    expect(await broker.qsize(queueName)).toBe(2)
    await broker.flush(queueName)
    expect(await broker.qsize(queueName)).toBe(0)
    await broker.join(queueName, { timeout: 50 })
  })

  it('flush deletes the queue, delay queue, dead letters and this broker’s ack sets', async () => {
    const { broker, queueName, consume } = setup()
    const job = actor('job', () => undefined, { broker, queueName })
    for (let i = 0; i < 3; i++) await job.send()
    await job.sendWithOptions({ args: [], delay: 60_000 })
    const consumer = consume(queueName, 2)
    const [a] = await consumer.receive()
    await consumer.nack(a as MessageProxy)
    const dq = consume(`${queueName}.DQ`, 5)
    expect(await dq.receive()).toHaveLength(1)
    const names = ['', '.msgs', '.DQ', '.DQ.msgs', '.XQ', '.XQ.msgs'].map((s) => key(queueName + s))
    names.push(broker.acksKey(queueName), broker.acksKey(`${queueName}.DQ`))
    expect(await raw.exists(...names)).toBe(names.length - 1) // only the DQ list is empty
    await broker.flush(queueName)
    expect(await raw.exists(...names)).toBe(0)
  })

  it('fetches up to the free prefetch in one call and acks a tick’s worth in one call', async () => {
    const { broker, queueName, consume } = setup()
    const job = actor('job', () => undefined, { broker, queueName })
    await broker.enqueueMany(Array.from({ length: 50 }, () => job.message()))
    const consumer = consume(queueName, 20)
    const before = broker.calls.get('fetch') ?? 0
    const batch = await consumer.receive()
    expect(batch).toHaveLength(20)
    expect((broker.calls.get('fetch') ?? 0) - before).toBe(1)
    await Promise.all(batch.map((m) => consumer.ack(m)))
    expect(broker.calls.get('ack')).toBe(1)
    expect(await raw.scard(broker.acksKey(queueName))).toBe(0)
    expect(await raw.hlen(key(`${queueName}.msgs`))).toBe(30)
  })

  it('wakes an idle consumer on enqueue instead of waiting for the next poll', async () => {
    const { broker, queueName, consume } = setup({ pollInterval: 10_000 })
    const job = actor('job', () => undefined, { broker, queueName })
    const consumer = consume(queueName, 1, 5000)
    const receiving = consumer.receive()
    await new Promise((r) => setTimeout(r, 50)) // the consumer found the queue empty and waits
    const sentAt = Date.now()
    await job.send()
    const [got] = await receiving
    expect(got).toBeDefined()
    expect(Date.now() - sentAt).toBeLessThan(500)
    await consumer.ack(got as MessageProxy)
  })

  it('polls for messages a producer without wake-ups (Python) enqueued', async () => {
    const { broker, queueName, consume } = setup({ pollInterval: 50 })
    actor('job', () => undefined, { broker, queueName })
    const consumer = consume(queueName, 1, 5000)
    const receiving = consumer.receive()
    await new Promise((r) => setTimeout(r, 20))
    const body = new Message({ queueName, actorName: 'job' }).encode()
    const putAt = Date.now()
    await putRaw(raw, namespace, queueName, randomUUID(), body)
    const [got] = await receiving
    expect(got?.actorName).toBe('job')
    expect(Date.now() - putAt).toBeLessThan(1000)
  })

  it('handles batches above the Lua unpack limit: dead-worker requeue, expiry, fetch and ack', async () => {
    const { broker, queueName, consume } = setup({ heartbeatTimeout: 1000 })
    const n = 9000
    const dead = randomUUID()
    const ids = Array.from({ length: n }, () => randomUUID())
    const body = new Message({ queueName, actorName: 'job' }).encode()
    const pipe = raw.pipeline()
    for (const id of ids) pipe.hset(key(`${queueName}.msgs`), id, Buffer.from(body))
    pipe.sadd(`${namespace}:__acks__.${dead}.${queueName}`, ...ids)
    pipe.zadd(`${namespace}:__heartbeats__`, Date.now() - 5000, dead)
    for (const id of ids) pipe.zadd(key(`${queueName}.XQ`), Date.now() - 10_000, `x${id}`)
    for (const id of ids) pipe.hset(key(`${queueName}.XQ.msgs`), `x${id}`, 'old')
    await pipe.exec()

    const short = new RedisBroker({
      url: REDIS_URL,
      namespace,
      middleware: [],
      heartbeatTimeout: 1000,
      deadMessageTtl: 5000,
    })
    open.push({ broker: short, workers: [], consumers: [] })
    expect(await short.maintain(queueName)).toEqual({ requeued: n, expired: n })
    expect(await raw.llen(key(queueName))).toBe(n)
    expect(await raw.exists(key(`${queueName}.XQ`), key(`${queueName}.XQ.msgs`))).toBe(0)
    expect(await raw.zscore(`${namespace}:__heartbeats__`, dead)).toBeNull()

    actor('job', () => undefined, { broker, queueName })
    const consumer = consume(queueName, n)
    const batch = await consumer.receive()
    expect(batch).toHaveLength(n)
    expect(await raw.scard(broker.acksKey(queueName))).toBe(n)
    await Promise.all(batch.map((m) => consumer.ack(m)))
    expect(await raw.exists(broker.acksKey(queueName), key(`${queueName}.msgs`))).toBe(0)
  })

  it('runs maintenance on a timer too, so a quiet queue recovers a dead worker’s messages', async () => {
    const { broker, queueName, startWorker } = setup({ heartbeatTimeout: 300, maintenanceChance: 0 })
    const ledger = new Ledger<string>()
    actor('job', (x: string) => ledger.record(x), { broker, queueName })
    const dead = randomUUID()
    const body = new Message({ queueName, actorName: 'job', args: ['orphan'] }).encode()
    await raw.hset(key(`${queueName}.msgs`), 'orphan-id', Buffer.from(body))
    await raw.sadd(`${namespace}:__acks__.${dead}.${queueName}`, 'orphan-id')
    await raw.zadd(`${namespace}:__heartbeats__`, Date.now() - 1000, dead)
    const started = Date.now()
    await startWorker()
    await ledger.waitForTotal(1, 3000)
    expect(ledger.order).toEqual(['orphan'])
    // Within one maintenance interval (300 ms) plus a heartbeat tick (75 ms), give or take.
    expect(Date.now() - started).toBeLessThan(1500)
  })

  it('requeues what a fetch with a lost reply left in its ack set', async () => {
    const { broker, queueName, consume } = setup()
    const job = actor('job', (_i: number) => undefined, { broker, queueName })
    for (let i = 0; i < 3; i++) await job.send(i)
    const consumer = consume(queueName, 10)
    // A fetch that ran on the server but whose reply never arrived.
    await broker.script('fetch', [key(queueName), key(`${queueName}.msgs`), broker.acksKey(queueName)], [2])
    expect(await raw.scard(broker.acksKey(queueName))).toBe(2)
    // The connection drops (ioredis reconnects): replies may have been lost on it.
    const closed = new Promise((resolve) => broker.client.once('close', resolve))
    broker.client.disconnect(true)
    await closed
    const got: MessageProxy[] = []
    while (got.length < 3) got.push(...(await consumer.receive()))
    // The requeued ones went back to the tail, behind the one that was never fetched.
    expect(got[0]?.args[0]).toBe(2)
    expect(got.map((m) => m.args[0]).sort()).toEqual([0, 1, 2])
    await Promise.all(got.map((m) => consumer.ack(m)))
    expect(await broker.qsize(queueName)).toBe(0)
  })

  it('does not enqueue twice when the client resends an enqueue that went through', async () => {
    const { broker, queueName } = setup()
    const id = randomUUID()
    const args = [key(queueName), key(`${queueName}.msgs`)]
    await broker.script('enqueue', args, ['', id, 'payload'])
    await broker.script('enqueue', args, ['', id, 'payload'])
    expect(await raw.lrange(key(queueName), 0, -1)).toEqual([id])
  })

  it('names its connections, and leaves a given client open unless asked', async () => {
    const client = new Redis(REDIS_URL, { lazyConnect: true })
    const broker = new RedisBroker({ client, namespace, middleware: [] })
    const queueName = uniqueQueueName('client')
    const consumer = broker.consume(queueName, { prefetch: 1, timeout: 50 })
    await consumer.receive()
    expect(await brokerConnectionIds(raw, broker.brokerId)).toHaveLength(1) // the wake-up subscriber
    await broker.close()
    expect(await client.ping()).toBe('PONG')
    const closing = new RedisBroker({ client, namespace, middleware: [], closeClient: true })
    await closing.close()
    expect(client.status).toBe('end')

    const owned = new RedisBroker({ url: REDIS_URL, namespace, middleware: [] })
    const c2 = owned.consume(queueName, { prefetch: 1, timeout: 50 })
    await c2.receive()
    expect(await brokerConnectionIds(raw, owned.brokerId)).toHaveLength(2)
    await owned.close()
    expect(await brokerConnectionIds(raw, owned.brokerId)).toHaveLength(0)
  })

  it('refuses a client with a keyPrefix', () => {
    const client = new Redis(REDIS_URL, { lazyConnect: true, keyPrefix: 'x:' })
    expect(() => new RedisBroker({ client, middleware: [] })).toThrow(ConfigurationError)
    client.disconnect()
  })

  it('serves redis:// URLs through brokerPlugin', async () => {
    expect(brokerPlugin.schemes).toEqual(['redis', 'rediss'])
    registerBroker(brokerPlugin)
    const broker = createBroker(REDIS_URL)
    expect(broker).toBeInstanceOf(RedisBroker)
    const redis = broker as RedisBroker
    expect(redis.namespace).toBe('dramatiq')
    expect(redis.client.options.db).toBe(7)
    await broker.close()
  })
})
