/**
 * Fault injection on the real server: connections closed by the server mid-load, a worker
 * process killed with SIGKILL, queues deleted under consumers and publishers, stale acks,
 * failover. Only this file's connections are closed (found by their connection_name).
 */
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { ConnectionClosedError, Worker, actor, sleep } from '@tq/core'
import { Ledger, createCapturingLogger, uniqueQueueName, waitFor } from '@tq/core/testing'
import { RabbitmqBroker, type RabbitmqBrokerOptions, type RabbitmqMessageProxy } from '../src/index.ts'
import { AMQP_URL, RawAmqp, closeConnections, findConnections } from './helpers.ts'

const here = dirname(fileURLToPath(import.meta.url))
const prefix = uniqueQueueName('tq_rmq_faults')
const raw = new RawAmqp()
const brokers: RabbitmqBroker[] = []
const workers: Worker[] = []
const used = new Set<string>()

function queue(name: string): string {
  const q = `${prefix}_${name}`
  used.add(q)
  return q
}

function newBroker(name: string, options: RabbitmqBrokerOptions = {}): RabbitmqBroker {
  const broker = new RabbitmqBroker({
    ...(options.urls ? {} : { url: AMQP_URL }),
    middleware: [],
    connectionName: `${prefix}-${name}`,
    reconnectDelay: 20,
    ...options,
  })
  brokers.push(broker)
  return broker
}

async function startWorker(
  broker: RabbitmqBroker,
  options: ConstructorParameters<typeof Worker>[1] = {},
): Promise<Worker> {
  const worker = new Worker(broker, { workerTimeout: 100, ...options })
  workers.push(worker)
  await worker.start()
  return worker
}

const logged = (logger: ReturnType<typeof createCapturingLogger>, pattern: RegExp): boolean =>
  logger.entries.some((e) => pattern.test(e.msg))

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeout: 5000 })
  for (const b of brokers.splice(0)) await b.close()
})

afterAll(async () => {
  await raw.deleteTopology(...used)
  await raw.close()
})

