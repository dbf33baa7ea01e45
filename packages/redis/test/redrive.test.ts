// Dead-letter redrive (`redriveDeadLetters`): what goes back to the queue and how, the limit,
// the dead letters it leaves alone, the round trips, and a redriving process killed with SIGKILL.
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { InvalidArgumentError, Message, dqName, type Middleware } from '@tq/core'
import { createCapturingLogger, uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { RedisBroker, type RedisBrokerOptions } from '../src/index.ts'
import { RedisKeys } from '../src/keys.ts'
import { Redrive } from '../src/redrive.ts'
import { loadFixture } from './fixtures.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const namespace = uniqueNamespace('redrive')
const raw = rawClient()
const brokers: RedisBroker[] = []

function makeBroker(options: RedisBrokerOptions = {}): RedisBroker {
  const broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [], ...options })
  brokers.push(broker)
  return broker
}

afterEach(async () => {
  for (const broker of brokers.splice(0)) await broker.close()
})

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await raw.quit()
})

const key = (name: string, ns = namespace): string => `${ns}:${name}`

/** A dead letter as a worker leaves it: retried, with a traceback; from `q.DQ` with its eta. */
function deadMessage(queueName: string, i: number, { delayed = false } = {}): Message {
  return new Message({
    queueName: delayed ? dqName(queueName) : queueName,
    actorName: 'job',
    args: [i],
    kwargs: { k: `v${i}` },
    options: {
      redisMessageId: randomUUID(),
      maxRetries: 3,
      retries: 4,
      traceback: 'Error: dies\n    at job',
      requeueTimestamp: 1_700_000_000_000 + i,
      ...(delayed ? { eta: 1_700_000_000_500 + i } : {}),
    },
  })
}

interface RawDead {
  id: string
  body: Uint8Array | string | undefined
  score: number
}

/** Write dead letters straight into `<q>.XQ` / `<q>.XQ.msgs`, as the nack script leaves them. */
async function putDead(queueName: string, entries: readonly RawDead[], ns = namespace): Promise<void> {
  for (let first = 0; first < entries.length; first += 1000) {
    const pipeline = raw.pipeline()
    for (const { id, body, score } of entries.slice(first, first + 1000)) {
      pipeline.zadd(key(`${queueName}.XQ`, ns), score, id)
      if (body !== undefined) pipeline.hset(key(`${queueName}.XQ.msgs`, ns), id, Buffer.from(body))
    }
    await pipeline.exec()
  }
}

function asDead(message: Message, score: number): RawDead {
  return { id: message.options['redisMessageId'] as string, body: message.encode(), score }
}

async function putDeadMessages(queueName: string, messages: readonly Message[]): Promise<void> {
  await putDead(
    queueName,
    messages.map((m, i) => asDead(m, 1_000_000 + i)),
  )
}

/** The queue's list with each payload: the list and its hash must agree. */
async function ready(
  queueName: string,
  ns = namespace,
): Promise<Array<{ id: string; body: string; message: Message }>> {
  const ids = await raw.lrange(key(queueName, ns), 0, -1)
  expect(await raw.hlen(key(`${queueName}.msgs`, ns))).toBe(ids.length)
  if (ids.length === 0) return []
  const bodies = await raw.hmget(key(`${queueName}.msgs`, ns), ...ids)
  return ids.map((id, i) => {
    const body = bodies[i] as string
    return { id, body, message: Message.decode(Buffer.from(body)) }
  })
}

/** The message ids of the dead letters, oldest first: the zset and its hash must agree. */
async function deadMessageIds(queueName: string): Promise<string[]> {
  const ids = await raw.zrange(key(`${queueName}.XQ`), '0', '-1')
  expect(await raw.hlen(key(`${queueName}.XQ.msgs`))).toBe(ids.length)
  if (ids.length === 0) return []
  const bodies = await raw.hmget(key(`${queueName}.XQ.msgs`), ...ids)
  return bodies.map((body) => Message.decode(Buffer.from(body as string)).messageId)
}

