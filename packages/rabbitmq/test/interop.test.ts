/**
 * Wire compatibility with Python Dramatiq 2.2, checked against the captured fixtures
 * (fixtures/dramatiq-wire/rabbitmq-*.json) on the real server.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  ConfigurationError,
  Worker,
  actor,
  dqName,
  xqName,
  type Message,
  type Middleware,
  StubTrackingBackend,
  Tracking,
} from '@tq/core'
import { Ledger, uniqueQueueName, waitFor } from '@tq/core/testing'
import { RabbitmqBroker, type RabbitmqBrokerOptions } from '../src/index.ts'
import { AMQP_URL, RawAmqp, fixture, listQueues } from './helpers.ts'

interface FixtureQueue {
  name: string
  durable: boolean
  auto_delete: boolean
  exclusive: boolean
  arguments: Array<[string, string, unknown]>
  type: string
}
interface FixtureProperties {
  headers: Record<string, unknown> | null
  delivery_mode: number | null
  priority: number | null
  [key: string]: unknown
}
interface FixtureGet {
  properties: FixtureProperties
  body: string
}
interface DeclareFrame {
  method?: string
  fields?: { queue: string; arguments: Array<{ key: string; type_tag: string; value: unknown }> }
}
interface EnqueuePart {
  returned_messages: Array<{ encoded: string }>
  queues: FixtureQueue[]
  basic_get_in_order: FixtureGet[]
  client_frames_by_connection: DeclareFrame[][]
}

const enqueueFixture = fixture<{ no_max_priority: EnqueuePart; max_priority_10: EnqueuePart }>('rabbitmq-enqueue')
const delayedFixture = fixture<{ returned_message: { encoded: string }; basic_get_from_dq: FixtureGet[] }>(
  'rabbitmq-delayed',
)
const deadLetterFixture = fixture<{ max_retries_0: { basic_get_from_xq: FixtureGet[] } }>('rabbitmq-deadletter')

const prefix = uniqueQueueName('tq_rmq_interop')
const raw = new RawAmqp()
const brokers: RabbitmqBroker[] = []
const workers: Worker[] = []
const used = new Set<string>()
let tracking: Tracking | undefined

function queue(name: string): string {
  const q = `${prefix}${tracking ? '_t' : ''}_${name}`
  used.add(q)
  return q
}

function newBroker(options: RabbitmqBrokerOptions = {}): RabbitmqBroker {
  const middleware: Middleware[] = [...(options.middleware ?? []), ...(tracking ? [tracking] : [])]
  const broker = new RabbitmqBroker({ url: AMQP_URL, connectionName: `${prefix}`, ...options, middleware })
  brokers.push(broker)
  return broker
}

async function startWorker(broker: RabbitmqBroker): Promise<Worker> {
  const worker = new Worker(broker, { workerTimeout: 100 })
  workers.push(worker)
  await worker.start()
  return worker
}

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeout: 5000 })
  for (const b of brokers.splice(0)) await b.close()
})

afterAll(async () => {
  await raw.deleteTopology(...used)
  await raw.close()
})

/** A fixture body moved to our queue name. */
function retarget(body: string, from: string, to: string): string {
  return body.split(`"queue_name":"${from}`).join(`"queue_name":"${to}`)
}

/** The fixture's `queue.declare` arguments, with their exact AMQP types, for amqplib. */
function fixtureArguments(part: EnqueuePart, queueName: string, ours: string): Record<string, unknown> {
  const frame = part.client_frames_by_connection
    .flat()
    .find((f) => f.method === 'queue.declare' && f.fields?.queue === queueName)
  const args: Record<string, unknown> = {}
  for (const a of frame?.fields?.arguments ?? []) {
    const value = typeof a.value === 'string' ? a.value.split('fixture_prio').join(ours) : a.value
    args[a.key] = a.type_tag === 'I' ? { '!': 'int', value } : value
  }
  return args
}

/** amqplib's properties in the fixture's shape (snake_case, null for absent). */
function propertiesLikeFixture(p: Record<string, unknown>): Record<string, unknown> {
  const names: Record<string, string> = {
    contentType: 'content_type',
    contentEncoding: 'content_encoding',
    headers: 'headers',
    deliveryMode: 'delivery_mode',
    priority: 'priority',
    correlationId: 'correlation_id',
    replyTo: 'reply_to',
    expiration: 'expiration',
    messageId: 'message_id',
    timestamp: 'timestamp',
    type: 'type',
    userId: 'user_id',
    appId: 'app_id',
    clusterId: 'cluster_id',
  }
  return Object.fromEntries(Object.entries(names).map(([camel, snake]) => [snake, p[camel] ?? null]))
}

