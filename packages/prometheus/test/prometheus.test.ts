import {
  AgeLimit,
  Broker,
  ConfigurationError,
  Retries,
  StubBroker,
  Worker,
  actor,
  defaultMiddleware,
  type Consumer,
  type Message,
} from '@tq/core'
import { Counter, Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { DURATION_BUCKETS, Prometheus, queueSizeReader } from '../src/index.ts'

const workers: Worker[] = []
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop({ timeout: 1000 })))
})

async function setup(options: { retries?: Retries; prefix?: string; start?: boolean } = {}) {
  const registry = new Registry()
  const prometheus = new Prometheus({ registry, ...(options.prefix ? { prefix: options.prefix } : {}) })
  const stack = defaultMiddleware().filter((m) => !(m instanceof Retries))
  const broker = new StubBroker({
    middleware: [...stack, options.retries ?? new Retries({ minBackoff: 1, maxBackoff: 5 }), prometheus],
  })
  const worker = new Worker(broker, { workerTimeout: 20 })
  workers.push(worker)
  if (options.start !== false) await worker.start()
  return { registry, prometheus, broker, worker }
}

/** The value of `name` with exactly these labels (0 when the series does not exist). */
async function value(registry: Registry, name: string, labels: Record<string, string | number> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name)
  if (!metric) throw new Error(`no metric ${name}`)
  const { values } = await metric.get()
  const match = values.find(
    (v) =>
      Object.keys(labels).length === Object.keys(v.labels).length &&
      Object.entries(labels).every(([k, l]) => String(v.labels[k]) === String(l)),
  )
  return match?.value ?? 0
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

const Q = { queue_name: 'jobs', actor_name: 'work' }

