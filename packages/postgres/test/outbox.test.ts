import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { Message, Worker, actor } from '@tq/core'
import { Ledger, waitFor } from '@tq/core/testing'
import { RabbitmqBroker } from '@tq/rabbitmq'
import { RedisBroker } from '@tq/redis'
import { OutboxBroker, fromPg, type OutboxBrokerOptions } from '../src/index.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const REDIS_URL = process.env['TQ_REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379/7'
const AMQP_URL = process.env['TQ_RABBITMQ_TEST_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672'
const pool = testPool(6)
const raw = new Redis(REDIS_URL)
const schemas: string[] = []
const namespaces: string[] = []
const open: Array<{ close(): Promise<void> }> = []

afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
})

afterAll(async () => {
  for (const ns of namespaces) {
    const keys = await raw.keys(`${ns}:*`)
    if (keys.length > 0) await raw.del(...keys)
  }
  await raw.quit()
  for (const s of schemas) await dropSchema(pool, s)
  await pool.end()
})

function fresh(): { schema: string; namespace: string } {
  const schema = testSchema('tq_outbox')
  const namespace = `tq-outbox-${randomUUID().slice(0, 8)}`
  schemas.push(schema)
  namespaces.push(namespace)
  return { schema, namespace }
}

function redisOutbox(schema: string, namespace: string, options: Partial<OutboxBrokerOptions> = {}): OutboxBroker {
  const outbox = new OutboxBroker({
    pool,
    schema,
    middleware: [],
    target: new RedisBroker({ url: REDIS_URL, namespace, middleware: [] }),
    ...options,
  })
  open.push(outbox)
  return outbox
}

/** The message ids on a Redis queue, in the order the relay put them there. */
async function redisQueue(namespace: string, queue: string): Promise<string[]> {
  const ids = await raw.lrange(`${namespace}:${queue}`, 0, -1)
  if (ids.length === 0) return []
  const bodies = await raw.hmget(`${namespace}:${queue}.msgs`, ...ids)
  return bodies.map((b) => (JSON.parse(b ?? '{}') as { message_id: string }).message_id)
}

async function inTransaction(commit: boolean, fn: (tx: ReturnType<typeof fromPg>) => Promise<void>): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await fn(fromPg(client))
    await client.query(commit ? 'COMMIT' : 'ROLLBACK')
  } finally {
    client.release()
  }
}