function interopWithPython(): void {
  it("declares queues the server reports exactly as it reports Dramatiq's", async () => {
    const plain = queue('plain')
    const prio = queue('prio')
    await newBroker().assertQueue(plain)
    await newBroker({ maxPriority: 10 }).assertQueue(prio)
    const server = await listQueues()
    const view = (names: string[]): unknown[] =>
      names.map((n) => {
        const q = server.find((s) => s.name === n)
        return (
          q && {
            durable: q.durable,
            auto_delete: q.auto_delete,
            exclusive: q.exclusive,
            type: q.type,
            arguments: q.arguments,
          }
        )
      })
    const expected = (part: EnqueuePart, from: string, to: string): unknown[] =>
      part.queues.map((q) => ({
        durable: q.durable,
        auto_delete: q.auto_delete,
        exclusive: q.exclusive,
        type: q.type,
        arguments: q.arguments.map(([k, t, v]) => [k, t, typeof v === 'string' ? v.split(from).join(to) : v]),
      }))
    expect(view([plain, dqName(plain), xqName(plain)])).toEqual(
      expected(enqueueFixture.no_max_priority, 'fixture_default', plain),
    )
    expect(view([prio, dqName(prio), xqName(prio)])).toEqual(
      expected(enqueueFixture.max_priority_10, 'fixture_prio', prio),
    )
  })

  it('uses queues Python Dramatiq declared as they are (no PRECONDITION_FAILED), at any integer width', async () => {
    const part = enqueueFixture.max_priority_10
    for (const [name, width] of [
      ['exact', 'I'],
      ['byte', 'b'],
    ] as const) {
      const q = queue(`predeclared_${name}`)
      await raw.withChannel(async (channel) => {
        for (const [suffix, source] of [
          ['', 'fixture_prio'],
          ['.DQ', 'fixture_prio.DQ'],
          ['.XQ', 'fixture_prio.XQ'],
        ] as const) {
          const args = fixtureArguments(part, source, q)
          if (width === 'b' && args['x-max-priority'] !== undefined) args['x-max-priority'] = 10 // amqplib picks int8
          await channel.assertQueue(`${q}${suffix}`, { durable: true, arguments: args })
        }
      })
      const broker = newBroker({ maxPriority: 10 })
      const ledger = new Ledger<number>()
      const add = actor('add', (x: number, y: number) => ledger.record(x + y), { broker, queueName: q })
      await add.sendWithOptions({ args: [1, 2], brokerPriority: 4 })
      await add.sendWithOptions({ args: [3, 4], delay: 50 })
      await startWorker(broker)
      await ledger.waitForTotal(2, 5000)
      expect(ledger.order.sort()).toEqual([3, 7])
      await broker.join(q, { timeout: 5000 })
    }
  })

  it('refuses a queue declared with another x-max-priority with a ConfigurationError, without retrying', async () => {
    const q = queue('mismatch')
    await newBroker({ maxPriority: 10 }).assertQueue(q)
    const broker = newBroker({ maxPriority: 5 })
    const add = actor('add', () => undefined, { broker, queueName: q })
    const started = Date.now()
    const error = await add.send().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigurationError)
    expect((error as Error).message).toMatch(/inequivalent arg 'x-max-priority'/)
    expect(Date.now() - started).toBeLessThan(2000) // retrying would take 3+ s
  })

  it('processes messages published the way Dramatiq publishes them (fixture bytes and properties)', async () => {
    const q = queue('from_python')
    const broker = newBroker({ maxPriority: 10 })
    const ledger = new Ledger<string>()
    const add = actor('add', (x: number, y: number) => ledger.record(`${x}+${y}`), { broker, queueName: q })
    await broker.assertQueue(q)
    for (const get of enqueueFixture.max_priority_10.basic_get_in_order) {
      const body = retarget(get.body, 'fixture_prio', q)
      const priority = get.properties.priority
      await raw.publish(q, Buffer.from(body), priority === null ? {} : { priority })
    }
    // A delayed message as Dramatiq writes it to the delay queue, due in 200 ms.
    const eta = Date.now() + 200
    const delayed = retarget(delayedFixture.returned_message.encoded, 'fixture_default', q).replace(
      /"eta":\d+/,
      `"eta":${eta}`,
    )
    await raw.publish(dqName(q), Buffer.from(delayed))
    await startWorker(broker)
    await ledger.waitForTotal(4, 5000)
    expect(ledger.order.slice(0, 3).sort()).toEqual(['1+2', '5+6', '7+8'])
    expect(ledger.order[3]).toBe('1+2')
    expect(add.actorName).toBe('add')
    await broker.join(q, { timeout: 5000 })
  })

  it('publishes the bytes and properties Dramatiq publishes (modulo ids and timestamps)', async () => {
    for (const [part, source, maxPriority, sends] of [
      ['max_priority_10', 'fixture_prio', 10, [[[1, 2]], [[5, 6], 3], [[7, 8], 9]]],
      ['no_max_priority', 'fixture_default', undefined, [[[1, 2]], [[3, 4], 5]]],
    ] as const) {
      const q = queue(`to_python_${part}`)
      const broker = newBroker(maxPriority === undefined ? {} : { maxPriority })
      const add = actor('add', (x: number, y: number) => x + y, { broker, queueName: q })
      const sent: Message[] = []
      for (const [args, brokerPriority] of sends as ReadonlyArray<readonly [readonly [number, number], number?]>) {
        sent.push(
          await add.sendWithOptions({
            args: [...args] as [number, number],
            ...(brokerPriority === undefined ? {} : { brokerPriority }),
          }),
        )
      }
      const got = await raw.peek(q)
      const expected = enqueueFixture[part].basic_get_in_order
      expect(got).toHaveLength(expected.length)
      got.forEach((message, i) => {
        const want = expected[i] as FixtureGet
        const wantParsed = JSON.parse(want.body) as { message_id: string; message_timestamp: number; args: number[] }
        const ours = sent.find((m) => JSON.stringify(m.args) === JSON.stringify(wantParsed.args))
        expect(ours, `message ${JSON.stringify(wantParsed.args)}`).toBeDefined()
        const wantBody = retarget(want.body, source, q)
          .replace(wantParsed.message_id, ours?.messageId ?? '')
          .replace(String(wantParsed.message_timestamp), String(ours?.messageTimestamp))
        expect(message.content.toString('latin1')).toBe(wantBody)
        expect(message.fields.routingKey).toBe(q)
        expect(propertiesLikeFixture(message.properties as unknown as Record<string, unknown>)).toEqual(want.properties)
      })
    }
  })

  it('publishes a delayed message to q.DQ exactly as Dramatiq does', async () => {
    const q = queue('delayed')
    const broker = newBroker()
    const add = actor('add', (x: number, y: number) => x + y, { broker, queueName: q })
    const sent = await add.sendWithOptions({ args: [1, 2], delay: 5000 })
    const [got, ...rest] = await raw.peek(dqName(q))
    expect(rest).toEqual([])
    const want = delayedFixture.basic_get_from_dq[0] as FixtureGet
    const wantParsed = JSON.parse(want.body) as {
      message_id: string
      message_timestamp: number
      options: { eta: number }
    }
    const wantBody = retarget(want.body, 'fixture_default', q)
      .replace(wantParsed.message_id, sent.messageId)
      .replace(String(wantParsed.message_timestamp), String(sent.messageTimestamp))
      .replace(`"eta":${wantParsed.options.eta}`, `"eta":${String(sent.options.eta)}`)
    expect(got?.content.toString('latin1')).toBe(wantBody)
    expect(got?.fields.routingKey).toBe(dqName(q))
    expect(propertiesLikeFixture(got?.properties as unknown as Record<string, unknown>)).toEqual(want.properties)
    expect(sent.options.eta).toBeGreaterThanOrEqual(sent.messageTimestamp + 5000)
  })

  it('dead-letters a failed message to q.XQ byte-identical to what was published, as Dramatiq', async () => {
    const q = queue('deadletter')
    const broker = new RabbitmqBroker({ url: AMQP_URL, connectionName: prefix }) // default middleware
    brokers.push(broker)
    const fails = actor(
      'fails',
      (_x: number, _y: number): never => {
        throw new Error('boom')
      },
      { broker, queueName: q, maxRetries: 0 },
    )
    const sent = await fails.send(1, 2)
    await startWorker(broker)
    await waitFor(async () => (await raw.messageCount(xqName(q))) === 1, { message: 'the dead letter' })
    const [dead] = await raw.peek(xqName(q))
    expect(dead?.content.equals(Buffer.from(sent.encode()))).toBe(true)
    const want = (deadLetterFixture.max_retries_0.basic_get_from_xq[0] as FixtureGet).properties
    const headers = dead?.properties.headers as Record<string, unknown>
    expect(Object.keys(headers).sort()).toEqual(Object.keys(want.headers ?? {}).sort())
    expect(headers['x-first-death-reason']).toBe('rejected')
    expect(headers['x-first-death-queue']).toBe(q)
    const [death] = headers['x-death'] as Array<Record<string, unknown>>
    expect(death).toMatchObject({ count: 1, reason: 'rejected', queue: q, exchange: '', 'routing-keys': [q] })
    expect(dead?.properties.deliveryMode).toBe(2)
  })
}

describe('interop with Python Dramatiq', interopWithPython)

// The same bytes, queues and behaviour with Tracking (cancel, dedup, heartbeats) on the tq side.
describe('interop with Python Dramatiq, with Tracking on', () => {
  beforeEach(() => {
    tracking = new Tracking({ backend: new StubTrackingBackend(), flushInterval: 5 })
  })
  afterEach(() => {
    tracking = undefined
  })
  interopWithPython()
})
