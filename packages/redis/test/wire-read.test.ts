// Messages Python Dramatiq 2.2 wrote (fixtures/dramatiq-wire/redis-*.json), put into Redis the
// way Python did (HSET <q>.msgs + RPUSH <q>, or a whole dumped state), consumed by a tq worker.
import { Pipelines, Worker, actor, type Middleware, type Tracking } from '@tq/core'
import { Ledger, createCapturingLogger } from '@tq/core/testing'
import type { Redis } from 'ioredis'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { RedisBroker, type RedisBrokerOptions } from '../src/index.ts'
import { loadFixture, putLikePython, stripParsed, type KeyDump } from './fixtures.ts'
import { withAndWithoutTracking } from './tracking-variant.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const raw = rawClient()
let tracking: Tracking | undefined
let namespace: string
let broker: RedisBroker
let worker: Worker | undefined

beforeEach(() => {
  namespace = uniqueNamespace('read')
})

afterEach(async () => {
  await worker?.stop({ timeout: 5000 })
  worker = undefined
  await broker.close()
  await deleteNamespace(raw, namespace)
})

function makeBroker(middleware: Middleware[] = [], options: RedisBrokerOptions = {}): RedisBroker {
  broker = new RedisBroker({
    url: REDIS_URL,
    namespace,
    middleware: tracking ? [...middleware, tracking] : middleware,
    ...options,
  })
  return broker
}

async function startWorker(options: ConstructorParameters<typeof Worker>[1] = {}): Promise<Worker> {
  worker = new Worker(broker, { workerTimeout: 100, ...options })
  await worker.start()
  return worker
}

/** Write a fixture's whole key dump under this test's namespace. */
async function restoreDump(
  client: Redis,
  dump: Record<string, KeyDump>,
  overrides: Record<string, number> = {},
): Promise<void> {
  for (const [name, { type, value }] of Object.entries(dump)) {
    const key = `${namespace}:${name.slice('dramatiq:'.length)}`
    if (type === 'list') await client.rpush(key, ...(value as string[]))
    else if (type === 'hash')
      for (const [f, v] of Object.entries(value as Record<string, string>)) await client.hset(key, f, v)
    else if (type === 'set') await client.sadd(key, ...(value as string[]))
    else if (type === 'zset')
      for (const { member, score } of value as Array<{ member: string; score: number }>)
        await client.zadd(key, overrides[member] ?? score, member)
  }
}

