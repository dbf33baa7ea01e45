// What tq writes to Redis, compared with what Python Dramatiq 2.2 wrote in the same scenario
// (fixtures/dramatiq-wire/redis-*.json): key names, types, TTLs, option order and payload bytes,
// modulo ids and timestamps.
import { Message, Pipelines, Retries, Worker, actor, fieldsFromWire, type Middleware, type Tracking } from '@tq/core'
import { deferred, waitFor } from '@tq/core/testing'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { RedisBroker } from '../src/index.ts'
import { dumpNamespace, loadFixture, stripParsed, substitute, zeroHeartbeats } from './fixtures.ts'
import { withAndWithoutTracking } from './tracking-variant.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const raw = rawClient()
let tracking: Tracking | undefined
let namespace: string
let broker: RedisBroker
const workers: Worker[] = []

function makeBroker(middleware: Middleware[] = []): RedisBroker {
  broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: tracking ? [...middleware, tracking] : middleware })
  return broker
}

beforeEach(() => {
  namespace = uniqueNamespace('written')
})

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeout: 5000 })
  await broker.close()
  await deleteNamespace(raw, namespace)
})

/** A message with the fixture's message id and timestamp, so payload bytes can match exactly. */
function messageLike(parsed: {
  queue_name: string
  actor_name: string
  args: unknown[]
  kwargs: Record<string, unknown>
  options: Record<string, unknown>
  message_id: string
  message_timestamp: number
}): Message {
  const { redis_message_id: _rid, eta: _eta, ...options } = parsed.options
  return Message.fromWire({ ...parsed, queue_name: parsed.queue_name.replace(/\.DQ$/, ''), options })
}

