import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { ConfigurationError, InvalidArgumentError, Message, Worker, actor } from '@tq/core'
import { Ledger, createCapturingLogger, deferred, waitFor } from '@tq/core/testing'
import {
  PostgresBroker,
  PostgresMessageProxy,
  SchemaVersionError,
  brokerSchema,
  migrateDatabase,
  migrationSql,
  type PostgresBrokerOptions,
} from '../src/index.ts'
import { plainSqlFile } from '../src/migrate-database.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const pool = testPool(4)
const schemas: string[] = []
const brokers: PostgresBroker[] = []
const workers: Worker[] = []

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeout: 5000 })
  for (const b of brokers.splice(0)) await b.close()
})

afterAll(async () => {
  for (const s of schemas) await dropSchema(pool, s)
  await pool.end()
})

function freshSchema(): string {
  const schema = testSchema('tq_feat')
  schemas.push(schema)
  return schema
}

function makeBroker(options: PostgresBrokerOptions = {}): PostgresBroker {
  const broker = new PostgresBroker({ connectionString: PG_URL, middleware: [], ...options })
  brokers.push(broker)
  return broker
}

async function startWorker(broker: PostgresBroker, concurrency = 4): Promise<Worker> {
  const worker = new Worker(broker, { workerTimeout: 100, concurrency })
  workers.push(worker)
  await worker.start()
  return worker
}

