/**
 * Dead-letter redrive (`redriveDeadLetters`) on the real server: what moves and how, undecodable
 * dead letters, the limit across batches, wire compatibility with Python Dramatiq, concurrent
 * redrives, a connection closed midway and a redrive process killed with SIGKILL midway.
 */
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  ConnectionClosedError,
  InvalidArgumentError,
  Message,
  Notifier,
  dqName,
  sleep,
  xqName,
  type Middleware,
  type QueueCounts,
} from '@tq/core'
import { createCapturingLogger, uniqueQueueName, waitFor } from '@tq/core/testing'
import type { GetMessage, Options } from 'amqplib'
import { RabbitmqBroker, type RabbitmqBrokerOptions } from '../src/index.ts'
import { REDRIVE_BATCH } from '../src/redrive.ts'
import { AMQP_URL, RawAmqp, closeConnections, findConnections, fixture } from './helpers.ts'

/**
 * RabbitMQ counts a requeued message (an undecodable dead letter put back, a prefetched one of a
 * closed channel) a moment after the channel that requeued it closed: wait for the counts.
 */
async function expectCounts(broker: RabbitmqBroker, q: string, expected: Partial<QueueCounts>): Promise<void> {
  let last: QueueCounts | undefined
  await waitFor(
    async () => {
      last = await broker.queueCounts(q)
      return Object.entries(expected).every(([key, value]) => last?.[key as keyof QueueCounts] === value)
    },
    { timeout: 5000, message: `counts ${JSON.stringify(expected)}` },
  ).catch(() => undefined)
  expect(last).toMatchObject(expected)
}

const here = dirname(fileURLToPath(import.meta.url))
const prefix = uniqueQueueName('tq_rmq_redrive')
const raw = new RawAmqp()
const brokers: RabbitmqBroker[] = []
const used = new Set<string>()

function queue(name: string): string {
  const q = `${prefix}_${name}`
  used.add(q)
  return q
}

function newBroker(name: string, options: RabbitmqBrokerOptions = {}): RabbitmqBroker {
  const broker = new RabbitmqBroker({
    url: AMQP_URL,
    middleware: [],
    connectionName: `${prefix}-${name}`,
    reconnectDelay: 20,
    ...options,
  })
  brokers.push(broker)
  return broker
}

afterEach(async () => {
  for (const b of brokers.splice(0)) await b.close()
})

afterAll(async () => {
  await raw.deleteTopology(...used)
  await raw.close()
})

/** A dead letter's body: message `i` of `queueName` after failed attempts. */
function deadMessage(queueName: string, i: number, options: Record<string, unknown> = {}): Message {
  return new Message({
    queueName,
    actorName: 'job',
    args: [i],
    kwargs: {},
    options: { retries: 3, traceback: 'Error: dies', requeueTimestamp: 1_700_000_000_000, ...options },
  })
}

/** Publish raw bodies to a queue on one confirm channel, waiting for all the confirms. */
async function putAll(
  queueName: string,
  bodies: ReadonlyArray<Uint8Array | { body: Uint8Array; options: Options.Publish }>,
): Promise<void> {
  await raw.withChannel(async (channel) => {
    for (const entry of bodies) {
      const { body, options } = entry instanceof Uint8Array ? { body: entry, options: {} } : entry
      channel.publish('', queueName, Buffer.from(body), { deliveryMode: 2, ...options })
    }
    await (channel as unknown as { waitForConfirms(): Promise<void> }).waitForConfirms()
  })
}

/** Let RabbitMQ dead-letter the first `count` messages of `from` (basic.get, then nack without requeue). */
async function deadLetter(from: string, count: number): Promise<void> {
  await raw.withChannel(async (channel) => {
    for (let i = 0; i < count; i++) {
      const message = await channel.get(from, { noAck: false })
      if (message === false) throw new Error(`${from} has only ${i} messages`)
      channel.nack(message, false, false)
    }
  })
}

interface WireMessage {
  queue_name: string
  actor_name: string
  args: unknown[]
  options: Record<string, unknown>
  message_id: string
  message_timestamp: number
}

const parse = (message: GetMessage): WireMessage => JSON.parse(message.content.toString()) as WireMessage