function consumesWhatDramatiqWrote(): void {
  it('runs plain, unicode, delayed and retried messages with their arguments and options', async () => {
    makeBroker()
    const ledger = new Ledger<string>()
    const seen: Record<string, unknown> = {}
    actor(
      'add',
      (x: number, y = 0) => {
        seen[`add(${x},${y})`] = x + y
        ledger.record('add')
      },
      { broker, queueName: 'default' },
    )
    actor(
      'echo',
      (...args: unknown[]) => {
        seen['echo'] = args
        ledger.record('echo')
      },
      { broker, queueName: 'default' },
    )
    actor('fails', () => ledger.record('fails'), { broker, queueName: 'default' })
    const retries: unknown[] = []
    broker.addMiddleware({
      beforeProcessMessage: (_b, proxy) => void (proxy.actorName === 'fails' && retries.push(proxy.options)),
    })

    await putLikePython(raw, namespace, loadFixture('redis-enqueue.json').returned_message.encoded)
    await putLikePython(raw, namespace, loadFixture('redis-enqueue-kwargs-unicode.json').returned_message.encoded)
    await putLikePython(raw, namespace, loadFixture('redis-enqueue-delayed.json').returned_message.encoded)
    const retry = loadFixture('redis-retry.json').enqueue_log as Array<{ encoded: string }>
    await putLikePython(raw, namespace, retry[1]?.encoded as string) // the retry copy on default.DQ (eta in the past)
    await startWorker()
    await ledger.waitForTotal(4, 5000)
    await broker.join('default', { timeout: 5000 })

    expect(seen['add(1,2)']).toBe(3)
    expect(seen['echo']).toEqual([
      'héllo ☃ 😀',
      1.5,
      null,
      true,
      [1, { a: 'b' }],
      1,
      1e16,
      1.5e-7,
      Number('12345678901234567890'), // a Python int beyond 2^53 arrives as the nearest double
      -0,
      { z: 1, a: 'ü', nested: { k: [1, 2.25, 'x"y\\z\n'] } },
    ])
    expect(Object.keys((seen['echo'] as unknown[])[10] as object)).toEqual(['z', 'a', 'nested'])
    expect(retries).toHaveLength(1)
    expect(retries[0]).toMatchObject({
      retries: 1,
      requeueTimestamp: expect.any(Number) as number,
      traceback: expect.stringContaining('ValueError: boom') as string,
    })
    expect(ledger.counts.get('add')).toBe(2)
  })

  it('runs a Python pipeline: the next step is enqueued with the result appended (redis-pipeline)', async () => {
    makeBroker([new Pipelines()])
    const results: Array<[number, number, number]> = []
    const ledger = new Ledger<number>()
    actor(
      'add',
      (x: number, y = 0) => {
        results.push([x, y, x + y])
        ledger.record(x + y)
        return x + y
      },
      { broker, queueName: 'default' },
    )
    const fx = loadFixture('redis-pipeline.json')
    await putLikePython(raw, namespace, fx.two_step.enqueue_log[0].encoded)
    await putLikePython(raw, namespace, fx.three_step.enqueue_log[0].encoded)
    await startWorker()
    await ledger.waitForTotal(5, 5000)
    await broker.join('default', { timeout: 5000 })
    expect(results.filter(([x]) => x === 1)).toEqual([
      [1, 2, 3],
      [1, 2, 3],
    ])
    expect(results.filter(([x]) => x !== 1).sort()).toEqual([
      [3, 3, 6],
      [3, 3, 6],
      [4, 6, 10],
    ])
  })

  it("requeues a dead Python worker's in-flight messages from its ack sets (redis-inflight)", async () => {
    const fx = loadFixture('redis-inflight.json')
    // The state Python left while a worker held 'first' and 'second' and the delayed message,
    // with a heartbeat long past the timeout: that worker is dead.
    await restoreDump(raw, stripParsed(fx.states.while_processing), { [fx.broker_id]: Date.now() - 10_000 })
    makeBroker([], { heartbeatTimeout: 1000, maintenanceChance: 1_000_000 })
    const ledger = new Ledger<string>()
    actor('slow', (label: string) => ledger.record(label), { broker, queueName: 'default' })
    await startWorker()
    await ledger.waitForTotal(3, 5000)
    await broker.join('default', { timeout: 5000 })
    expect([...ledger.counts.keys()].sort()).toEqual(['delayed', 'first', 'second'])
    expect(ledger.duplicates).toEqual([])
    // The dead worker's ack sets are gone and it left the heartbeats.
    expect(
      await raw.exists(
        `${namespace}:__acks__.${fx.broker_id}.default`,
        `${namespace}:__acks__.${fx.broker_id}.default.DQ`,
      ),
    ).toBe(0)
    expect(await raw.zscore(`${namespace}:__heartbeats__`, fx.broker_id)).toBeNull()
  })

  it('drops an id with no payload with a warning and keeps going (Dramatiq #266)', async () => {
    const logger = createCapturingLogger()
    makeBroker([], { logger })
    const ledger = new Ledger<string>()
    actor('add', () => ledger.record('add'), { broker, queueName: 'default' })
    await raw.rpush(`${namespace}:default`, 'no-such-payload')
    await putLikePython(raw, namespace, loadFixture('redis-enqueue.json').returned_message.encoded)
    await startWorker()
    await ledger.waitForTotal(1, 5000)
    await broker.join('default', { timeout: 5000 })
    expect(logger.entries.some((e) => e.level === 'warn' && e.meta['redisMessageId'] === 'no-such-payload')).toBe(true)
    expect(await raw.exists(`${namespace}:__acks__.${broker.brokerId}.default`)).toBe(0)
  })
}

withAndWithoutTracking('tq consumes what Dramatiq wrote', consumesWhatDramatiqWrote, {
  namespace: () => namespace,
  client: raw,
  use: (on) => (tracking = on),
})