/** A redrive of the broker's keys with a small batch, to cross batch boundaries with few messages. */
function smallBatches(broker: RedisBroker, batch: number, logger = broker.logger): Redrive {
  return new Redrive(
    {
      keys: new RedisKeys(namespace, broker.brokerId, broker.wakeups),
      client: broker.client,
      logger,
      encoder: () => broker.encoder,
      ready: () => broker.connect(),
      bounded: (promise) => promise,
      beforeEnqueue: (message) => broker.emitBefore('beforeEnqueue', message, undefined),
      afterEnqueue: (message) => broker.emitAfter('afterEnqueue', message, undefined),
    },
    { batch },
  )
}

/** Count every command the broker's client sends from now on. */
function countCommands(broker: RedisBroker): string[] {
  const sent: string[] = []
  const client = broker.client
  const original = client.sendCommand.bind(client)
  client.sendCommand = (command, ...rest) => {
    sent.push(command.name)
    return original(command, ...rest)
  }
  return sent
}

describe('RedisBroker.redriveDeadLetters', () => {
  it('returns 0 when there is nothing to redrive, and refuses a bad limit', async () => {
    const broker = makeBroker()
    const queueName = uniqueQueueName('empty')
    expect(await broker.redriveDeadLetters(queueName)).toBe(0)
    await putDeadMessages(queueName, [deadMessage(queueName, 0)])
    expect(await broker.redriveDeadLetters(queueName, { limit: 0 })).toBe(0)
    await expect(broker.redriveDeadLetters(queueName, { limit: -1 })).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(broker.redriveDeadLetters(queueName, { limit: 1.5 })).rejects.toBeInstanceOf(InvalidArgumentError)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 0, dead: 1 })
  })

  it('moves the oldest first, honours the limit exactly, and resets each message', async () => {
    const broker = makeBroker()
    const queueName = uniqueQueueName('limit')
    const messages = Array.from({ length: 7 }, (_, i) => deadMessage(queueName, i, { delayed: i % 2 === 1 }))
    // Written newest first: the order is the dead-letter time's, not the insertion's.
    await putDead(queueName, messages.map((m, i) => asDead(m, 5000 + i)).reverse())

    expect(await broker.redriveDeadLetters(queueName, { limit: 3 })).toBe(3)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 3, delayed: 0, dead: 4 })
    expect((await ready(queueName)).map((r) => r.message.args)).toEqual([[0], [1], [2]])
    expect(await deadMessageIds(queueName)).toEqual(messages.slice(3).map((m) => m.messageId))

    expect(await broker.redriveDeadLetters(queueName, { limit: 100 })).toBe(4)
    expect(await broker.redriveDeadLetters(queueName)).toBe(0)
    const back = await ready(queueName)
    expect(back.map((r) => r.message.args)).toEqual(messages.map((m) => m.args))
    back.forEach(({ id, message }, i) => {
      const dead = messages[i] as Message
      expect(message.queueName).toBe(queueName)
      expect(message.messageId).toBe(dead.messageId)
      expect(message.messageTimestamp).toBe(dead.messageTimestamp)
      expect(message.kwargs).toEqual(dead.kwargs)
      // A new Redis message, as every enqueue: the list member is the payload's redis_message_id.
      expect(message.options).toEqual({ redisMessageId: id, maxRetries: 3 })
      expect(id).not.toBe(dead.options['redisMessageId'])
    })
    expect(await raw.exists(key(`${queueName}.XQ`), key(`${queueName}.XQ.msgs`))).toBe(0)
  })

  it('writes what Python Dramatiq enqueues: a Dramatiq dead letter goes back as its original send', async () => {
    // redis-retry.json: Dramatiq 2.2 dead-lettered `fails` after one retry; `sent_message` is
    // what its `send()` wrote. The redriven payload must be those bytes with a new Redis id.
    const fx = loadFixture('redis-retry.json')
    const ns = uniqueNamespace('redrive-wire')
    try {
      const state = fx.states.after_final_failure
      const [entry] = state['dramatiq:default.XQ'].value as Array<{ member: string; score: number }>
      const body = state['dramatiq:default.XQ.msgs'].value[entry!.member] as string
      await putDead('default', [{ id: entry!.member, body, score: entry!.score }], ns)
      const broker = makeBroker({ namespace: ns })

      expect(await broker.redriveDeadLetters('default')).toBe(1)
      const [back, ...rest] = await ready('default', ns)
      expect(rest).toEqual([])
      expect(back!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(back!.id).not.toBe(entry!.member)
      const sent = fx.sent_message as { encoded: string; parsed: { options: { redis_message_id: string } } }
      expect(back!.body).toBe(sent.encoded.replace(sent.parsed.options.redis_message_id, back!.id))
      expect(await raw.exists(key('default.XQ', ns), key('default.XQ.msgs', ns))).toBe(0)
      // Only the queue's two keys and the heartbeat: nothing of tq's own is left behind.
      expect((await raw.keys(`${ns}:*`)).sort()).toEqual([
        `${ns}:__heartbeats__`,
        `${ns}:default`,
        `${ns}:default.msgs`,
      ])
    } finally {
      await deleteNamespace(raw, ns)
    }
  })

  it('runs the enqueue hooks for each moved message and wakes an idle consumer', async () => {
    const before: Message[] = []
    const after: Array<[Message, number | undefined]> = []
    const hooks: Middleware = {
      beforeEnqueue: (_b, message) => void before.push(message),
      afterEnqueue: (_b, message, delay) => void after.push([message, delay]),
    }
    const broker = makeBroker({ middleware: [hooks] })
    const queueName = uniqueQueueName('hooks')
    const messages = [deadMessage(queueName, 0), deadMessage(queueName, 1, { delayed: true })]
    await putDeadMessages(queueName, messages)
    const subscriber = raw.duplicate()
    try {
      const woken = new Promise<string>((resolve) => subscriber.once('message', (_channel, count) => resolve(count)))
      await subscriber.subscribe(broker.wakeupChannel(queueName))
      expect(await broker.redriveDeadLetters(queueName)).toBe(2)
      expect(await woken).toBe('2')
    } finally {
      subscriber.disconnect()
    }
    expect(before.map((m) => m.messageId)).toEqual(messages.map((m) => m.messageId))
    expect(after.map(([m, delay]) => [m.messageId, m.queueName, m.options['retries'], delay])).toEqual(
      messages.map((m) => [m.messageId, queueName, undefined, undefined]),
    )
    const ids = (await ready(queueName)).map((r) => r.id)
    expect(after.map(([m]) => m.options['redisMessageId'])).toEqual(ids)
  })

  it('leaves undecodable dead letters in place, uncounted, and still reaches the ones behind them', async () => {
    const logger = createCapturingLogger()
    const broker = makeBroker()
    const queueName = uniqueQueueName('bad')
    const good = Array.from({ length: 6 }, (_, i) => deadMessage(queueName, i))
    const bad: RawDead[] = [
      { id: 'not-json', body: 'not json', score: 1 },
      { id: 'bad-utf8', body: Buffer.from([0xff, 0xfe, 0x7b]), score: 2 },
      { id: 'no-payload', body: undefined, score: 3 },
      { id: 'no-fields', body: '{"queue_name":"x"}', score: 5 },
    ]
    // Interleaved, so undecodable ones sit at the head of several batches of 2.
    await putDead(queueName, [...bad, ...good.map((m, i) => asDead(m, [4, 4.5, 6, 7, 8, 9][i] as number))])

    expect(await smallBatches(broker, 2, logger).redrive(queueName)).toBe(6)
    expect((await ready(queueName)).map((r) => r.message.args)).toEqual(good.map((m) => m.args))
    expect((await raw.zrange(key(`${queueName}.XQ`), '0', '-1')).sort()).toEqual(bad.map((b) => b.id).sort())
    const warned = logger.entries.filter((e) => e.msg === 'Undecodable dead letter left in place')
    expect(warned.map((e) => e.meta?.['redisMessageId']).sort()).toEqual(bad.map((b) => b.id).sort())
    // Again: nothing decodable is left, and it terminates with 0.
    expect(await smallBatches(broker, 2, logger).redrive(queueName)).toBe(0)
    expect(await broker.redriveDeadLetters(queueName)).toBe(0)
  })

  it('honours the limit across batches and undecodable ones', async () => {
    const broker = makeBroker()
    const queueName = uniqueQueueName('limit-batches')
    const good = Array.from({ length: 10 }, (_, i) => deadMessage(queueName, i))
    await putDead(queueName, [
      { id: 'bad-1', body: 'x', score: 0 },
      ...good.map((m, i) => asDead(m, 10 + i)),
      { id: 'bad-2', body: 'y', score: 15 },
    ])
    const redrive = smallBatches(broker, 3)
    expect(await redrive.redrive(queueName, { limit: 4 })).toBe(4)
    expect(await redrive.redrive(queueName, { limit: 5 })).toBe(5)
    expect(await redrive.redrive(queueName, { limit: 5 })).toBe(1)
    expect((await ready(queueName)).map((r) => r.message.args)).toEqual(good.map((m) => m.args))
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 10, dead: 2 })
  })

  it('skips dead letters someone else removed after they were read', async () => {
    const queueName = uniqueQueueName('gone')
    const messages = Array.from({ length: 5 }, (_, i) => deadMessage(queueName, i))
    let removed = false
    const after: string[] = []
    const broker = makeBroker({
      middleware: [
        {
          // Between the read and the move: another process takes message 3.
          beforeEnqueue: async () => {
            if (removed) return
            removed = true
            const id = messages[3]!.options['redisMessageId'] as string
            await raw
              .multi()
              .zrem(key(`${queueName}.XQ`), id)
              .hdel(key(`${queueName}.XQ.msgs`), id)
              .exec()
          },
          afterEnqueue: (_b, message) => void after.push(message.messageId),
        },
      ],
    })
    await putDeadMessages(queueName, messages)
    expect(await broker.redriveDeadLetters(queueName)).toBe(4)
    const expected = messages.filter((_, i) => i !== 3).map((m) => m.messageId)
    expect((await ready(queueName)).map((r) => r.message.messageId)).toEqual(expected)
    expect(after).toEqual(expected)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 4, dead: 0 })
  })

  it('redrives only what was dead when it started: a message that dies again stays dead', async () => {
    const queueName = uniqueQueueName('again')
    const messages = Array.from({ length: 7 }, (_, i) => deadMessage(queueName, i))
    const again: Message[] = []
    const broker = makeBroker({
      middleware: [
        {
          // Each redriven message fails at once and is dead-lettered again (a new Redis id, now).
          afterEnqueue: async (_b, message) => {
            const dead = message.copy({ options: { redisMessageId: randomUUID(), retries: 1 } })
            again.push(dead)
            await putDead(queueName, [asDead(dead, Date.now())])
          },
        },
      ],
    })
    await putDeadMessages(queueName, messages)
    expect(await smallBatches(broker, 2).redrive(queueName)).toBe(7)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 7, dead: 7 })
    // The same messages, dead again (their order is the new dead-letter times', often equal).
    expect((await deadMessageIds(queueName)).sort()).toEqual(again.map((m) => m.messageId).sort())
    expect(again.map((m) => m.messageId)).toEqual(messages.map((m) => m.messageId))
  })

  it('moves each dead letter once when two brokers redrive the same queue at the same time', async () => {
    const queueName = uniqueQueueName('race')
    const total = 3000
    const messages = Array.from({ length: total }, (_, i) => deadMessage(queueName, i))
    await putDeadMessages(queueName, messages)
    const a = makeBroker()
    const b = makeBroker()
    const [fromA, fromB] = await Promise.all([
      smallBatches(a, 50).redrive(queueName),
      smallBatches(b, 50).redrive(queueName),
    ])
    expect(fromA + fromB).toBe(total)
    const ids = (await ready(queueName)).map((r) => r.message.messageId)
    expect(ids).toHaveLength(total)
    expect(new Set(ids).size).toBe(total)
    expect(await a.queueCounts(queueName)).toMatchObject({ ready: total, dead: 0 })
  })

  it('counts a move resent after a lost reply once, and moves nothing twice', async () => {
    const queueName = uniqueQueueName('resend')
    const dead = deadMessage(queueName, 0)
    await putDeadMessages(queueName, [dead])
    const lua = readFileSync(new URL('../src/lua/redrive.lua', import.meta.url), 'utf8')
    const keys = [
      `${namespace}:__heartbeats__`,
      key(`${queueName}.XQ`),
      key(`${queueName}.XQ.msgs`),
      key(queueName),
      key(`${queueName}.msgs`),
    ]
    const newId = randomUUID()
    const args = [Date.now(), 'test-broker', '', 0, 0, dead.options['redisMessageId'] as string, newId, 'payload']
    const first = await raw.eval(lua, keys.length, ...keys, ...args)
    const resent = await raw.eval(lua, keys.length, ...keys, ...args)
    expect(first).toEqual([[1], 0, []])
    expect(resent).toEqual([[1], 0, []])
    expect(await raw.lrange(key(queueName), 0, -1)).toEqual([newId])
    // Another id for the same dead letter (a second redrive that read it before the first moved it): skipped.
    const other = await raw.eval(lua, keys.length, ...keys, ...args.slice(0, 6), randomUUID(), 'payload')
    expect(other).toEqual([[0], 0, []])
    expect(await raw.lrange(key(queueName), 0, -1)).toEqual([newId])
    await raw.zrem(`${namespace}:__heartbeats__`, 'test-broker')
  })

  it('redrives 10 000 dead letters in one script call per 500, plus one', async () => {
    const broker = makeBroker()
    const queueName = uniqueQueueName('many')
    const total = 10_000
    const messages = Array.from({ length: total }, (_, i) => deadMessage(queueName, i, { delayed: i % 3 === 0 }))
    await putDeadMessages(queueName, messages)
    await broker.redriveDeadLetters(uniqueQueueName('warm')) // connect and load the script
    const sent = countCommands(broker)
    const started = performance.now()
    expect(await broker.redriveDeadLetters(queueName)).toBe(total)
    const elapsed = performance.now() - started
    expect(sent).toHaveLength(total / 500 + 1)
    expect(elapsed).toBeLessThan(20_000)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: total, delayed: 0, dead: 0 })
    const back = await ready(queueName)
    expect(back.map((r) => r.message.messageId)).toEqual(messages.map((m) => m.messageId))
  }, 60_000)
})

