import { afterEach, describe, expect, it } from 'vitest'
import { actor } from '../actor.ts'
import type { Broker } from '../broker.ts'
import { Message } from '../message.ts'
import { defaultMiddleware } from '../middleware/default.ts'
import type { Middleware } from '../middleware/middleware.ts'
import { Results } from '../middleware/results.ts'
import { StubResultBackend } from '../results/stub.ts'
import { ResultFailureError } from '../errors.ts'
import { dqName } from '../queue-names.ts'
import { Worker, type WorkerOptions } from '../worker.ts'
import { lifecycleCases, type SuiteSetup } from './conformance-lifecycle.ts'
import { Ledger, deferred, uniqueQueueName, waitFor } from './helpers.ts'

export interface BrokerConformanceOptions {
  /** Shown in the suite's name. */
  name: string
  /** A fresh broker for one test, with exactly this middleware. */
  createBroker(options: { middleware: Middleware[] }): Broker | Promise<Broker>
  /** Put raw bytes on a queue the way a foreign producer would. */
  putRaw(broker: Broker, queueName: string, body: Uint8Array): Promise<void>
  /** Raw bodies dead-lettered from a canonical queue (including from its delay queue). */
  deadLetters(broker: Broker, queueName: string): Promise<Uint8Array[]>
  /** After each test; defaults to `flushAll()` then `close()`. */
  cleanup?(broker: Broker): Promise<void>
  /** How many messages the "each processed once" test sends (default 500). */
  messageCount?: number
  /** Multiplier for the suite's timeouts on slow brokers (default 1). */
  timeScale?: number
  /**
   * Whether a worker holds delayed messages until their eta (default true: they come from a delay
   * queue). False for a broker that keeps them in the store until due (`PostgresBroker`): the
   * suite then checks that no worker holds one and that a stopped worker leaves it for the next.
   */
  holdsDelayedMessages?: boolean
}

const decodeBody = (body: Uint8Array): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(Buffer.from(body).toString('utf8')) as Record<string, unknown>
  } catch {
    return undefined
  }
}

/**
 * The behaviours every broker must have, run against a real server. Each adapter calls it
 * with a factory; the suite declares its own actors on unique queues.
 *
 * ```ts
 * brokerConformanceSuite({
 *   name: 'RedisBroker',
 *   createBroker: ({ middleware }) => new RedisBroker({ url, middleware }),
 *   putRaw: (broker, queue, body) => …,
 *   deadLetters: (broker, queue) => …,
 * })
 * ```
 */