/** The first argument of each decodable message of a queue, in queue order. */
async function argsIn(queueName: string): Promise<number[]> {
  return (await raw.peek(queueName)).map((m) => parse(m).args[0] as number)
}

/** Records the messages the enqueue hooks see. */
function hookRecorder(): Middleware & { before: string[]; after: string[] } {
  const before: string[] = []
  const after: string[] = []
  return {
    before,
    after,
    beforeEnqueue: (_broker, message) => void before.push(message.messageId),
    afterEnqueue: (_broker, message) => void after.push(message.messageId),
  }
}

describe('redriveDeadLetters', () => {
  it('returns 0 for an empty dead-letter queue, and for a queue never used', async () => {
    const broker = newBroker('empty')
    const q = queue('empty')
    expect(await broker.redriveDeadLetters(q)).toBe(0)
    await expectCounts(broker, q, { ready: 0, delayed: 0, dead: 0 })
    await broker.enqueue(deadMessage(q, 1))
    expect(await broker.redriveDeadLetters(q)).toBe(0)
    expect(await broker.redriveDeadLetters(q, { limit: 0 })).toBe(0)
    await expectCounts(broker, q, { ready: 1, dead: 0 })
    await expect(broker.redriveDeadLetters(q, { limit: -1 })).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(broker.redriveDeadLetters(q, { limit: 1.5 })).rejects.toBeInstanceOf(InvalidArgumentError)
  })

  it('moves dead letters of q and q.DQ back to q oldest first, retries reset, hooks run, priority kept', async () => {
    const q = queue('move')
    const hooks = hookRecorder()
    const broker = newBroker('move', { middleware: [hooks] })
    const first = deadMessage(q, 0)
    const second = deadMessage(q, 1, { brokerPriority: 7 })
    const delayed = deadMessage(q, 2)
    await broker.enqueueMany([first, second])
    await broker.enqueue(delayed, { delay: 60_000 })
    // RabbitMQ dead-letters them (as a worker's nack does): q's two, then the delayed one.
    await deadLetter(q, 2)
    await deadLetter(dqName(q), 1)
    await expectCounts(broker, q, { ready: 0, delayed: 0, dead: 3 })
    hooks.before.length = 0
    hooks.after.length = 0

    expect(await broker.redriveDeadLetters(q, { limit: 2 })).toBe(2)
    await expectCounts(broker, q, { ready: 2, delayed: 0, dead: 1 })
    expect(hooks.before).toEqual([first.messageId, second.messageId])
    expect(hooks.after).toEqual([first.messageId, second.messageId])

    expect(await broker.redriveDeadLetters(q)).toBe(1)
    await expectCounts(broker, q, { ready: 3, delayed: 0, dead: 0 })
    expect(await broker.redriveDeadLetters(q)).toBe(0)

    const moved = await raw.peek(q)
    expect(moved.map((m) => parse(m).message_id)).toEqual([first.messageId, second.messageId, delayed.messageId])
    for (const [m, original] of [
      [moved[0], first],
      [moved[1], second],
      [moved[2], delayed],
    ] as const) {
      const body = parse(m as GetMessage)
      expect(body.queue_name).toBe(q) // the delayed one too: not q.DQ
      expect(body.message_timestamp).toBe(original.messageTimestamp)
      expect(body.args).toEqual(original.args)
      for (const reset of ['retries', 'traceback', 'requeue_timestamp', 'eta'])
        expect(body.options).not.toHaveProperty(reset)
      expect(m?.fields.routingKey).toBe(q)
      expect(m?.properties.deliveryMode).toBe(2)
      expect(m?.properties.headers).toBeUndefined() // no x-death carried over
    }
    expect(parse(moved[1] as GetMessage).options).toEqual({ broker_priority: 7 })
    expect(moved[1]?.properties.priority).toBe(7)
    expect(moved[0]?.properties.priority).toBeUndefined()
    // Exactly what a tq enqueue of the redriven message publishes.
    expect(moved[0]?.content.toString()).toBe(
      Buffer.from(new Message({ ...first.asDict(), options: {} }).encode()).toString(),
    )
  })

  it('leaves undecodable dead letters where they are, uncounted, and honours the limit across batches', async () => {
    const q = queue('undecodable')
    const logger = createCapturingLogger()
    const broker = newBroker('undecodable', { logger })
    await broker.assertQueue(q)
    const total = 1200
    const bad = (i: number): boolean => i % 100 === 50 // 12 of them, 10 in the first 1010
    await putAll(
      xqName(q),
      Array.from({ length: total }, (_, i) =>
        bad(i)
          ? Buffer.from(i % 200 === 50 ? `not json ${i}` : JSON.stringify({ bad: i }))
          : deadMessage(q, i).encode(),
      ),
    )
    const good = Array.from({ length: total }, (_, i) => i).filter((i) => !bad(i))

    expect(await broker.redriveDeadLetters(q, { limit: 1000 })).toBe(1000)
    await expectCounts(broker, q, { ready: 1000, dead: 200 })
    expect(await argsIn(q)).toEqual(good.slice(0, 1000))
    const left = await raw.peek(xqName(q))
    const badLeft = left.filter((m) => !m.content.toString().startsWith('{"queue_name"'))
    expect(badLeft.map((m) => m.content.toString())).toEqual(
      Array.from({ length: total }, (_, i) => i)
        .filter(bad)
        .map((i) => (i % 200 === 50 ? `not json ${i}` : JSON.stringify({ bad: i }))),
    )
    expect(logger.entries.filter((e) => /Leaving an undecodable dead letter/.test(e.msg))).toHaveLength(10)

    expect(await broker.redriveDeadLetters(q)).toBe(188)
    await expectCounts(broker, q, { ready: 1188, dead: 12 })
    expect(await argsIn(q)).toEqual(good)
    // Only undecodable ones left: the redrive still ends, moving none.
    expect(await broker.redriveDeadLetters(q)).toBe(0)
    await expectCounts(broker, q, { ready: 1188, dead: 12 })
  })

  it('publishes what Python Dramatiq enqueues: bytes and properties of the first enqueue, priority kept', async () => {
    interface FixtureGet {
      properties: Record<string, unknown>
      body: string
    }
    const deadLetterFixture = fixture<{ max_retries_1: { sent_message: { encoded: string } } }>('rabbitmq-deadletter')
    const deadLetterGets = fixture<{ max_retries_1: { basic_get_from_xq: FixtureGet[] } }>('rabbitmq-deadletter')
    const enqueueFixture = fixture<{
      no_max_priority: { basic_get_in_order: FixtureGet[] }
      max_priority_10: { basic_get_in_order: FixtureGet[] }
    }>('rabbitmq-enqueue')
    const retarget = (body: string, from: string, to: string): string =>
      body.split(`"queue_name":"${from}`).join(`"queue_name":"${to}`)
    const fixtureProperties = (p: Record<string, unknown>): Record<string, unknown> => ({
      headers: p['headers'] ?? null,
      delivery_mode: p['deliveryMode'] ?? null,
      priority: p['priority'] ?? null,
      content_type: p['contentType'] ?? null,
      message_id: p['messageId'] ?? null,
      expiration: p['expiration'] ?? null,
    })
    const expectedProperties = (p: Record<string, unknown>): Record<string, unknown> => ({
      headers: p['headers'],
      delivery_mode: p['delivery_mode'],
      priority: p['priority'],
      content_type: p['content_type'],
      message_id: p['message_id'],
      expiration: p['expiration'],
    })

    // Python's dead letter after a retry (retries, traceback, requeue_timestamp), dead-lettered
    // by RabbitMQ (x-death headers): redriven, it is byte for byte what Python first enqueued.
    const q = queue('python')
    const broker = newBroker('python')
    await broker.assertQueue(q)
    const dead = deadLetterGets.max_retries_1.basic_get_from_xq[0] as FixtureGet
    await putAll(q, [Buffer.from(retarget(dead.body, 'fixture_dlr', q))])
    await deadLetter(q, 1)
    const [xq] = await raw.peek(xqName(q))
    expect(Object.keys(xq?.properties.headers as object)).toContain('x-death')
    expect(await broker.redriveDeadLetters(q)).toBe(1)
    const [back] = await raw.peek(q)
    expect(back?.content.toString('latin1')).toBe(
      retarget(deadLetterFixture.max_retries_1.sent_message.encoded, 'fixture_dlr', q),
    )
    const plain = enqueueFixture.no_max_priority.basic_get_in_order[0] as FixtureGet
    expect(fixtureProperties(back?.properties as unknown as Record<string, unknown>)).toEqual(
      expectedProperties(plain.properties),
    )

    // A priority message (broker_priority 9, AMQP priority 9) on a queue with x-max-priority.
    const pq = queue('python_priority')
    const prioBroker = newBroker('python-priority', { maxPriority: 10 })
    await prioBroker.assertQueue(pq)
    const prio = enqueueFixture.max_priority_10.basic_get_in_order[0] as FixtureGet
    expect(prio.properties['priority']).toBe(9)
    const prioBody = retarget(prio.body, 'fixture_prio', pq)
    await putAll(pq, [{ body: Buffer.from(prioBody), options: { priority: 9 } }])
    await deadLetter(pq, 1)
    expect(await prioBroker.redriveDeadLetters(pq)).toBe(1)
    const [prioBack] = await raw.peek(pq)
    expect(prioBack?.content.toString('latin1')).toBe(prioBody)
    expect(fixtureProperties(prioBack?.properties as unknown as Record<string, unknown>)).toEqual(
      expectedProperties(prio.properties),
    )
  })

  it('moves each dead letter once when two redrives of the queue run at the same time', async () => {
    const q = queue('concurrent')
    const one = newBroker('concurrent-1')
    const two = newBroker('concurrent-2')
    await one.assertQueue(q)
    const total = 2000
    await putAll(
      xqName(q),
      Array.from({ length: total }, (_, i) => deadMessage(q, i).encode()),
    )
    const [a, b] = await Promise.all([one.redriveDeadLetters(q), two.redriveDeadLetters(q)])
    expect(a + b).toBe(total)
    await expectCounts(one, q, { ready: total, dead: 0 })
    expect((await argsIn(q)).sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i))
  })

  it('fails with ConnectionClosedError when its connection is closed midway, and loses nothing', async () => {
    const q = queue('blip')
    const warmup = queue('blip_warmup')
    // Slow enough (about 1 ms per message) for the close to land midway.
    const slow: Middleware = { beforeEnqueue: () => sleep(1) }
    const broker = newBroker('blip', { middleware: [slow] })
    await broker.assertQueue(q)
    await broker.assertQueue(warmup)
    // Open the connection the dead letters are taken on, to find it.
    await putAll(xqName(warmup), [deadMessage(warmup, 0).encode()])
    expect(await broker.redriveDeadLetters(warmup)).toBe(1)
    const pids = await findConnections(`${prefix}-blip-consume`)
    expect(pids).toHaveLength(1)

    const total = 3000
    await putAll(
      xqName(q),
      Array.from({ length: total }, (_, i) => deadMessage(q, i).encode()),
    )
    const redriving = broker.redriveDeadLetters(q).then(
      (moved) => ({ moved }),
      (error: unknown) => ({ error }),
    )
    await waitFor(async () => (await broker.queueCounts(q)).ready >= REDRIVE_BATCH, {
      timeout: 15_000,
      message: 'the first batch to move',
    })
    await closeConnections(pids)
    const outcome = await redriving
    expect(outcome).toHaveProperty('error')
    expect((outcome as { error: unknown }).error).toBeInstanceOf(ConnectionClosedError)
    expect((outcome as { error: ConnectionClosedError }).error.retryable).toBe(true)
    // RabbitMQ returns the unacknowledged dead letters of the closed channel to q.XQ.
    await waitFor(
      async () => {
        const { ready, dead } = await broker.queueCounts(q)
        return ready + dead >= total
      },
      { timeout: 10_000, message: 'every message in q or q.XQ' },
    )
    const { ready, dead } = await broker.queueCounts(q)
    expect(dead).toBeGreaterThan(0)
    // At most the batch in flight is in both queues.
    expect(ready + dead).toBeGreaterThanOrEqual(total)
    expect(ready + dead - total).toBeLessThanOrEqual(REDRIVE_BATCH)

    expect(await broker.redriveDeadLetters(q)).toBe(dead)
    await expectCounts(broker, q, { ready: ready + dead, dead: 0 })
    expect(new Set(await argsIn(q)).size).toBe(total)
  }, 60_000)
})