describe('Prometheus', () => {
  it("exports Dramatiq's metric names, types, labels and duration buckets", async () => {
    const { registry } = await setup({ start: false })
    const metrics = await registry.getMetricsAsJSON()
    const byName = Object.fromEntries(metrics.map((m) => [m.name, m.type]))
    expect(byName).toMatchObject({
      dramatiq_messages_total: 'counter',
      dramatiq_message_errors_total: 'counter',
      dramatiq_message_retries_total: 'counter',
      dramatiq_message_rejects_total: 'counter',
      dramatiq_messages_inprogress: 'gauge',
      dramatiq_delayed_messages_inprogress: 'gauge',
      dramatiq_message_duration_milliseconds: 'histogram',
    })
    const histogram = registry.getSingleMetric('dramatiq_message_duration_milliseconds') as unknown as {
      upperBounds: number[]
      labelNames: string[]
    }
    expect(histogram.upperBounds).toEqual(DURATION_BUCKETS) // prom-client adds +Inf itself
    expect(DURATION_BUCKETS).toEqual([
      5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, 30000, 60000, 600000, 900000,
    ])
    expect(histogram.labelNames).toEqual(['queue_name', 'actor_name'])
  })

  it('counts processed messages and observes their duration, labelled by queue and actor', async () => {
    const { registry, broker } = await setup()
    const work = actor('work', async (ms: number) => new Promise((r) => setTimeout(r, ms)), {
      broker,
      queueName: 'jobs',
    })
    const other = actor('other', () => 1, { broker })
    for (let i = 0; i < 3; i++) await work.send(30)
    await other.send()
    await broker.join('jobs')
    await broker.join('default')

    expect(await value(registry, 'dramatiq_messages_total', Q)).toBe(3)
    expect(await value(registry, 'dramatiq_messages_total', { queue_name: 'default', actor_name: 'other' })).toBe(1)
    expect(await value(registry, 'dramatiq_message_errors_total', Q)).toBe(0)
    expect(await value(registry, 'dramatiq_messages_inprogress', Q)).toBe(0)
    const duration = 'dramatiq_message_duration_milliseconds'
    expect(await value(registry, duration, { ...Q, le: '+Inf' })).toBe(3)
    // Each run slept 30 ms: none fits the 25 ms bucket, all fit the 75 ms one.
    expect(await value(registry, duration, { ...Q, le: 25 })).toBe(0)
    expect(await value(registry, duration, { ...Q, le: 75 })).toBe(3)
    const text = await registry.metrics()
    expect(text).toMatch(/^dramatiq_message_duration_milliseconds_count\{queue_name="jobs",actor_name="work"\} 3$/m)
    const sum = Number(
      /^dramatiq_message_duration_milliseconds_sum\{queue_name="jobs",actor_name="work"\} (\S+)$/m.exec(text)?.[1],
    )
    expect(sum).toBeGreaterThanOrEqual(3 * 29)
  })

  it('shows a running message in dramatiq_messages_inprogress', async () => {
    const { registry, broker } = await setup()
    const started = deferred()
    const release = deferred()
    const work = actor(
      'work',
      async () => {
        started.resolve()
        await release.promise
      },
      { broker, queueName: 'jobs' },
    )
    await work.send()
    await started.promise
    expect(await value(registry, 'dramatiq_messages_inprogress', Q)).toBe(1)
    release.resolve()
    await broker.join('jobs')
    expect(await value(registry, 'dramatiq_messages_inprogress', Q)).toBe(0)
    expect(await value(registry, 'dramatiq_messages_total', Q)).toBe(1)
  })

  it('counts errors, each retry once (not again when it leaves the delay queue) and the final reject', async () => {
    const { registry, broker } = await setup()
    const work = actor(
      'work',
      () => {
        throw new Error('boom')
      },
      { broker, queueName: 'jobs', maxRetries: 2 },
    )
    await work.send()
    await broker.join('jobs', { failFast: false })
    expect(await value(registry, 'dramatiq_messages_total', Q)).toBe(3)
    expect(await value(registry, 'dramatiq_message_errors_total', Q)).toBe(3)
    expect(await value(registry, 'dramatiq_message_retries_total', Q)).toBe(2)
    expect(await value(registry, 'dramatiq_message_rejects_total', Q)).toBe(1)
    expect(await value(registry, 'dramatiq_delayed_messages_inprogress', Q)).toBe(0)
    expect(broker.deadLetters).toHaveLength(1)
  })

  it('holds a delayed message in dramatiq_delayed_messages_inprogress until it leaves for its queue', async () => {
    const { registry, broker } = await setup()
    const ran = deferred()
    const work = actor('work', () => ran.resolve(), { broker, queueName: 'jobs' })
    const held = deferred()
    broker.addMiddleware({ beforeDelayMessage: () => held.resolve() })
    await work.sendWithOptions({ args: [], delay: 150 })
    await held.promise
    expect(await value(registry, 'dramatiq_delayed_messages_inprogress', Q)).toBe(1)
    await ran.promise
    await broker.join('jobs')
    expect(await value(registry, 'dramatiq_delayed_messages_inprogress', Q)).toBe(0)
    expect(await value(registry, 'dramatiq_messages_total', Q)).toBe(1)
    expect(await value(registry, 'dramatiq_message_retries_total', Q)).toBe(0)
  })

  it('drops delayed messages still held when the worker stops', async () => {
    const { registry, broker, worker } = await setup()
    const work = actor('work', () => {}, { broker, queueName: 'jobs' })
    const held = deferred()
    broker.addMiddleware({ beforeDelayMessage: () => held.resolve() })
    await work.sendWithOptions({ args: [], delay: 60_000 })
    await held.promise
    expect(await value(registry, 'dramatiq_delayed_messages_inprogress', Q)).toBe(1)
    await worker.stop({ timeout: 1000 })
    expect(await value(registry, 'dramatiq_delayed_messages_inprogress', Q)).toBe(0)
  })

  it('counts a skipped message as processed without an error (Dramatiq does the same)', async () => {
    const registry = new Registry()
    const broker = new StubBroker({ middleware: [new AgeLimit(), new Prometheus({ registry })] })
    const work = actor('work', () => {}, { broker, queueName: 'jobs', maxAge: 1 })
    const message = work.messageWithOptions({ args: [] })
    const old = message.copy({ messageTimestamp: Date.now() - 60_000 })
    await broker.enqueue(old)
    const worker = new Worker(broker, { workerTimeout: 20 })
    workers.push(worker)
    await worker.start()
    await broker.join('jobs', { failFast: false })
    expect(await value(registry, 'dramatiq_messages_total', Q)).toBe(1)
    expect(await value(registry, 'dramatiq_message_errors_total', Q)).toBe(0)
    expect(await value(registry, 'dramatiq_message_rejects_total', Q)).toBe(1)
    expect(await value(registry, 'dramatiq_messages_inprogress', Q)).toBe(0)
  })

  it('reports the messages waiting in each declared queue (StubBroker)', async () => {
    const { registry, broker } = await setup({ start: false })
    const work = actor('work', () => {}, { broker, queueName: 'jobs' })
    actor('idle', () => {}, { broker, queueName: 'idle' })
    for (let i = 0; i < 3; i++) await work.send()
    await work.sendWithOptions({ args: [], delay: 60_000 })
    expect(await value(registry, 'dramatiq_queue_size', { queue_name: 'jobs' })).toBe(4)
    expect(await value(registry, 'dramatiq_queue_size', { queue_name: 'idle' })).toBe(0)
    expect(await registry.metrics()).toMatch(/^dramatiq_queue_size\{queue_name="jobs"\} 4$/m)
    await broker.flush('jobs')
    expect(await value(registry, 'dramatiq_queue_size', { queue_name: 'jobs' })).toBe(0)
  })

  it('uses the prefix for every metric', async () => {
    const { registry, broker } = await setup({ prefix: 'tq_' })
    const work = actor('work', () => {}, { broker, queueName: 'jobs' })
    await work.send()
    await broker.join('jobs')
    expect(await value(registry, 'tq_messages_total', Q)).toBe(1)
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name)
    expect(names.every((n) => n.startsWith('tq_'))).toBe(true)
  })

  it('shares the metrics of a registry between two middleware, and refuses a name taken by another type', () => {
    const registry = new Registry()
    const a = new Prometheus({ registry })
    expect(() => new Prometheus({ registry })).not.toThrow()
    expect(a.registry).toBe(registry)
    const taken = new Registry()
    new Counter({ name: 'dramatiq_messages_inprogress', help: 'x', registers: [taken] })
    expect(() => new Prometheus({ registry: taken })).toThrow(ConfigurationError)
  })

  it('gives its metrics as JSON for the CLI to merge', async () => {
    const { prometheus, broker } = await setup()
    const work = actor('work', () => {}, { broker, queueName: 'jobs' })
    await work.send()
    await broker.join('jobs')
    const json = await prometheus.getMetricsAsJSON()
    const total = json.find((m) => m.name === 'dramatiq_messages_total')
    expect(total?.values).toEqual([{ value: 1, labels: Q }])
    expect(await prometheus.metrics()).toContain('dramatiq_messages_total{queue_name="jobs",actor_name="work"} 1')
  })
})

