// At-least-once under faults: a worker process killed with SIGKILL, connections killed while
// messages flow, and a worker busy for longer than the heartbeat timeout.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Worker, actor } from '@tq/core'
import { Ledger, deferred, uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { RedisBroker, type RedisBrokerOptions } from '../src/index.ts'
import { REDIS_URL, brokerConnectionIds, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const namespace = uniqueNamespace('faults')
const raw = rawClient()
const open: Array<{ broker: RedisBroker; workers: Worker[] }> = []

function makeBroker(options: RedisBrokerOptions = {}): {
  broker: RedisBroker
  startWorker: (o?: ConstructorParameters<typeof Worker>[1]) => Promise<Worker>
} {
  const broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [], ...options })
  const entry = { broker, workers: [] as Worker[] }
  open.push(entry)
  return {
    broker,
    async startWorker(o = {}) {
      const worker = new Worker(broker, { workerTimeout: 100, ackRetryDelay: 20, ...o })
      entry.workers.push(worker)
      await worker.start()
      return worker
    },
  }
}

afterEach(async () => {
  for (const { broker, workers } of open.splice(0)) {
    for (const w of workers) await w.stop({ timeout: 5000 })
    await broker.close()
  }
})

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await raw.quit()
})

describe('RedisBroker under faults', () => {
  it('redelivers what a SIGKILLed worker process held once its heartbeat is stale', async () => {
    const queueName = uniqueQueueName('dead')
    const { broker: producer } = makeBroker()
    const job = actor('job', (_i: number) => undefined, { broker: producer, queueName })
    await producer.enqueueMany(Array.from({ length: 30 }, (_, i) => job.message(i)))

    const script = fileURLToPath(new URL('./support/held-worker.ts', import.meta.url))
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=@tq/source', script, REDIS_URL, namespace, queueName, '10'],
      {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve)
      child.once('exit', (code) => reject(new Error(`worker process exited early (${code})`)))
    })
    const [, held, deadId] = line.split(' ')
    expect(held).toBe('10')
    expect(await raw.scard(`${namespace}:__acks__.${deadId}.${queueName}`)).toBe(10)
    child.kill('SIGKILL')
    expect(await exited).toBe('SIGKILL')

    const { broker, startWorker } = makeBroker({ heartbeatTimeout: 1000, maintenanceChance: 1_000_000 })
    const ledger = new Ledger<number>()
    actor('job', (i: number) => ledger.record(i), { broker, queueName })
    const killedAt = Date.now()
    await startWorker({ concurrency: 4 })
    await ledger.waitForTotal(30, 10_000)
    // The 10 held messages came back only after the dead worker's heartbeat went stale.
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(900)
    expect([...ledger.counts.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i))
    expect(ledger.duplicates).toEqual([])
    await broker.join(queueName, { timeout: 5000 })
    expect(await raw.exists(`${namespace}:__acks__.${deadId}.${queueName}`)).toBe(0)
  }, 30_000)

  it('loses nothing when its connections are killed while messages flow', async () => {
    const queueName = uniqueQueueName('kill')
    const { broker, startWorker } = makeBroker()
    const ledger = new Ledger<number>()
    const job = actor(
      'job',
      async (i: number) => {
        await new Promise((r) => setImmediate(r))
        ledger.record(i)
      },
      { broker, queueName },
    )
    await startWorker({ concurrency: 16 })
    const total = 3000
    let kills = 0
    for (let batch = 0; batch < 10; batch++) {
      await broker.enqueueMany(Array.from({ length: total / 10 }, (_, i) => job.message(batch * (total / 10) + i)))
      if (batch % 3 === 1) {
        // Let work get going, then cut every connection of this broker (and only this broker).
        await waitFor(() => ledger.total > batch * (total / 10) - 50, { timeout: 5000, interval: 1 })
        for (const id of await brokerConnectionIds(raw, broker.brokerId)) {
          await raw.client('KILL', 'ID', id)
          kills++
        }
      }
    }
    expect(kills).toBeGreaterThanOrEqual(3)
    await ledger.waitForTotal(total, 20_000)
    await broker.join(queueName, { timeout: 10_000 })
    const missing = Array.from({ length: total }, (_, i) => i).filter((i) => !ledger.counts.has(i))
    expect(missing).toEqual([])
    // The worker carried on over the reconnects: the broker's connections are back.
    expect((await brokerConnectionIds(raw, broker.brokerId)).length).toBeGreaterThanOrEqual(1)
  }, 40_000)

  it('keeps heart-beating while every slot is busy, so nobody steals its messages (Dramatiq #692)', async () => {
    const queueName = uniqueQueueName('busy')
    // Busy worker: one slot, prefetch 1, an actor that runs 3× the heartbeat timeout, and idle
    // consumers that fetch only every 5 s: only the heartbeat timer can keep it alive.
    const busy = makeBroker({ heartbeatTimeout: 300, pollInterval: 5000 })
    const started = deferred()
    const release = deferred()
    let runs = 0
    const job = actor(
      'job',
      async () => {
        runs++
        started.resolve()
        await release.promise
      },
      { broker: busy.broker, queueName },
    )
    await job.send()
    await busy.startWorker({ concurrency: 1, queuePrefetch: 1, workerTimeout: 5000 })
    await started.promise

    // A second worker runs maintenance on every fetch with the same timeout.
    const other = makeBroker({ heartbeatTimeout: 300, maintenanceChance: 1_000_000, pollInterval: 20 })
    actor('job', () => void runs++, { broker: other.broker, queueName })
    await other.startWorker()
    const scores: number[] = []
    const until = Date.now() + 900
    while (Date.now() < until) {
      scores.push(Date.now() - Number(await raw.zscore(`${namespace}:__heartbeats__`, busy.broker.brokerId)))
      await new Promise((r) => setTimeout(r, 30))
    }
    release.resolve()
    await busy.broker.join(queueName, { timeout: 5000 })
    expect(Math.max(...scores)).toBeLessThan(300)
    expect(runs).toBe(1)
  })
})