export function brokerConformanceSuite(options: BrokerConformanceOptions): void {
  const scale = options.timeScale ?? 1
  const t = (ms: number): number => ms * scale

  describe(`broker conformance: ${options.name}`, () => {
    const open: Array<{ broker: Broker; workers: Worker[] }> = []

    afterEach(async () => {
      for (const { broker, workers } of open.splice(0)) {
        for (const w of workers) await w.stop({ timeout: t(5000) })
        if (options.cleanup) await options.cleanup(broker)
        else {
          await broker.flushAll()
          await broker.close()
        }
      }
    })

    async function setup(middleware: Middleware[] = []): Promise<SuiteSetup> {
      const broker = await options.createBroker({ middleware })
      const entry = { broker, workers: [] as Worker[] }
      open.push(entry)
      const queueName = uniqueQueueName('tq_conf')
      return {
        broker,
        queueName,
        startWorker: async (opts: WorkerOptions = {}) => {
          const worker = new Worker(broker, { workerTimeout: 100, ...opts })
          entry.workers.push(worker)
          await worker.start()
          return worker
        },
      }
    }

    it('delivers a message to its actor with its arguments intact', async () => {
      const { broker, queueName, startWorker } = await setup()
      const got = deferred<unknown[]>()
      const echo = actor('echo', (...args: unknown[]) => got.resolve(args), { broker, queueName })
      await startWorker()
      const payload = { text: 'héllo ✓ 😀', list: [1, 2.5, null, true], nested: { a: { b: 'c' } } }
      const sent = await echo.send(42, 'x', payload)
      expect(sent.messageId).toMatch(/^[0-9a-f-]{36}$/)
      expect(sent.queueName).toBe(queueName)
      expect(await got.promise).toEqual([42, 'x', payload])
      await broker.join(queueName, { timeout: t(5000) })
    })

    it('passes kwargs as a trailing object argument', async () => {
      const { broker, queueName, startWorker } = await setup()
      const got = deferred<unknown[]>()
      const fn = actor('kw', (...args: unknown[]) => got.resolve(args), { broker, queueName })
      await startWorker()
      await fn.sendWithOptions({ args: [1], kwargs: { flag: true } })
      expect(await got.promise).toEqual([1, { flag: true }])
    })

    it('holds a delayed message until its eta', async () => {
      const { broker, queueName, startWorker } = await setup()
      const ran = deferred<number>()
      const later = actor('later', () => ran.resolve(Date.now()), { broker, queueName })
      await startWorker()
      const sent = await later.sendWithOptions({ args: [], delay: 300 })
      expect(sent.queueName).toBe(dqName(queueName))
      const eta = sent.options.eta as number
      expect(typeof eta).toBe('number')
      expect(await ran.promise).toBeGreaterThanOrEqual(eta)
      await broker.join(queueName, { timeout: t(5000) })
    })

    it('runs a shorter delay sent later first', async () => {
      const { broker, queueName, startWorker } = await setup()
      const ledger = new Ledger<string>()
      const tag = actor('tag', (name: string) => ledger.record(name), { broker, queueName })
      await startWorker()
      await tag.sendWithOptions({ args: ['slow'], delay: 600 })
      await tag.sendWithOptions({ args: ['fast'], delay: 100 })
      await ledger.waitForTotal(2, t(5000))
      expect(ledger.order).toEqual(['fast', 'slow'])
    })

    it('dead-letters a nacked message', async () => {
      const { broker, queueName } = await setup()
      const noop = actor('noop', () => undefined, { broker, queueName })
      const sent = await noop.send()
      const consumer = broker.consume(queueName, { prefetch: 1, timeout: t(2000) })
      const [delivered] = await consumer.receive()
      expect(delivered?.messageId).toBe(sent.messageId)
      await consumer.nack(delivered as NonNullable<typeof delivered>)
      await consumer.close()
      await waitFor(async () => (await options.deadLetters(broker, queueName)).length === 1, {
        timeout: t(5000),
        message: 'the dead letter',
      })
      const [body] = await options.deadLetters(broker, queueName)
      expect(decodeBody(body as Uint8Array)?.['message_id']).toBe(sent.messageId)
    })

    it('dead-letters a message for an unknown actor and keeps going', async () => {
      const { broker, queueName, startWorker } = await setup()
      const ledger = new Ledger<string>()
      const known = actor('known', (x: string) => ledger.record(x), { broker, queueName })
      const stranger = new Message({ queueName, actorName: 'nobody_declared_this', args: [1] })
      await options.putRaw(broker, queueName, stranger.encode(broker.encoder))
      await startWorker()
      await known.send('after')
      await ledger.waitForTotal(1, t(5000))
      await waitFor(async () => (await options.deadLetters(broker, queueName)).length === 1, {
        timeout: t(5000),
        message: 'the dead letter',
      })
      const [body] = await options.deadLetters(broker, queueName)
      expect(decodeBody(body as Uint8Array)?.['message_id']).toBe(stranger.messageId)
    })

    it('dead-letters undecodable payloads without stopping the worker', async () => {
      const { broker, queueName, startWorker } = await setup()
      const ledger = new Ledger<string>()
      const good = actor('good', (x: string) => ledger.record(x), { broker, queueName })
      const hostile = [
        Buffer.from('{not json'),
        Buffer.from('"a string"'),
        Buffer.from(JSON.stringify({ queue_name: queueName, args: [] })),
        Buffer.from(
          JSON.stringify({
            queue_name: queueName,
            actor_name: 'good',
            args: 'nope',
            kwargs: {},
            options: {},
            message_id: 'x',
            message_timestamp: 1,
          }),
        ),
        Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
      ]
      for (const body of hostile) await options.putRaw(broker, queueName, body)
      await startWorker()
      await good.send('ok')
      await ledger.waitForTotal(1, t(5000))
      expect(ledger.order).toEqual(['ok'])
      await waitFor(async () => (await options.deadLetters(broker, queueName)).length === hostile.length, {
        timeout: t(5000),
        message: `${hostile.length} dead letters`,
      })
    })

    it('join waits until every message is processed', async () => {
      const { broker, queueName, startWorker } = await setup()
      let done = 0
      const slow = actor(
        'slow',
        async (ms: number) => {
          await new Promise((r) => setTimeout(r, ms))
          done++
        },
        { broker, queueName },
      )
      for (let i = 0; i < 20; i++) await slow.send(i % 5)
      await startWorker({ concurrency: 4 })
      await broker.join(queueName, { timeout: t(10_000) })
      expect(done).toBe(20)
    })

    it('flush drops pending and delayed messages', async () => {
      const { broker, queueName, startWorker } = await setup()
      const ledger = new Ledger<string>()
      const rec = actor('rec', (x: string) => ledger.record(x), { broker, queueName })
      for (let i = 0; i < 5; i++) await rec.send(`old${i}`)
      await rec.sendWithOptions({ args: ['old-delayed'], delay: 50 })
      await broker.flush(queueName)
      await broker.join(queueName, { timeout: t(2000) })
      await rec.send('new')
      await startWorker({ concurrency: 1 })
      await ledger.waitForTotal(1, t(5000))
      await broker.join(queueName, { timeout: t(5000) })
      expect(ledger.order).toEqual(['new'])
    })

    it('never leaves more than `prefetch` deliveries outstanding', async () => {
      const { broker, queueName } = await setup()
      const noop = actor('noop', () => undefined, { broker, queueName })
      for (let i = 0; i < 10; i++) await noop.send()
      const consumer = broker.consume(queueName, { prefetch: 3, timeout: t(1000) })
      const seen: Awaited<ReturnType<typeof consumer.receive>> = []
      await waitFor(
        async () => {
          seen.push(...(await consumer.receive()))
          return seen.length >= 3
        },
        { timeout: t(5000), interval: 1, message: '3 deliveries' },
      )
      expect(seen).toHaveLength(3)
      // Full: nothing more until a slot frees.
      const blocked = consumer.receive()
      await consumer.ack(seen[0] as (typeof seen)[number])
      const next = await blocked
      expect(next.length).toBeLessThanOrEqual(1)
      for (const m of [...seen.slice(1), ...next]) await consumer.ack(m)
      await consumer.close()
    })

    it('requeued messages are delivered again', async () => {
      const { broker, queueName } = await setup()
      const noop = actor('noop', () => undefined, { broker, queueName })
      const sent = await noop.send()
      const first = broker.consume(queueName, { prefetch: 1, timeout: t(2000) })
      const [a] = await first.receive()
      expect(a?.messageId).toBe(sent.messageId)
      await first.requeue([a as NonNullable<typeof a>])
      await first.close()
      const second = broker.consume(queueName, { prefetch: 1, timeout: t(2000) })
      const [b] = await second.receive()
      expect(b?.messageId).toBe(sent.messageId)
      await second.ack(b as NonNullable<typeof b>)
      await second.close()
    })

    it(`processes every message exactly once under normal conditions`, async () => {
      const count = options.messageCount ?? 500
      const { broker, queueName, startWorker } = await setup()
      const ledger = new Ledger<number>()
      const rec = actor('rec', (i: number) => ledger.record(i), { broker, queueName })
      const messages = Array.from({ length: count }, (_, i) => rec.message(i))
      await broker.enqueueMany(messages)
      await startWorker({ concurrency: 8 })
      await ledger.waitForTotal(count, t(30_000))
      await broker.join(queueName, { timeout: t(10_000) })
      expect(ledger.counts.size).toBe(count)
      expect(ledger.duplicates).toEqual([])
    })

    it('retries a failing message through the delay queue, keeping its id and timestamp', async () => {
      const { broker, queueName, startWorker } = await setup(defaultMiddleware())
      const attempts: Array<{ id: string; ts: number; retries: unknown }> = []
      const done = deferred()
      const flaky = actor(
        'flaky',
        () => {
          const current = attempts.length
          if (current < 3) throw new Error(`attempt ${current} failed`)
          done.resolve()
        },
        { broker, queueName, maxRetries: 5, minBackoff: 10, maxBackoff: 50 },
      )
      broker.addMiddleware({
        beforeProcessMessage: (_b, m) => {
          attempts.push({ id: m.messageId, ts: m.messageTimestamp, retries: m.options.retries })
        },
      })
      const sent = await flaky.send()
      await startWorker()
      await done.promise
      await broker.join(queueName, { timeout: t(10_000) })
      expect(attempts.map((a) => a.retries)).toEqual([undefined, 1, 2])
      expect(new Set(attempts.map((a) => a.id))).toEqual(new Set([sent.messageId]))
      expect(new Set(attempts.map((a) => a.ts))).toEqual(new Set([sent.messageTimestamp]))
      expect(await options.deadLetters(broker, queueName)).toEqual([])
    })

    it('dead-letters a message once its retries are exhausted (maxRetries + 1 attempts)', async () => {
      const { broker, queueName, startWorker } = await setup(defaultMiddleware())
      let attempts = 0
      const doomed = actor(
        'doomed',
        () => {
          attempts++
          throw new Error('always fails')
        },
        { broker, queueName, maxRetries: 2, minBackoff: 10, maxBackoff: 20 },
      )
      const sent = await doomed.send()
      await startWorker()
      await waitFor(async () => (await options.deadLetters(broker, queueName)).length === 1, {
        timeout: t(10_000),
        message: 'the dead letter',
      })
      expect(attempts).toBe(3)
      const [body] = await options.deadLetters(broker, queueName)
      const wire = decodeBody(body as Uint8Array)
      expect(wire?.['message_id']).toBe(sent.messageId)
      expect((wire?.['options'] as Record<string, unknown>)['retries']).toBe(2)
    })

    it('round-trips results and failures through a result backend', async () => {
      const backend = new StubResultBackend()
      const { broker, queueName, startWorker } = await setup([
        ...defaultMiddleware(),
        new Results({ backend, storeResults: true }),
      ])
      const add = actor('add', (x: number, y: number) => x + y, { broker, queueName })
      const fail = actor(
        'fail',
        () => {
          throw new TypeError('bad input')
        },
        { broker, queueName, maxRetries: 0 },
      )
      await startWorker()
      const ok = await add.send(20, 22)
      expect(await ok.getResult({ backend, block: true, timeout: t(5000) })).toBe(42)
      const bad = await fail.send()
      const error = await bad.getResult({ backend, block: true, timeout: t(5000) }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ResultFailureError)
      expect((error as ResultFailureError).origExcType).toBe('TypeError')
      expect((error as ResultFailureError).origExcMsg).toBe('bad input')
    })

    lifecycleCases({ options, t, setup })
  })
}
