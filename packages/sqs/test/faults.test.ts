import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker, actor } from '@tq/core'
import { Ledger, uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, expect, it } from 'vitest'
import {
  SQS_ENDPOINT,
  SQS_EXTERNAL,
  SQS_REGION,
  TIME_SCALE,
  deleteQueues,
  newBroker,
  rawClient,
  uniquePrefix,
} from './helpers.ts'

const here = dirname(fileURLToPath(import.meta.url))
const raw = rawClient()
afterAll(() => raw.destroy())

it('a message held by a worker killed with SIGKILL is delivered to another after its visibility timeout', async () => {
  const prefix = uniquePrefix('kill')
  const queueName = uniqueQueueName('k')
  const visibilityTimeout = 2
  const broker = newBroker({ queuePrefix: prefix, visibilityTimeout })
  const ledger = new Ledger<number>()
  const redelivered = new Map<number, boolean>()
  const hold = actor('hold', (i: number) => ledger.record(i), { broker, queueName })
  broker.addMiddleware({
    beforeProcessMessage: (_b, m) => void redelivered.set(m.args[0] as number, m.redelivered),
  })
  let worker: Worker | undefined
  try {
    for (let i = 0; i < 6; i++) await hold.send(i)

    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--conditions=@tq/source',
        join(here, 'scripts/hold-worker.ts'),
        SQS_ENDPOINT,
        SQS_REGION,
        String(SQS_EXTERNAL),
        prefix,
        queueName,
        String(visibilityTimeout),
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
      // The child holds 3 messages past their 2 s visibility timeout: it extends them while alive.
      await waitFor(() => started.size === 3, {
        timeout: 15_000,
        message: `the child to start 3 messages (stderr: ${stderr})`,
      })
      const extendedUntil = Date.now() + visibilityTimeout * 1500
      await waitFor(() => Date.now() >= extendedUntil, { timeout: 10_000, interval: 50 })
      const counts = await broker.messageCounts(queueName)
      expect(counts.notVisible).toBe(3)
    } finally {
      child.kill('SIGKILL')
    }
    expect(await exited).toBe('SIGKILL')

    worker = new Worker(broker, { concurrency: 4, workerTimeout: 100 })
    await worker.start()
    await ledger.waitForTotal(6, 15_000 * TIME_SCALE)
    await broker.join(queueName, { timeout: 5000 * TIME_SCALE })
    expect([...ledger.counts.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5])
    expect(ledger.duplicates).toEqual([])
    // What the dead worker held came back (as a redelivery) once its visibility timeout passed.
    // They were still invisible when the new worker started, so the other three ran first.
    for (const i of started) {
      expect(redelivered.get(i), `message ${i}`).toBe(true)
      expect(ledger.order.indexOf(i), `position of message ${i}`).toBeGreaterThanOrEqual(3)
    }
    for (const i of [0, 1, 2, 3, 4, 5].filter((n) => !started.has(n))) expect(redelivered.get(i)).toBe(false)
  } finally {
    await worker?.stop({ timeout: 5000 })
    await broker.close()
    await deleteQueues(raw, broker)
  }
}, 40_000)
