/** A process killed right after its commit: the messages it committed are still delivered. */
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { Worker, actor, type Broker } from '@tq/core'
import { Ledger } from '@tq/core/testing'
import { RedisBroker } from '@tq/redis'
import { OutboxBroker, PostgresBroker } from '../src/index.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const REDIS_URL = process.env['TQ_REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379/7'
const CHILD = fileURLToPath(new URL('./support/commit-then-die.ts', import.meta.url))
const pool = testPool(3)
const raw = new Redis(REDIS_URL)
const schemas: string[] = []
const namespaces: string[] = []

afterAll(async () => {
  for (const ns of namespaces) {
    const keys = await raw.keys(`${ns}:*`)
    if (keys.length > 0) await raw.del(...keys)
  }
  await raw.quit()
  for (const s of schemas) await dropSchema(pool, s)
  await pool.end()
})

/** Run the child to its SIGKILL; resolves with what it printed. */
function commitThenDie(env: Record<string, string>): Promise<{ out: string; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', CHILD], {
    env: { ...process.env, CHILD_PG_URL: PG_URL, CHILD_REDIS_URL: REDIS_URL, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  return new Promise((resolve) => child.on('exit', (_code, signal) => resolve({ out, signal })))
}

async function runAll(broker: Broker, count: number): Promise<Ledger<number>> {
  const ledger = new Ledger<number>()
  actor('job', (i: number) => ledger.record(i), { broker, queueName: 'q' })
  const worker = new Worker(broker, { workerTimeout: 100 })
  await worker.start()
  try {
    await ledger.waitForTotal(count, 15_000)
    await broker.join('q', { timeout: 10_000 })
  } finally {
    await worker.stop({ timeout: 5000 })
    await broker.close()
  }
  return ledger
}

describe('a process killed right after its commit', () => {
  it('PostgresBroker: every committed message is delivered', async () => {
    const schema = testSchema('tq_die')
    schemas.push(schema)
    const { out, signal } = await commitThenDie({ CHILD_KIND: 'postgres', CHILD_SCHEMA: schema, CHILD_COUNT: '200' })
    expect(signal).toBe('SIGKILL')
    expect(out).toContain('committed')
    const ledger = await runAll(new PostgresBroker({ connectionString: PG_URL, schema, middleware: [] }), 200)
    expect(ledger.counts.size).toBe(200)
    expect(ledger.duplicates).toEqual([])
  })

  it('OutboxBroker: the relay of another process forwards what it committed', async () => {
    const schema = testSchema('tq_die_outbox')
    const namespace = `tq-die-${randomUUID().slice(0, 8)}`
    schemas.push(schema)
    namespaces.push(namespace)
    const { out, signal } = await commitThenDie({
      CHILD_KIND: 'outbox',
      CHILD_SCHEMA: schema,
      CHILD_NAMESPACE: namespace,
      CHILD_COUNT: '200',
    })
    expect(signal).toBe('SIGKILL')
    expect(out).toContain('committed')
    const target = new RedisBroker({ url: REDIS_URL, namespace, middleware: [] })
    const ledger = await runAll(new OutboxBroker({ connectionString: PG_URL, schema, middleware: [], target }), 200)
    expect(ledger.counts.size).toBe(200)
    expect(ledger.duplicates).toEqual([])
  })
})