describe('queueSizeReader', () => {
  class Bare extends Broker {
    override enqueue(message: Message): Promise<Message> {
      return Promise.resolve(message)
    }
    override consume(): Consumer {
      throw new Error('not used')
    }
    override flush(): Promise<void> {
      return Promise.resolve()
    }
    override flushAll(): Promise<void> {
      return Promise.resolve()
    }
    override join(): Promise<void> {
      return Promise.resolve()
    }
    override close(): Promise<void> {
      return Promise.resolve()
    }
  }

  it('reads ready + delayed from queueCounts(), else a legacy getQueueSize(); none means no gauge', async () => {
    const counting = Object.assign(new Bare({ middleware: [] }), {
      queueCounts: (q: string) => Promise.resolve({ ready: q === 'a' ? 2 : 0, delayed: 3, running: 4, dead: 100 }),
      getQueueSize: () => 99,
    })
    expect(await queueSizeReader(counting)?.('a')).toBe(5)
    const legacy = Object.assign(new Bare({ middleware: [] }), { getQueueSize: (q: string) => (q === 'a' ? 7 : 0) })
    expect(await queueSizeReader(legacy)?.('a')).toBe(7)
    const stub = new StubBroker({ middleware: [] })
    const job = actor('job', () => undefined, { broker: stub, queueName: 'a' })
    await job.send()
    await job.sendWithOptions({ delay: 60_000 })
    expect(await queueSizeReader(stub)?.('a')).toBe(2)
    expect(queueSizeReader(new Bare({ middleware: [] }))).toBeUndefined()
    const broken = Object.assign(new Bare({ middleware: [] }), { getQueueSize: () => 'many' })
    await expect(queueSizeReader(broken)?.('a')).rejects.toThrow('getQueueSize returned many')
  })

  it('takes the largest report across processes for a shared broker, and skips a queue whose size fails', async () => {
    const registry = new Registry()
    let fail = false
    const broker = Object.assign(new Bare({ middleware: [new Prometheus({ registry })] }), {
      getQueueSize: (q: string) => {
        if (fail) throw new Error('server down')
        return q.length
      },
    })
    actor('a', () => {}, { broker, queueName: 'abc' })
    const json = await registry.getMetricsAsJSON()
    expect(json.find((m) => m.name === 'dramatiq_queue_size')).toMatchObject({
      aggregator: 'max',
      values: [{ value: 3, labels: { queue_name: 'abc' } }],
    })
    fail = true
    expect(await value(registry, 'dramatiq_queue_size', { queue_name: 'abc' })).toBe(0)
  })
})