describe('a redriving process killed with SIGKILL', () => {
  it('leaves every message in the dead letters or in the queue, once; a second redrive moves the rest', async () => {
    const queueName = uniqueQueueName('kill')
    const total = 4000
    const messages = Array.from({ length: total }, (_, i) => deadMessage(queueName, i, { delayed: i % 4 === 0 }))
    await putDeadMessages(queueName, messages)
    const broker = makeBroker()

    const script = fileURLToPath(new URL('./support/redrive-child.ts', import.meta.url))
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=@tq/source', script, REDIS_URL, namespace, queueName, '10'],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
    const lines = createInterface({ input: child.stdout })
    const output: string[] = []
    lines.on('line', (line) => output.push(line))
    await waitFor(() => output.includes('started'), { timeout: 15_000, message: 'the child to start' })
    // Kill it once a quarter of the dead letters are back: it redrives 10 at a time, so it is midway.
    await waitFor(async () => (await broker.queueCounts(queueName)).ready >= total / 4, {
      timeout: 15_000,
      interval: 1,
      message: 'a quarter redriven',
    })
    child.kill('SIGKILL')
    expect(await exited).toBe('SIGKILL')
    expect(output.filter((line) => line.startsWith('done'))).toEqual([])

    const { ready: readyCount, dead } = await broker.queueCounts(queueName)
    expect(readyCount).toBeGreaterThanOrEqual(total / 4)
    expect(dead).toBeGreaterThan(0)
    expect(readyCount + dead).toBe(total)
    const all = [...(await ready(queueName)).map((r) => r.message.messageId), ...(await deadMessageIds(queueName))]
    expect(all).toHaveLength(total)
    expect(new Set(all)).toEqual(new Set(messages.map((m) => m.messageId)))

    expect(await broker.redriveDeadLetters(queueName)).toBe(dead)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: total, dead: 0 })
    const back = (await ready(queueName)).map((r) => r.message.messageId)
    expect(back).toHaveLength(total)
    expect(new Set(back).size).toBe(total)
    // Oldest first throughout: the queue holds them in dead-letter order.
    expect(back).toEqual(messages.map((m) => m.messageId))
  }, 60_000)
})
