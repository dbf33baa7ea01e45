/**
 * The fix for Dramatiq #827: a delayed message never stays unacknowledged longer than
 * `delayLease` (RabbitMQ 3.10 has no per-queue `x-consumer-timeout`, so the lease logic is
 * tested directly with a short lease).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { InvalidArgumentError, Worker, actor, dqName, type LogEntry } from '@tq/core'
import { Ledger, createCapturingLogger, uniqueQueueName, waitFor } from '@tq/core/testing'
import { RabbitmqBroker, type RabbitmqBrokerOptions } from '../src/index.ts'
import { AMQP_URL, RawAmqp } from './helpers.ts'

const prefix = uniqueQueueName('tq_rmq_lease')
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

async function startWorker(broker: RabbitmqBroker): Promise<Worker> {
  const worker = new Worker(broker, { workerTimeout: 100 })
  workers.push(worker)
  await worker.start()
  return worker
}

const renewals = (entries: LogEntry[]): LogEntry[] => entries.filter((e) => /Renewed the lease/.test(e.msg))

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeout: 5000 })
  for (const b of brokers.splice(0)) await b.close()
})

afterAll(async () => {
  await raw.deleteTopology(...used)
  await raw.close()
})

describe('delay leases (consumer_timeout, Dramatiq #827)', () => {
  it('re-publishes a long-delayed message every lease, hands it over within the lease of its eta, and runs it once on time', async () => {
    const lease = 150
    const q = queue('single')
    const logger = createCapturingLogger()
    const broker = newBroker({ delayLease: lease, logger: logger })
    const ran = new Ledger<string>()
    const runAt = new Map<string, number>()
    const handedAt = new Map<string, number>()
    const rec = actor(
      'rec',
      (name: string) => {
        runAt.set(name, Date.now())
        ran.record(name)
      },
      { broker, queueName: q },
    )
    broker.addMiddleware({ beforeDelayMessage: (_b, proxy) => void handedAt.set(proxy.args[0] as string, Date.now()) })
    await startWorker(broker)
    const long = await rec.sendWithOptions({ args: ['long'], delay: 1200 })
    const short = await rec.sendWithOptions({ args: ['short'], delay: 100 })
    await ran.waitForTotal(2, 5000)
    await broker.join(q, { timeout: 5000 })

    expect(ran.order).toEqual(['short', 'long'])
    expect(ran.duplicates).toEqual([])
    expect(runAt.get('long')).toBeGreaterThanOrEqual(long.options.eta as number)
    expect(runAt.get('short')).toBeGreaterThanOrEqual(short.options.eta as number)
    // The worker only received it once its eta was within one lease.
    expect((long.options.eta as number) - (handedAt.get('long') as number)).toBeLessThanOrEqual(lease)
    // Renewed several times, never held much past the lease; the short one never.
    const renewed = renewals(logger.entries)
    expect(renewed.length).toBeGreaterThanOrEqual(3)
    for (const entry of renewed) {
      expect(entry.meta['messageId']).toBe(long.messageId)
      expect(entry.meta['heldFor'] as number).toBeLessThan(lease + 500) // vs 1200 ms without the lease
      expect(entry.meta['eta']).toBe(long.options.eta)
    }
    expect(await raw.messageCount(dqName(q))).toBe(0)
  })

  it('runs each long-delayed message exactly once with two workers sharing the delay queue', async () => {
    const q = queue('shared')
    const logger = createCapturingLogger()
    const broker = newBroker({ delayLease: 100, logger: logger })
    const ran = new Ledger<number>()
    const early: number[] = []
    const rec = actor(
      'rec',
      (i: number, eta: number) => {
        if (Date.now() < eta) early.push(i)
        ran.record(i)
      },
      { broker, queueName: q },
    )
    await startWorker(broker)
    await startWorker(broker)
    for (let i = 0; i < 8; i++) {
      const delay = 350 + i * 50
      await rec.sendWithOptions({ args: [i, Date.now() + delay], delay })
    }
    await ran.waitForTotal(8, 5000)
    await broker.join(q, { timeout: 5000 })
    expect([...ran.counts.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(ran.duplicates).toEqual([])
    expect(early).toEqual([])
    expect(renewals(logger.entries).length).toBeGreaterThanOrEqual(4)
  })

  it('keeps the message priority when it renews a lease', async () => {
    const q = queue('priority')
    const logger = createCapturingLogger()
    const broker = newBroker({ delayLease: 100, maxPriority: 10, logger: logger })
    const rec = actor('rec', () => undefined, { broker, queueName: q })
    const consumer = broker.consume(dqName(q), { prefetch: 10, timeout: 100 })
    await rec.sendWithOptions({ args: [], delay: 60_000, brokerPriority: 7 })
    expect(await consumer.receive()).toEqual([]) // held, not handed over
    await waitFor(() => renewals(logger.entries).length >= 1, { timeout: 3000, message: 'a renewal' })
    await consumer.close()
    const [message] = await raw.peek(dqName(q))
    expect(message?.properties.priority).toBe(7)
    expect(message?.properties.deliveryMode).toBe(2)
  })

  it('can be turned off (Dramatiq behaviour) and rejects a lease that is not positive', async () => {
    const q = queue('off')
    const broker = newBroker({ delayLease: Infinity })
    const rec = actor('rec', () => undefined, { broker, queueName: q })
    const worker = await startWorker(broker)
    await rec.sendWithOptions({ args: [], delay: 60_000 })
    await waitFor(() => worker.stats.delayed === 1, { message: 'the worker to hold the message' })
    expect(() => newBroker({ delayLease: 0 })).toThrow(InvalidArgumentError)
  })
})