describe('redriveDeadLetters, killed with SIGKILL midway', () => {
  const total = 5000
  it.each([
    {
      when: 'as the second batch reaches q (published, not yet acked)',
      // The server's count, polled without sleeping.
      killWhen: async (broker: RabbitmqBroker, q: string) => (await broker.queueCounts(q)).ready >= 2 * REDRIVE_BATCH,
    },
    {
      when: 'as it prepares the third batch (the second acked)',
      killWhen: (_broker: RabbitmqBroker, _q: string, output: string) => output.includes('preparing 3\n'),
    },
  ])(
    'killed $when: every message in q.XQ or q (only the batch in flight in both), a second redrive moves the rest',
    async ({ killWhen }) => {
      const q = queue(`sigkill_${used.size}`)
      const broker = newBroker('sigkill-parent')
      await broker.assertQueue(q)
      const messages = Array.from({ length: total }, (_, i) => deadMessage(q, i))
      await putAll(
        xqName(q),
        messages.map((m) => m.encode()),
      )
      const idOf = new Map(messages.map((m, i) => [m.messageId, i]))

      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--conditions=@tq/source',
          join(here, 'scripts/redrive-child.ts'),
          AMQP_URL,
          q,
          `${prefix}-sigkill-child`,
          String(REDRIVE_BATCH),
        ],
        { cwd: join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let output = ''
      const changed = new Notifier()
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        changed.notify()
      })
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on('exit', (_code, signal) => resolve(signal)),
      )
      try {
        for (const deadline = Date.now() + 30_000; !(await killWhen(broker, q, output));) {
          if (Date.now() > deadline || child.exitCode !== null) throw new Error(`never killed (output: ${output})`)
          // Woken by the child's output; the count is polled as fast as the server answers.
          await Promise.race([changed.wait(5), broker.queueCounts(q)])
        }
      } finally {
        child.kill('SIGKILL')
      }
      const readyAtKill = (await broker.queueCounts(q)).ready
      expect(await exited).toBe('SIGKILL')
      expect(output).not.toMatch(/moved/) // it did not finish

      // RabbitMQ returns the dead child's unacknowledged dead letters to q.XQ.
      await waitFor(
        async () => {
          const { ready, dead } = await broker.queueCounts(q)
          return ready + dead >= total
        },
        { timeout: 10_000, message: 'every message in q or q.XQ' },
      )
      const { ready, dead } = await broker.queueCounts(q)
      expect(dead).toBeGreaterThan(0) // killed midway
      expect(ready).toBeGreaterThanOrEqual(2 * REDRIVE_BATCH)

      const inQueue = (await raw.peek(q)).map((m) => parse(m).message_id)
      const inDead = (await raw.peek(xqName(q))).map((m) => parse(m).message_id)
      expect(inQueue).toHaveLength(ready)
      expect(inDead).toHaveLength(dead)
      // No message twice in one queue, none lost.
      expect(new Set(inQueue).size).toBe(ready)
      expect(new Set(inDead).size).toBe(dead)
      const everywhere = new Set([...inQueue, ...inDead])
      for (const id of idOf.keys()) expect(everywhere.has(id), id).toBe(true)
      expect(everywhere.size).toBe(total)
      // In both: only messages of the batch in flight (published and confirmed, not yet acked),
      // a run of consecutive dead letters no longer than a batch.
      const deadSet = new Set(inDead)
      const both = inQueue.filter((id) => deadSet.has(id)).map((id) => idOf.get(id) as number)
      expect(ready + dead).toBe(total + both.length)
      expect(both.length).toBeLessThanOrEqual(REDRIVE_BATCH)
      if (both.length > 0) expect(Math.max(...both) - Math.min(...both) + 1).toBe(both.length)
      console.log(
        `SIGKILL redrive: ready=${readyAtKill} at the kill; then ready=${ready} dead=${dead}, ${both.length} in both`,
      )

      // A second redrive moves the rest.
      expect(await broker.redriveDeadLetters(q)).toBe(dead)
      await expectCounts(broker, q, { ready: ready + dead, dead: 0 })
      const finalIds = (await raw.peek(q)).map((m) => parse(m).message_id)
      expect(new Set(finalIds).size).toBe(total)
    },
    90_000,
  )
})