function writesWhatDramatiqWrites(): void {
  it('plain enqueue: list of ids, hash of payloads, heartbeat; same bytes (redis-enqueue)', async () => {
    const fx = loadFixture('redis-enqueue.json')
    makeBroker()
    const sent = await broker.enqueue(messageLike(fx.returned_message.parsed))
    const rid = sent.options.redisMessageId as string
    expect(rid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(rid).not.toBe(sent.messageId)
    const fxRid = fx.returned_message.parsed.options.redis_message_id as string
    const replacements = [
      [fxRid, rid],
      [fx.broker_id, broker.brokerId],
    ] as const
    expect(Buffer.from(sent.encode()).toString()).toBe(substitute(fx.returned_message.encoded as string, replacements))
    const dump = zeroHeartbeats(await dumpNamespace(raw, namespace))
    expect(dump).toEqual(zeroHeartbeats(substitute(stripParsed(fx.redis_keys), replacements)))
  })

  it('delayed enqueue: `<q>.DQ` list + hash, queue_name rewritten, options {redis_message_id, eta} (redis-enqueue-delayed)', async () => {
    const fx = loadFixture('redis-enqueue-delayed.json')
    makeBroker()
    const before = Date.now()
    const sent = await broker.enqueue(messageLike(fx.returned_message.parsed), { delay: 5000 })
    const after = Date.now()
    const eta = sent.options.eta as number
    expect(Number.isInteger(eta)).toBe(true)
    expect(eta).toBeGreaterThanOrEqual(before + 5000)
    expect(eta).toBeLessThanOrEqual(after + 5000)
    expect(Object.keys(sent.toWire().options)).toEqual(['redis_message_id', 'eta'])
    const replacements = [
      [fx.returned_message.parsed.options.redis_message_id as string, sent.options.redisMessageId as string],
      [String(fx.returned_message.parsed.options.eta), String(eta)],
      [fx.broker_id, broker.brokerId],
    ] as const
    const dump = zeroHeartbeats(await dumpNamespace(raw, namespace))
    expect(dump).toEqual(zeroHeartbeats(substitute(stripParsed(fx.redis_keys), replacements)))
  })

  it('escapes non-ASCII like Python and keeps kwargs order (redis-enqueue-kwargs-unicode)', async () => {
    const fx = loadFixture('redis-enqueue-kwargs-unicode.json')
    makeBroker()
    const parsed = fx.returned_message.parsed
    // JavaScript numbers cannot say 1.0, 1e+16, 1.5e-07, a 20-digit integer or -0.0 the way
    // Python does; everything before them must match byte for byte.
    const message = messageLike({ ...parsed, args: parsed.args.slice(0, 5) })
    const sent = await broker.enqueue(message)
    const expected = (fx.returned_message.encoded as string)
      .replace(',1.0,1e+16,1.5e-07,12345678901234567890,-0.0]', ']')
      .replace(parsed.options.redis_message_id, sent.options.redisMessageId as string)
    const stored = await raw.hget(`${namespace}:default.msgs`, sent.options.redisMessageId as string)
    expect(stored).toBe(expected)
  })

  it('pipeline: pipe_target before redis_message_id; the next step matches byte for byte (redis-pipeline)', async () => {
    const fx = loadFixture('redis-pipeline.json')
    const written: string[] = []
    makeBroker([new Pipelines(), { afterEnqueue: (_b, m) => void written.push(Buffer.from(m.encode()).toString()) }])
    const done = deferred()
    let runs = 0
    actor(
      'add',
      (x: number, y = 0) => {
        if (++runs === 2) done.resolve()
        return x + y
      },
      { broker, queueName: 'default' },
    )
    const [first, second] = fx.two_step.enqueue_log as Array<{ encoded: string }>
    const firstParsed = JSON.parse(first?.encoded as string)
    const sent = await broker.enqueue(messageLike(firstParsed))
    expect(written[0]).toBe(
      (first?.encoded as string).replace(firstParsed.options.redis_message_id, sent.options.redisMessageId as string),
    )
    const worker = new Worker(broker, { workerTimeout: 100 })
    workers.push(worker)
    await worker.start()
    await done.promise
    await broker.join('default', { timeout: 5000 })
    const secondParsed = JSON.parse(second?.encoded as string)
    const secondRid = JSON.parse(written[1] as string).options.redis_message_id as string
    expect(written[1]).toBe((second?.encoded as string).replace(secondParsed.options.redis_message_id, secondRid))
    // The three-step chain nests recursively, `delay` riding inside the nested options.
    const three = JSON.parse(fx.three_step.enqueue_log[0].encoded)
    const threeSent = await broker.enqueue(messageLike(three))
    expect(Buffer.from(threeSent.encode()).toString()).toBe(
      (fx.three_step.enqueue_log[0].encoded as string).replace(
        three.options.redis_message_id,
        threeSent.options.redisMessageId as string,
      ),
    )
    expect(fieldsFromWire(three).options['pipeTarget']).toBeDefined()
  })

  it('in flight: per-queue ack sets while processing; stop() requeues to the list tails (redis-inflight)', async () => {
    const fx = loadFixture('redis-inflight.json')
    makeBroker()
    const started = deferred()
    const release = deferred()
    actor(
      'slow',
      async (label: string) => {
        if (label === 'first') {
          started.resolve()
          await release.promise
        }
      },
      { broker, queueName: 'default' },
    )
    const worker = new Worker(broker, { concurrency: 1, workerTimeout: 100 })
    workers.push(worker)
    const sent: Record<string, Message> = {}
    sent['first'] = await broker.enqueue(messageLike(fx.sent_messages.first.parsed))
    sent['second'] = await broker.enqueue(messageLike(fx.sent_messages.second.parsed))
    sent['delayed'] = await broker.enqueue(messageLike(fx.sent_messages.delayed.parsed), { delay: 600_000 })
    await worker.start()
    await started.promise
    await waitFor(() => worker.stats.queued === 1 && worker.stats.delayed === 1, {
      message: 'second prefetched, delayed held',
    })
    const replacements: Array<readonly [string, string]> = [[fx.broker_id, broker.brokerId]]
    for (const label of ['first', 'second', 'delayed']) {
      replacements.push([
        fx.sent_messages[label].parsed.options.redis_message_id,
        sent[label]?.options.redisMessageId as string,
      ])
    }
    replacements.push([String(fx.sent_messages.delayed.parsed.options.eta), String(sent['delayed']?.options.eta)])
    const whileProcessing = zeroHeartbeats(await dumpNamespace(raw, namespace))
    expect(whileProcessing).toEqual(zeroHeartbeats(substitute(stripParsed(fx.states.while_processing), replacements)))

    const stopping = worker.stop({ timeout: 5000 })
    release.resolve()
    await stopping
    const afterStop = zeroHeartbeats(await dumpNamespace(raw, namespace))
    expect(afterStop).toEqual(zeroHeartbeats(substitute(stripParsed(fx.states.after_stop), replacements)))
  })

  it('retry and dead letter: option order, new redis ids, XQ zset + hash without TTL (redis-retry)', async () => {
    const fx = loadFixture('redis-retry.json')
    const log: Array<{ queue: string; wire: Record<string, unknown> }> = []
    makeBroker([
      new Retries(),
      { afterEnqueue: (_b, m) => void log.push({ queue: m.queueName, wire: m.toWire().options }) },
    ])
    const nacked = deferred()
    broker.addMiddleware({ afterNack: () => nacked.resolve() })
    actor(
      'fails',
      () => {
        throw new Error('boom')
      },
      { broker, queueName: 'default', maxRetries: 1, minBackoff: 10, maxBackoff: 20 },
    )
    const sent = await broker.enqueue(messageLike(fx.sent_message.parsed))
    const worker = new Worker(broker, { concurrency: 1, workerTimeout: 100 })
    workers.push(worker)
    await worker.start()
    await nacked.promise
    await broker.join('default', { timeout: 5000 })

    const fxLog = fx.enqueue_log as Array<{ queue_name: string; encoded: string }>
    expect(log.map((e) => e.queue)).toEqual(fxLog.map((e) => e.queue_name))
    expect(log.map((e) => Object.keys(e.wire))).toEqual(fxLog.map((e) => Object.keys(JSON.parse(e.encoded).options)))
    const rids = log.map((e) => e.wire['redis_message_id'])
    expect(new Set(rids).size).toBe(3)
    expect(log[1]?.wire['retries']).toBe(1)

    const dump = await dumpNamespace(raw, namespace)
    const fxFinal = stripParsed(fx.states.after_final_failure)
    expect(Object.keys(dump).sort()).toEqual(Object.keys(fxFinal).sort())
    for (const key of Object.keys(fxFinal)) {
      expect(dump[key]?.type).toBe(fxFinal[key]?.type)
      expect(dump[key]?.pttl).toBe(-1)
    }
    const xq = dump['dramatiq:default.XQ']?.value as Array<{ member: string; score: number }>
    expect(xq.map((e) => e.member)).toEqual([rids[2]])
    const body = (dump['dramatiq:default.XQ.msgs']?.value as Record<string, string>)[rids[2] as string] as string
    const fxBody = Object.values(fxFinal['dramatiq:default.XQ.msgs']?.value as Record<string, string>)[0] as string
    const parsed = JSON.parse(body)
    const fxParsed = JSON.parse(fxBody)
    expect(Object.keys(parsed)).toEqual(Object.keys(fxParsed))
    expect(Object.keys(parsed.options)).toEqual(Object.keys(fxParsed.options))
    // The dead letter is the payload as last written (retries 1), not the in-memory count (2).
    expect(parsed.options.retries).toBe(1)
    expect(parsed.message_id).toBe(sent.messageId)
    expect(parsed.message_timestamp).toBe(fx.sent_message.parsed.message_timestamp)
  })
}

withAndWithoutTracking('tq writes what Dramatiq writes', writesWhatDramatiqWrites, {
  namespace: () => namespace,
  client: raw,
  use: (on) => (tracking = on),
})