describe('faults', () => {
  it('loses nothing when the server closes its connections while 1,000 messages flow', async () => {
    const q = queue('load')
    const logger = createCapturingLogger()
    const broker = newBroker('load', { logger: logger })
    const ledger = new Ledger<number>()
    const work = actor(
      'work',
      async (i: number) => {
        await sleep(10)
        ledger.record(i)
      },
      { broker, queueName: q },
    )
    await startWorker(broker, { concurrency: 8 })
    await work.send(-1)
    await ledger.waitForTotal(1, 5000)
    const pids = await findConnections(`${prefix}-load`)
    expect(pids).toHaveLength(2) // publish + consume

    const total = 1000
    let produced = 0
    const produce = async (upTo: number): Promise<void> => {
      for (; produced < upTo; produced += 20) {
        await broker.enqueueMany(Array.from({ length: 20 }, (_, j) => work.message(produced + j)))
        await sleep(20)
      }
    }
    // Publish 300, then close both connections while publishing goes on and workers work;
    // keep 200 to publish after the close is done, so messages flow on both sides of it.
    await produce(300)
    let closed = false
    const closing = closeConnections(pids).then(() => (closed = true))
    while (!closed && produced < total - 200) await produce(produced + 20)
    await closing
    const producedAtClose = produced
    const processedAtClose = ledger.total
    await produce(total)
    await waitFor(() => new Set(ledger.order).size === total + 1, {
      timeout: 30_000,
      message: 'every message processed',
    })
    await broker.join(q, { timeout: 10_000 })

    // The connections died mid-flow: with messages still to publish and to process.
    expect(producedAtClose).toBeLessThan(total)
    expect(processedAtClose).toBeLessThan(total)
    for (let i = 0; i < total; i++) expect(ledger.counts.get(i) ?? 0, `message ${i}`).toBeGreaterThanOrEqual(1)
    expect(logged(logger, /publish connection lost/)).toBe(true)
    expect(logged(logger, /consume connection lost/)).toBe(true)
    expect(logged(logger, /re-established/)).toBe(true)
    expect(await raw.messageCount(q)).toBe(0)
  })

  it('hands the unacked messages of a worker killed with SIGKILL to another worker', async () => {
    const q = queue('sigkill')
    const broker = newBroker('sigkill-parent')
    const ledger = new Ledger<number>()
    const redelivered = new Set<number>()
    const hold = actor('hold', (i: number) => ledger.record(i), { broker, queueName: q })
    broker.addMiddleware({
      beforeProcessMessage: (_b, proxy) => {
        if (proxy.redelivered) redelivered.add(proxy.args[0] as number)
      },
    })
    for (let i = 0; i < 10; i++) await hold.send(i)

    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--conditions=@tq/source',
        join(here, 'scripts/hold-worker.ts'),
        AMQP_URL,
        q,
        `${prefix}-sigkill-child`,
      ],
      { cwd: join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const started = new Set<number>()
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout.on('data', (chunk: Buffer) => {
      for (const match of chunk.toString().matchAll(/started (\d+)/g)) started.add(Number(match[1]))
    })
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
    try {
      await waitFor(() => started.size === 3, {
        timeout: 15_000,
        message: `the child to start 3 messages (stderr: ${stderr})`,
      })
    } finally {
      child.kill('SIGKILL')
    }
    expect(await exited).toBe('SIGKILL')

    await startWorker(broker, { concurrency: 4 })
    await ledger.waitForTotal(10, 10_000)
    await broker.join(q, { timeout: 5000 })
    expect([...ledger.counts.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    expect(ledger.duplicates).toEqual([])
    // What the dead worker had started came back marked as redelivered.
    for (const i of started) expect(redelivered.has(i), `message ${i}`).toBe(true)
  })

  it('declares a queue again when it is deleted under a consumer, and keeps consuming', async () => {
    const q = queue('deleted_consumer')
    const logger = createCapturingLogger()
    const broker = newBroker('deleted-consumer', { logger: logger })
    const ledger = new Ledger<string>()
    const rec = actor('rec', (x: string) => ledger.record(x), { broker, queueName: q })
    await startWorker(broker)
    await rec.send('before')
    await ledger.waitForTotal(1, 5000)
    await raw.deleteQueues(q)
    await waitFor(() => logged(logger, /cancelled the consumer/), { message: 'the consumer to be cancelled' })
    await waitFor(() => logged(logger, new RegExp(`Consuming ${q} again`)), { message: 'the consumer to resume' })
    await rec.send('after')
    await ledger.waitForTotal(2, 5000)
    expect(ledger.order).toEqual(['before', 'after'])
  })

  it('declares a queue again when it is deleted behind the publisher, and publishes to it', async () => {
    const q = queue('deleted_publisher')
    const logger = createCapturingLogger()
    const broker = newBroker('deleted-publisher', { logger: logger })
    const rec = actor('rec', (x: string) => x, { broker, queueName: q })
    await rec.send('lost with the queue')
    await raw.deleteTopology(q)
    const sent = await rec.send('kept')
    expect(logged(logger, /Publishing 1 message\(s\) failed; trying again/)).toBe(true)
    const messages = await raw.peek(q)
    expect(messages.map((m) => (JSON.parse(m.content.toString()) as { message_id: string }).message_id)).toEqual([
      sent.messageId,
    ])
  })

  it('treats an ack from a dead channel as a no-op and joins the redelivery to the message it holds', async () => {
    const q = queue('stale')
    const logger = createCapturingLogger()
    const broker = newBroker('stale', { logger: logger })
    const rec = actor('rec', () => undefined, { broker, queueName: q })
    await rec.send()
    const consumer = broker.consume(q, { prefetch: 4, timeout: 2000 })
    const [held] = (await consumer.receive()) as RabbitmqMessageProxy[]
    expect(held).toBeDefined()

    // The consuming connection dies while the "worker" holds the message.
    await closeConnections(await findConnections(`${prefix}-stale-consume`))
    await waitFor(() => logged(logger, /Re-bound a message the worker holds to its redelivery/), {
      timeout: 5000,
      message: 'the redelivery to be joined',
    })
    expect(held?.redelivered).toBe(true)
    expect(await consumer.receive({ signal: AbortSignal.timeout(200) })).toEqual([]) // not handed out twice
    await consumer.ack(held as RabbitmqMessageProxy) // acks the redelivery
    await broker.join(q, { timeout: 5000 })
    expect(await raw.messageCount(q)).toBe(0)

    // An ack after the consumer closed is a no-op; the server has the message back.
    await rec.send()
    const [late] = await consumer.receive()
    await consumer.close()
    await expect(consumer.ack(late as RabbitmqMessageProxy)).resolves.toBeUndefined()
    await waitFor(async () => (await raw.messageCount(q)) === 1, { message: 'the message back in its queue' })
  })

  it('fails over to the next URL when the first cannot be reached', async () => {
    const q = queue('failover')
    const broker = newBroker('failover', { urls: ['amqp://guest:guest@127.0.0.1:1', AMQP_URL] })
    const ledger = new Ledger<string>()
    const rec = actor('rec', (x: string) => ledger.record(x), { broker, queueName: q })
    await rec.send('via the second URL')
    await startWorker(broker)
    await ledger.waitForTotal(1, 5000)
    expect(new RabbitmqBroker({ url: `amqp://127.0.0.1:1;${AMQP_URL}`, middleware: [] }).urls).toHaveLength(2)
  })

  it('fails a publish with ConnectionClosedError once its attempts are spent, and consumers just wait', async () => {
    const q = queue('unreachable')
    const broker = newBroker('unreachable', {
      url: 'amqp://127.0.0.1:1',
      publishAttempts: 3,
      reconnectDelay: 5,
      maxReconnectDelay: 20,
    })
    const rec = actor('rec', () => undefined, { broker, queueName: q })
    const error = await rec.send().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect((error as ConnectionClosedError).retryable).toBe(true)
    expect((error as Error).message).toMatch(/after 3 attempts/)
    const consumer = broker.consume(q, { timeout: 100 })
    expect(await consumer.receive()).toEqual([])
    await consumer.close()
  })
})
