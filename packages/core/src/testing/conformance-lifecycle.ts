// The conformance cases about a broker's and a worker's life: closing, counting, refusing what
// is not its own, and what a stopping worker hands back.
import { expect, it } from 'vitest'
import { actor } from '../actor.ts'
import type { Broker } from '../broker.ts'
import { BrokerClosedError, InvalidArgumentError } from '../errors.ts'
import { Message } from '../message.ts'
import { MessageProxy } from '../message-proxy.ts'
import type { Middleware } from '../middleware/middleware.ts'
import { xqName } from '../queue-names.ts'
import type { Worker, WorkerOptions } from '../worker.ts'
import type { BrokerConformanceOptions } from './conformance.ts'
import { Ledger, deferred, rejection, uniqueQueueName, waitFor } from './helpers.ts'

export interface SuiteSetup {
  broker: Broker
  queueName: string
  startWorker: (opts?: WorkerOptions) => Promise<Worker>
}

export interface SuiteContext {
  options: BrokerConformanceOptions
  /** Scales a timeout by the suite's `timeScale`. */
  t: (ms: number) => number
  /** A broker (cleaned up after the test) with `middleware`, a unique queue name and a worker factory. */
  setup: (middleware?: Middleware[]) => Promise<SuiteSetup>
}

export function lifecycleCases({ options, t, setup }: SuiteContext): void {
  it('a closed broker refuses enqueues and consumers with BrokerClosedError', async () => {
    const broker = await options.createBroker({ middleware: [] })
    const queueName = uniqueQueueName('tq_conf')
    const noop = actor('noop', () => undefined, { broker, queueName })
    await broker.close()
    await broker.close()
    const error = await rejection(noop.send())
    expect(error).toBeInstanceOf(BrokerClosedError)
    expect((error as BrokerClosedError).retryable).toBe(false)
    expect(() => broker.consume(queueName)).toThrow(BrokerClosedError)
  })

  it('counts ready, delayed and dead messages (queueCounts)', async () => {
    const { broker, queueName } = await setup()
    expect(typeof broker.queueCounts, 'a broker implements queueCounts()').toBe('function')
    const noop = actor('noop', () => undefined, { broker, queueName })
    for (let i = 0; i < 3; i++) await noop.send()
    await noop.sendWithOptions({ delay: 600_000 })
    const consumer = broker.consume(queueName, { prefetch: 1, timeout: t(2000) })
    const [first] = await consumer.receive()
    await consumer.nack(first as MessageProxy)
    await consumer.close()
    let last: unknown
    await waitFor(
      async () => {
        const counts = await broker.queueCounts?.(queueName)
        last = counts
        return counts?.ready === 2 && counts.delayed === 1 && counts.dead === 1
      },
      { timeout: t(10_000), message: 'counts of 2 ready, 1 delayed, 1 dead' },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; last counts: ${JSON.stringify(last)}`)
    })
  })

  it('does not consume a dead-letter queue', async () => {
    const { broker, queueName } = await setup()
    actor('noop', () => undefined, { broker, queueName })
    expect(() => broker.consume(xqName(queueName))).toThrow(InvalidArgumentError)
  })

  it('refuses to settle a message it did not deliver', async () => {
    const { broker, queueName } = await setup()
    actor('noop', () => undefined, { broker, queueName })
    const consumer = broker.consume(queueName, { prefetch: 1, timeout: t(100) })
    const foreign = new MessageProxy(new Message({ queueName, actorName: 'noop' }))
    try {
      expect(await rejection(consumer.ack(foreign))).toBeInstanceOf(InvalidArgumentError)
      expect(await rejection(consumer.nack(foreign))).toBeInstanceOf(InvalidArgumentError)
      expect(await rejection(consumer.requeue([foreign]))).toBeInstanceOf(InvalidArgumentError)
    } finally {
      await consumer.close()
    }
  })

  it('stop() lets in-flight messages finish and returns prefetched ones', async () => {
    const { broker, queueName, startWorker } = await setup()
    const { ledger, started, release, block } = blockingActor(broker, queueName)
    await block.send(0)
    const worker = await startWorker({ concurrency: 1, queuePrefetch: 4 })
    await started.promise
    for (let i = 1; i < 6; i++) await block.send(i)
    const stopping = worker.stop({ timeout: t(10_000) })
    release.resolve()
    await stopping
    expect(ledger.order).toEqual([0])
    // A new worker gets everything that was prefetched but not run.
    await startWorker({ concurrency: 2 })
    await ledger.waitForTotal(6, t(10_000))
    expect([...ledger.counts.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5])
    expect(ledger.duplicates).toEqual([])
  })

  it('stop() hands prefetched messages back before the in-flight ones finish', async () => {
    const { broker, queueName, startWorker } = await setup()
    const { ledger, started, release, block } = blockingActor(broker, queueName)
    await block.send(0)
    const first = await startWorker({ concurrency: 1, queuePrefetch: 4 })
    await started.promise
    for (let i = 1; i < 4; i++) await block.send(i)
    await waitFor(() => first.stats.queued === 3, { timeout: t(5000), message: 'three prefetched messages' })
    const stopping = first.stop({ timeout: t(20_000) })
    try {
      // Message 0 still runs: the three prefetched ones must already be back for another worker.
      await startWorker({ concurrency: 2 })
      await waitFor(() => ledger.counts.size === 3, { timeout: t(10_000), message: 'messages 1-3 run elsewhere' })
      expect([...ledger.counts.keys()].sort()).toEqual([1, 2, 3])
    } finally {
      release.resolve()
      await stopping
    }
    expect(ledger.counts.get(0)).toBe(1)
    expect(ledger.duplicates).toEqual([])
  })

  if (options.holdsDelayedMessages ?? true) {
    it('stop() returns held delayed messages to the delay queue', async () => {
      const { broker, queueName, startWorker } = await setup()
      const ledger = new Ledger<string>()
      const later = actor('later', (x: string) => ledger.record(x), { broker, queueName })
      await later.sendWithOptions({ args: ['x'], delay: 1500 })
      const first = await startWorker()
      await waitFor(() => first.stats.delayed === 1, { timeout: t(5000), message: 'the delayed message to be held' })
      await first.stop({ timeout: t(5000) })
      await startWorker()
      await ledger.waitForTotal(1, t(10_000))
      expect(ledger.order).toEqual(['x'])
    })
  } else {
    it('keeps a delayed message in the store until due: no worker holds it, a stopped one leaves it for the next', async () => {
      const { broker, queueName, startWorker } = await setup()
      const ledger = new Ledger<string>()
      const later = actor('later', (x: string) => ledger.record(x), { broker, queueName })
      const sent = await later.sendWithOptions({ args: ['x'], delay: 1500 })
      const first = await startWorker()
      // The worker has looked at the queue (its consumer is open) and holds nothing.
      await waitFor(async () => (await broker.queueCounts?.(queueName))?.delayed === 1, {
        timeout: t(5000),
        message: 'the message counted as delayed',
      })
      expect(first.stats.delayed).toBe(0)
      await first.stop({ timeout: t(5000) })
      expect(ledger.order).toEqual([])
      await startWorker()
      await ledger.waitForTotal(1, t(10_000))
      expect(ledger.order).toEqual(['x'])
      expect(Date.now()).toBeGreaterThanOrEqual(sent.options.eta as number)
    })
  }
}

/** An actor that records each `i` it runs, and holds message 0 until `release` resolves. */
function blockingActor(broker: Broker, queueName: string) {
  const ledger = new Ledger<number>()
  const started = deferred()
  const release = deferred()
  const block = actor(
    'block',
    async (i: number) => {
      if (i === 0) {
        started.resolve()
        await release.promise
      }
      ledger.record(i)
    },
    { broker, queueName },
  )
  return { ledger, started, release, block }
}