describe('schema and migrations', () => {
  it('creates its tables on first use, once, even with several brokers starting together', async () => {
    const schema = freshSchema()
    const many = Array.from({ length: 4 }, () => makeBroker({ schema }))
    await Promise.all(many.map((b) => b.connect()))
    const { rows } = await pool.query(`SELECT component, version FROM ${schema}.schema_versions`)
    expect(rows).toEqual([{ component: 'broker', version: 1 }])
    expect(await migrateDatabase({ connectionString: PG_URL, schema, components: ['broker'] })).toEqual([])
  })

  it('with migrate: false, refuses a schema without tables with a clear SchemaVersionError', async () => {
    const broker = makeBroker({ schema: freshSchema(), migrate: false })
    const job = actor('job', () => undefined, { broker, queueName: 'q' })
    const error = await job.send().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(SchemaVersionError)
    expect(error).toBeInstanceOf(ConfigurationError)
    expect((error as SchemaVersionError).found).toBe(0)
    expect((error as Error).message).toContain('tq postgres migrate')
  })

  it('refuses a schema a newer version made, and reads and writes nothing', async () => {
    const schema = freshSchema()
    await migrateDatabase({ connectionString: PG_URL, schema })
    await pool.query(`UPDATE ${schema}.schema_versions SET version = 99 WHERE component = 'broker'`)
    for (const migrate of [true, false]) {
      const broker = makeBroker({ schema, migrate })
      const job = actor('job', () => undefined, { broker, queueName: 'q' })
      const error = await job.send().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(SchemaVersionError)
      expect((error as SchemaVersionError).found).toBe(99)
      expect((error as Error).message).toContain('upgrade @tq/postgres')
    }
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${schema}.messages`)
    expect(rows[0]).toEqual({ n: 0 })
  })

  it('says a table is missing when one was dropped under it, and loses nothing sent before', async () => {
    const schema = freshSchema()
    const broker = makeBroker({ schema })
    const job = actor('job', () => undefined, { broker, queueName: 'q' })
    await job.send()
    await pool.query(`ALTER TABLE ${schema}.messages RENAME TO messages_away`)
    try {
      const error = await job.send().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConfigurationError)
      expect((error as Error).message).toMatch(/table is missing.*tq postgres migrate/)
    } finally {
      await pool.query(`ALTER TABLE ${schema}.messages_away RENAME TO messages`)
    }
    expect((await broker.queueCounts('q')).ready).toBe(1)
  })

  it('ships the plain SQL of its migrations (sql/*.sql), the same as it applies', () => {
    const file = readFileSync(new URL('../sql/broker.sql', import.meta.url), 'utf8')
    expect(file, 'regenerate with test/support/write-sql.ts').toBe(plainSqlFile(brokerSchema))
    expect(migrationSql(brokerSchema, 'jobs')).toContain('CREATE TABLE jobs.messages')
    expect(() => migrationSql(brokerSchema, 'Bad-Name')).toThrow(InvalidArgumentError)
  })
})

describe('delivery', () => {
  it('wakes an idle consumer through LISTEN/NOTIFY, long before its poll', async () => {
    const broker = makeBroker({ schema: freshSchema(), pollInterval: 30_000 })
    const ran = deferred<number>()
    const job = actor('job', () => ran.resolve(Date.now()), { broker, queueName: 'q' })
    const worker = new Worker(broker, { workerTimeout: 60_000 })
    workers.push(worker)
    await worker.start()
    // Let the consumer claim nothing and go idle on the doorbell.
    await waitFor(
      async () => (await pool.query(`SELECT 1 FROM pg_stat_activity WHERE query LIKE 'LISTEN%'`)).rowCount! > 0,
      {
        timeout: 5000,
        message: 'the LISTEN connection',
      },
    )
    await new Promise((r) => setTimeout(r, 200))
    const sent = Date.now()
    await job.send()
    const latency = (await ran.promise) - sent
    expect(latency).toBeLessThan(1000)
  })

  it('works in a schema of the longest name (63 bytes): its channel and statement names still fit', async () => {
    const schema = `${freshSchema()}_`.padEnd(63, 'x')
    schemas.push(schema)
    const broker = makeBroker({ schema, pollInterval: 30_000 })
    const ran = deferred<string>()
    const job = actor('job', (x: string) => ran.resolve(x), { broker, queueName: 'q' })
    const worker = new Worker(broker, { workerTimeout: 60_000 })
    workers.push(worker)
    await worker.start()
    await waitFor(
      async () => (await pool.query(`SELECT 1 FROM pg_stat_activity WHERE query LIKE 'LISTEN%'`)).rowCount! > 0,
      {
        timeout: 5000,
        message: 'the LISTEN connection',
      },
    )
    await new Promise((r) => setTimeout(r, 200))
    const sent = Date.now()
    await job.send('long')
    expect(await ran.promise).toBe('long')
    expect(Date.now() - sent).toBeLessThan(1000)
  })

  it('with listen: false, polls every pollInterval', async () => {
    const broker = makeBroker({ schema: freshSchema(), listen: false, pollInterval: 50 })
    const ledger = new Ledger<number>()
    const job = actor('job', (i: number) => ledger.record(i), { broker, queueName: 'q' })
    await startWorker(broker)
    for (let i = 0; i < 5; i++) await job.send(i)
    await ledger.waitForTotal(5, 5000)
  })

  it('runs a retry as the same message on a new row, and says a redelivery is one', async () => {
    const broker = makeBroker({ schema: freshSchema() })
    const job = actor('job', () => undefined, { broker, queueName: 'q' })
    await job.send()
    const first = broker.consume('q', { prefetch: 1, timeout: 2000 })
    const [a] = (await first.receive()) as PostgresMessageProxy[]
    expect(a).toBeInstanceOf(PostgresMessageProxy)
    expect(a?.deliveries).toBe(1)
    expect(a?.redelivered).toBe(false)
    await first.requeue([a as PostgresMessageProxy])
    const [b] = (await first.receive()) as PostgresMessageProxy[]
    expect(b?.rowId).toBe(a?.rowId)
    expect(b?.deliveries).toBe(2)
    expect(b?.redelivered).toBe(true)
    await first.ack(b as PostgresMessageProxy)
    await first.close()
    await broker.join('q', { timeout: 5000 })
  })

  it("gives a dead worker's claims back once its heartbeat is older than heartbeatTimeout", async () => {
    const schema = freshSchema()
    const broker = makeBroker({ schema, heartbeatInterval: 50, heartbeatTimeout: 300 })
    const ledger = new Ledger<number>()
    const job = actor('job', (i: number) => ledger.record(i), { broker, queueName: 'q' })
    for (let i = 0; i < 4; i++) await job.send(i)
    // Two workers that died holding claims: one whose heartbeat stopped an hour ago, one that
    // never wrote one; and a live one (fresh heartbeat) whose claim must stay.
    const [stale, orphan, live] = [randomUUID(), randomUUID(), randomUUID()]
    await pool.query(
      `INSERT INTO ${schema}.workers (id, heartbeat_at) VALUES ($1, now() - interval '1 hour'), ($2, now())`,
      [stale, live],
    )
    const { rows } = await pool.query<{ id: string }>(`SELECT id::text FROM ${schema}.messages ORDER BY id`)
    const claim = (id: string | undefined, by: string) =>
      pool.query(
        `UPDATE ${schema}.messages SET claimed_by = $2, claimed_at = now() - interval '1 hour' WHERE id = $1`,
        [id, by],
      )
    await claim(rows[0]?.id, stale)
    await claim(rows[1]?.id, stale)
    await claim(rows[2]?.id, orphan)
    await claim(rows[3]?.id, live)
    const logger = createCapturingLogger()
    broker.logger = logger
    await startWorker(broker)
    await ledger.waitForTotal(3, 10_000)
    expect([...ledger.counts.keys()].sort()).toEqual([0, 1, 2])
    expect(logger.entries.some((e) => e.msg.startsWith('Gave the messages of workers whose heartbeat stopped'))).toBe(
      true,
    )
    // The three acks land; the live worker's claim stays.
    await waitFor(async () => (await pool.query(`SELECT 1 FROM ${schema}.messages`)).rowCount === 1, {
      timeout: 5000,
      message: 'the acks',
    })
    const left = await pool.query(`SELECT claimed_by::text FROM ${schema}.messages`)
    expect(left.rows).toEqual([{ claimed_by: live }])
    const gone = await pool.query(`SELECT id::text FROM ${schema}.workers WHERE id = $1`, [stale])
    expect(gone.rowCount).toBe(0)
    await pool.query(`DELETE FROM ${schema}.messages`)
  })

  it('acks only a row this worker still claims: a late ack after its claim was given back deletes nothing', async () => {
    const schema = freshSchema()
    const logger = createCapturingLogger()
    const broker = makeBroker({ schema, logger })
    const job = actor('job', () => undefined, { broker, queueName: 'q' })
    await job.send()
    const consumer = broker.consume('q', { prefetch: 1, timeout: 2000 })
    const [first] = await consumer.receive()
    // As the reaper does for a worker presumed dead, then another worker claims it.
    const other = randomUUID()
    await pool.query(`UPDATE ${schema}.messages SET claimed_by = $1`, [other])
    await consumer.ack(first!)
    expect((await broker.queueCounts('q')).running).toBe(1)
    expect(logger.entries.some((e) => e.level === 'warn' && e.msg.includes('no longer claimed by this worker'))).toBe(
      true,
    )
    await pool.query(`DELETE FROM ${schema}.messages`)
    await consumer.close()
  })

  it('expires dead letters older than deadLetterTtl', async () => {
    const schema = freshSchema()
    const broker = makeBroker({ schema, heartbeatInterval: 50, heartbeatTimeout: 300, deadLetterTtl: 60_000 })
    const job = actor('job', () => undefined, { broker, queueName: 'q' })
    await job.send()
    await job.send()
    const consumer = broker.consume('q', { prefetch: 2, timeout: 2000 })
    const got = await consumer.receive()
    for (const m of got) await consumer.nack(m)
    expect((await broker.queueCounts('q')).dead).toBe(2)
    await pool.query(
      `UPDATE ${schema}.dead_letters SET dead_at = now() - interval '2 minutes' WHERE id = (SELECT min(id) FROM ${schema}.dead_letters)`,
    )
    await waitFor(async () => (await broker.queueCounts('q')).dead === 1, {
      timeout: 5000,
      message: 'one dead letter expired',
    })
    await consumer.close()
  })

  it('redrives dead letters back to their queue in order, leaving undecodable ones', async () => {
    const schema = freshSchema()
    const broker = makeBroker({ schema })
    const ledger = new Ledger<number>()
    const job = actor('job', (i: number) => ledger.record(i), { broker, queueName: 'q' })
    await broker.enqueueMany(Array.from({ length: 250 }, (_, i) => job.message(i).copy({ options: { retries: 3 } })))
    await pool.query(
      `INSERT INTO ${schema}.dead_letters (queue, message_id, body, enqueued_at) VALUES ('q', 'junk', '\\x00ff', now())`,
    )
    await pool.query(
      `INSERT INTO ${schema}.dead_letters (queue, message_id, body, reason, enqueued_at)
       SELECT queue, message_id, body, 'test', enqueued_at FROM ${schema}.messages ORDER BY id`,
    )
    await broker.flush('q')
    expect(await broker.redriveDeadLetters('q', { limit: 10 })).toBe(10)
    expect(await broker.redriveDeadLetters('q')).toBe(240)
    expect((await broker.queueCounts('q')).dead).toBe(1)
    const consumer = broker.consume('q', { prefetch: 250, timeout: 2000 })
    const got = await consumer.receive()
    expect(got.map((m) => m.args[0])).toEqual(Array.from({ length: 250 }, (_, i) => i))
    expect(got.every((m) => m.options.retries === undefined)).toBe(true)
    for (const m of got) await consumer.ack(m)
    await consumer.close()
  })
})

describe('closing', () => {
  it('closes promptly whenever it is closed while starting to consume', async () => {
    const schema = freshSchema()
    await migrateDatabase({ connectionString: PG_URL, schema, components: ['broker'] })
    for (const wait of [0, 2, 5, 10, 20, 40]) {
      const broker = new PostgresBroker({ connectionString: PG_URL, schema, middleware: [] })
      actor('job', () => undefined, { broker, queueName: 'q' })
      const consumer = broker.consume('q', { prefetch: 1, timeout: 200 })
      const receiving = consumer.receive()
      await new Promise((resolve) => setTimeout(resolve, wait))
      const closed = broker.close().then(() => 'closed')
      const late = new Promise((resolve) => setTimeout(resolve, 5000, 'still closing'))
      expect(await Promise.race([closed, late]), `closed ${wait} ms after the first receive`).toBe('closed')
      await receiving
    }
  })
})

describe('hostile input', () => {
  it('dead-letters a corrupt row with the reason logged, and keeps going', async () => {
    const schema = freshSchema()
    const logger = createCapturingLogger()
    const broker = makeBroker({ schema, logger })
    const ledger = new Ledger<string>()
    const job = actor('job', (x: string) => ledger.record(x), { broker, queueName: 'q' })
    await broker.connect()
    await pool.query(`INSERT INTO ${schema}.messages (queue, message_id, body) VALUES ('q', $1, $2)`, [
      randomUUID(),
      Buffer.from('{"queue_name": "q", "actor_name": 1'),
    ])
    await job.send('fine')
    await startWorker(broker)
    await ledger.waitForTotal(1, 5000)
    await waitFor(async () => (await broker.queueCounts('q')).dead === 1, { timeout: 5000, message: 'the dead letter' })
    const [dead] = await broker.deadLetters('q')
    expect(dead?.reason).toBeTruthy()
    expect(logger.entries.some((e) => e.msg === 'Undecodable message dead-lettered')).toBe(true)
  })

  it('refuses bad options with InvalidArgumentError', () => {
    expect(() => new PostgresBroker({ schema: 'Robert"); DROP TABLE x;--' })).toThrow(InvalidArgumentError)
    expect(() => new PostgresBroker({ heartbeatInterval: 1000, heartbeatTimeout: 500 })).toThrow(InvalidArgumentError)
    expect(() => new PostgresBroker({ pollInterval: -1 })).toThrow(InvalidArgumentError)
  })

  it('a message body of any bytes survives the trip', async () => {
    const broker = makeBroker({ schema: freshSchema() })
    actor('job', () => undefined, { broker, queueName: 'q' })
    const message = new Message({
      queueName: 'q',
      actorName: 'job',
      args: ['\u0000 \\x00 \'"; DROP', '😀', { a: [1e300] }],
    })
    await broker.enqueue(message)
    const consumer = broker.consume('q', { prefetch: 1, timeout: 2000 })
    const [got] = await consumer.receive()
    expect(got?.args).toEqual(message.args)
    await consumer.ack(got!)
    await consumer.close()
  })
})