describe('OutboxBroker', () => {
  it('forwards committed messages to the target in commit order, and nothing of 1 000 rolled-back sends', async () => {
    const { schema, namespace } = fresh()
    const outbox = redisOutbox(schema, namespace, { relay: false })
    const job = actor('job', (_i: number) => undefined, { broker: outbox, queueName: 'q' })
    // Before the first transactional send: preparing the table takes a connection of its own.
    await outbox.connect()
    const committed: string[] = []
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          inTransaction(false, async (tx) => {
            for (let k = 0; k < 5; k++) await job.sendWithOptions({ args: [round * 100 + i * 10 + k], transaction: tx })
          }),
        ),
      )
      // One committed transaction after each round, waited for: they are ordered.
      await inTransaction(true, async (tx) => {
        const sent = await job.sendWithOptions({ args: [round], transaction: tx })
        committed.push(sent.messageId)
      })
    }
    while ((await outbox.relayOnce()) === 'more');
    expect(await redisQueue(namespace, 'q')).toEqual(committed)
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${schema}.outbox`)
    expect(rows[0]).toEqual({ n: 0 })
  })

  it('relays what a worker consumes on the target, woken by NOTIFY; delays keep what is left of them', async () => {
    const { schema, namespace } = fresh()
    const outbox = redisOutbox(schema, namespace, { pollInterval: 30_000 })
    const ledger = new Ledger<string>()
    const job = actor('job', (x: string) => ledger.record(x), { broker: outbox, queueName: 'q' })
    await outbox.connect()
    const worker = new Worker(outbox, { workerTimeout: 100 })
    open.push({ close: () => worker.stop({ timeout: 5000 }) })
    await worker.start()
    const started = Date.now()
    await inTransaction(true, async (tx) => {
      await job.sendWithOptions({ args: ['now'], transaction: tx })
      await job.sendWithOptions({ args: ['later'], delay: 400, transaction: tx })
    })
    await ledger.waitForTotal(1, 5000)
    expect(ledger.order).toEqual(['now'])
    expect(Date.now() - started).toBeLessThan(2000)
    await ledger.waitForTotal(2, 5000)
    expect(Date.now() - started).toBeGreaterThanOrEqual(400)
    await outbox.join('q', { timeout: 5000 })
  })

  it('writes on the target the bytes its own enqueue writes (what a Python Dramatiq consumer reads)', async () => {
    const { schema, namespace } = fresh()
    const outbox = redisOutbox(schema, namespace, { relay: false })
    actor('job', () => undefined, { broker: outbox, queueName: 'q' })
    await outbox.connect()
    const message = new Message({ queueName: 'q', actorName: 'job', args: ['é ✓', { n: 1 }], kwargs: { k: true } })
    await inTransaction(true, async (tx) => {
      await outbox.enqueue(message, { transaction: tx })
    })
    await outbox.relayOnce()
    const [redisId] = await raw.lrange(`${namespace}:q`, 0, -1)
    const stored = (await raw.hgetBuffer(`${namespace}:q.msgs`, redisId ?? ''))?.toString('utf8') ?? ''
    // Dramatiq's wire form (non-ASCII escaped, its key order), plus the Redis broker's own id.
    expect(stored).toMatch(/^[\x20-\x7e]+$/)
    const wire = JSON.parse(stored) as { options: Record<string, unknown> }
    expect(Object.keys(wire)).toEqual(Object.keys(JSON.parse(Buffer.from(message.encode()).toString('utf8'))))
    expect(wire.options['redis_message_id']).toBe(redisId)
    delete wire.options['redis_message_id']
    expect(wire).toEqual(JSON.parse(Buffer.from(message.encode()).toString('utf8')))
  })

  it('forwards through RabbitMQ too', async () => {
    const { schema } = fresh()
    const queueName = `tq_outbox_${randomUUID().slice(0, 8)}`
    const target = new RabbitmqBroker({ url: AMQP_URL, middleware: [] })
    const outbox = new OutboxBroker({ pool, schema, middleware: [], target })
    open.push({
      close: async () => {
        await outbox.close()
      },
    })
    const ledger = new Ledger<number>()
    const job = actor('job', (i: number) => ledger.record(i), { broker: outbox, queueName })
    await outbox.connect()
    const worker = new Worker(outbox, { workerTimeout: 100 })
    await worker.start()
    try {
      await inTransaction(true, async (tx) => {
        await outbox.enqueueMany(
          Array.from({ length: 50 }, (_, i) => job.message(i)),
          { transaction: tx },
        )
      })
      await ledger.waitForTotal(50, 10_000)
      expect(ledger.duplicates).toEqual([])
    } finally {
      await worker.stop({ timeout: 5000 })
    }
  })

  it('two relays take turns: every message forwarded once', async () => {
    const { schema, namespace } = fresh()
    const a = redisOutbox(schema, namespace, { relay: true, batchSize: 20 })
    const b = redisOutbox(schema, namespace, { relay: true, batchSize: 20 })
    const ja = actor('job', () => undefined, { broker: a, queueName: 'q' })
    actor('job', () => undefined, { broker: b, queueName: 'q' })
    a.startRelay()
    b.startRelay()
    const sent: string[] = []
    for (let i = 0; i < 20; i++) {
      const batch = Array.from({ length: 25 }, () => ja.message())
      await a.enqueueMany(batch)
      sent.push(...batch.map((m) => m.messageId))
    }
    await waitFor(async () => (await redisQueue(namespace, 'q')).length >= sent.length, {
      timeout: 10_000,
      message: 'everything forwarded',
    })
    expect(await redisQueue(namespace, 'q')).toEqual(sent)
    // Sent without a delay, none went through the delay queue (a relay whose transaction began
    // before a row was inserted once read it as due a few ms later).
    expect(await raw.hlen(`${namespace}:q.DQ.msgs`)).toBe(0)
  })

  it('a relay killed mid-forward loses nothing and duplicates at most its batch', async () => {
    const { schema, namespace } = fresh()
    const outbox = redisOutbox(schema, namespace, { relay: false, batchSize: 100 })
    const job = actor('job', () => undefined, { broker: outbox, queueName: 'q' })
    await outbox.migrate()
    const sent = Array.from({ length: 1000 }, () => job.message())
    await outbox.enqueueMany(sent)
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--conditions=@tq/source',
        fileURLToPath(new URL('./support/outbox-relay-child.ts', import.meta.url)),
      ],
      {
        env: {
          ...process.env,
          CHILD_PG_URL: PG_URL,
          CHILD_SCHEMA: schema,
          CHILD_REDIS_URL: REDIS_URL,
          CHILD_NAMESPACE: namespace,
          CHILD_QUEUE: 'q',
          CHILD_BATCH: '100',
          CHILD_HOLD_MS: '150',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    const exited = new Promise((resolve) => child.on('exit', resolve))
    let forwarded = 0
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        forwarded += chunk.split('forwarding').length - 1
        // Killed while its third batch is sent and not yet deleted.
        if (forwarded >= 3) resolve()
      })
    })
    child.kill('SIGKILL')
    await exited
    while ((await outbox.relayOnce()) !== 'idle');
    const onTarget = await redisQueue(namespace, 'q')
    const counts = new Map<string, number>()
    for (const id of onTarget) counts.set(id, (counts.get(id) ?? 0) + 1)
    expect(sent.filter((m) => !counts.has(m.messageId))).toEqual([])
    const duplicates = [...counts.values()].filter((n) => n > 1).length
    expect(duplicates).toBeGreaterThan(0)
    expect(duplicates).toBeLessThanOrEqual(100)
    // The order holds for the first copy of each message.
    const firstSeen = onTarget.filter((id, i) => onTarget.indexOf(id) === i)
    expect(firstSeen).toEqual(sent.map((m) => m.messageId))
  })

  it('sets undecodable rows aside instead of forwarding them, and keeps going', async () => {
    const { schema, namespace } = fresh()
    const outbox = redisOutbox(schema, namespace, { relay: false })
    const job = actor('job', () => undefined, { broker: outbox, queueName: 'q' })
    await outbox.migrate()
    await pool.query(`INSERT INTO ${schema}.outbox (queue, body) VALUES ('q', '\\x7b7b')`)
    const good = await job.send()
    await outbox.relayOnce()
    expect(await redisQueue(namespace, 'q')).toEqual([good.messageId])
    const { rows } = await pool.query<{ reason: string }>(`SELECT reason FROM ${schema}.outbox_rejected`)
    expect(rows).toHaveLength(1)
    expect(rows[0]?.reason).toBeTruthy()
  })
})
