import { randomUUID } from 'node:crypto'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { DecodeError, type CancelNotice, type TrackingUpdate } from '@tq/core'
import { createCapturingLogger, trackingBackendConformanceSuite, waitFor } from '@tq/core/testing'
import type { PgPool } from '../src/pg-types.ts'
import { SchemaVersionError } from '../src/schema.ts'
import { PostgresTrackingBackend, type PostgresTrackingBackendOptions } from '../src/tracking/backend.ts'
import { TrackingControl } from '../src/tracking/control.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const DAY = 86_400_000
const admin = testPool(4)
const schemas: string[] = []
const open: PostgresTrackingBackend[] = []

/** A backend on a schema of its own (dropped after the file). */
function backend(options: PostgresTrackingBackendOptions = {}): PostgresTrackingBackend {
  const schema = testSchema('tq_track')
  schemas.push(schema)
  const created = new PostgresTrackingBackend({ connectionString: PG_URL, schema, ...options })
  open.push(created)
  return created
}

afterEach(async () => {
  for (const b of open.splice(0)) await b.close()
})
afterAll(async () => {
  for (const schema of schemas) await dropSchema(admin, schema)
  await admin.end()
})

trackingBackendConformanceSuite({ name: 'PostgresTrackingBackend', createBackend: () => backend() })

const enqueued = (messageId: string, at: number, extra: Partial<TrackingUpdate> = {}): TrackingUpdate =>
  ({
    kind: 'enqueued',
    at,
    messageId,
    actorName: 'send_email',
    queueName: 'mail',
    state: 'queued',
    args: ['ada@example.com'],
    kwargs: {},
    argsTruncated: false,
    options: {},
    eta: undefined,
    body: new TextEncoder().encode(`{"message_id":"${messageId}"}`),
    ...extra,
  }) as TrackingUpdate

describe('PostgresTrackingBackend', () => {
  it('reads a corrupt row as DecodeError from get(), and leaves it out of list()', async () => {
    const tracking = backend()
    const good = randomUUID()
    const bad = randomUUID()
    const worse = randomUUID()
    const t = Date.now()
    await tracking.write([enqueued(good, t), enqueued(bad, t + 1), enqueued(worse, t + 2)], DAY)
    await admin.query(
      `UPDATE ${tracking.schema}.tracked_messages SET data = '{"attempts": "none"}' WHERE message_id = $1`,
      [bad],
    )
    await admin.query(`UPDATE ${tracking.schema}.tracked_messages SET state = 'lost' WHERE message_id = $1`, [worse])
    await expect(tracking.get(bad)).rejects.toBeInstanceOf(DecodeError)
    await expect(tracking.get(worse)).rejects.toBeInstanceOf(DecodeError)
    expect((await tracking.list()).items.map((r) => r.messageId)).toEqual([good])
    // A write replaces a corrupt record with what its updates say.
    await tracking.write([{ kind: 'state', at: t + 5, messageId: bad, state: 'dead' }], DAY)
    expect(await tracking.get(bad)).toMatchObject({ messageId: bad, state: 'dead' })
  })

  it('refuses a missing schema with SchemaVersionError when migrate is false', async () => {
    const tracking = backend({ migrate: false })
    await expect(tracking.get(randomUUID())).rejects.toBeInstanceOf(SchemaVersionError)
    await expect(tracking.write([enqueued(randomUUID(), Date.now())], DAY)).rejects.toBeInstanceOf(SchemaVersionError)
    await expect(tracking.subscribeCancels(() => undefined)).rejects.toBeInstanceOf(SchemaVersionError)
    // Once migrated, the same backend works.
    await backend({ schema: tracking.schema }).migrate()
    expect(await tracking.get(randomUUID())).toBeUndefined()
  })

  it('keeps both writers’ updates when a worker and its producer write a new message at once', async () => {
    const producer = backend()
    const worker = backend({ schema: producer.schema })
    const t = Date.now()
    const ids = Array.from({ length: 200 }, () => randomUUID())
    const started = (id: string): TrackingUpdate => ({
      kind: 'attempt',
      at: t + 5,
      messageId: id,
      attempt: { number: 1, workerId: 'host:1:1', startedAt: t + 5 },
      state: 'running',
    })
    const progress = (id: string): TrackingUpdate => ({ kind: 'progress', at: t + 6, messageId: id, progress: 1 })
    // Many small batches each, interleaved, so the two keep inserting rows the other then finds.
    const chunks = <T>(items: T[], size: number): T[][] =>
      Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, i * size + size))
    await Promise.all([
      ...chunks(ids, 10).map((part) =>
        producer.write(
          part.map((id) => enqueued(id, t)),
          DAY,
        ),
      ),
      ...chunks(ids, 7).map((part) =>
        worker.write(
          part.flatMap((id) => [started(id), progress(id)]),
          DAY,
        ),
      ),
    ])
    for (const id of ids) {
      const record = await producer.get(id)
      expect(record).toMatchObject({ state: 'running', actorName: 'send_email', workerId: 'host:1:1', progress: 1 })
      expect(record?.attempts).toHaveLength(1)
      expect(new TextDecoder().decode(record?.body)).toBe(`{"message_id":"${id}"}`)
    }
  })

  it('applies an update again on the record another transaction inserted while it wrote', async () => {
    const tracking = backend()
    const t = Date.now()
    const template = randomUUID()
    await tracking.write([enqueued(template, t)], DAY)
    const id = randomUUID()
    const other = await admin.connect()
    try {
      // Another writer's enqueue of `id`, not committed yet: the write below does not see it, and
      // its insert waits for it.
      await other.query('BEGIN')
      await other.query(
        `INSERT INTO ${tracking.schema}.tracked_messages
         SELECT $1, queue, actor, state, state_at, enqueued_at, updated_at, expires_at, search, data, args, kwargs, body
         FROM ${tracking.schema}.tracked_messages WHERE message_id = $2`,
        [id, template],
      )
      let settled = false
      const writing = tracking
        .write(
          [
            {
              kind: 'attempt',
              at: t + 5,
              messageId: id,
              attempt: { number: 1, workerId: 'host:1:1', startedAt: t + 5 },
              state: 'running',
            },
          ],
          DAY,
        )
        .finally(() => (settled = true))
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(settled).toBe(false)
      await other.query('COMMIT')
      await writing
    } finally {
      other.release()
    }
    expect(await tracking.get(id)).toMatchObject({
      state: 'running',
      actorName: 'send_email',
      queueName: 'mail',
      enqueuedAt: t,
      workerId: 'host:1:1',
      attempts: [{ number: 1, workerId: 'host:1:1', startedAt: t + 5 }],
    })
  })

  it('stores values PostgreSQL jsonb would refuse or reorder, and finds them by search', async () => {
    const tracking = backend()
    const id = randomUUID()
    const kwargs = { zeta: 'NUL \u0000 here', alpha: 'lone \ud800 surrogate', é: 'ÉCOLE' }
    await tracking.write([enqueued(id, Date.now(), { args: [1.5, null, 'x'], kwargs })], DAY)
    const record = await tracking.get(id)
    expect(JSON.stringify(record?.kwargs)).toBe(JSON.stringify(kwargs))
    expect((await tracking.list({ search: 'école' })).items.map((r) => r.messageId)).toEqual([id])
    expect((await tracking.list({ search: '"zeta":"nul' })).items.map((r) => r.messageId)).toEqual([id])
    await expect(tracking.write([enqueued('bad\u0000id', Date.now())], DAY)).rejects.toThrow(/NUL/)
  })

  it('does bounded work per filtered page: a page that found nothing in its scan ends with a cursor', async () => {
    const tracking = backend()
    const t = Date.now()
    const updates = Array.from({ length: 1500 }, (_, i) => enqueued(`bulk-${i}-${randomUUID()}`, t + i))
    const needle = randomUUID()
    updates.unshift(enqueued(`oldest-${needle}`, t - 1))
    await tracking.write(updates, DAY)
    // 1000 rows per page at least: the first page reads 1000 of the 1501 and finds nothing.
    const first = await tracking.list({ search: needle, limit: 10 })
    expect(first.items).toEqual([])
    expect(first.cursor).toBeDefined()
    const second = await tracking.list({ search: needle, limit: 10, cursor: first.cursor as string })
    expect(second.items.map((r) => r.messageId)).toEqual([`oldest-${needle}`])
    expect(second.cursor).toBeUndefined()
  })

  it('deletes lapsed unique keys, cancels, heartbeats and throughput minutes past 3 hours in its chores', async () => {
    const tracking = backend()
    const minute = Math.floor(Date.now() / 60_000) * 60_000
    // Its own chores run now (the first time), not again for a minute.
    await tracking.addThroughput([])
    await tracking.claimUnique('lapsing', 'm-1', 1)
    await tracking.claimUnique('kept', 'm-2', DAY)
    await tracking.requestCancel('m-3', 'cancel', 1)
    await tracking.requestCancel('m-4', 'cancel', DAY)
    const beat = { host: 'h', pid: 1, queues: [], concurrency: 1, inFlight: 0, processed: 0, failed: 0 }
    await tracking.heartbeat({ ...beat, id: 'w-1', startedAt: minute, lastSeen: minute }, 1)
    await tracking.heartbeat({ ...beat, id: 'w-2', startedAt: minute, lastSeen: minute }, DAY)
    await tracking.addThroughput([
      { minute: minute - 4 * 3_600_000, queue: 'old', processed: 1, failed: 0 },
      { minute, queue: 'new', processed: 1, failed: 0 },
    ])
    await new Promise((resolve) => setTimeout(resolve, 20))
    const control = new TrackingControl(admin, tracking.schema)
    expect(await control.chores()).toEqual({ unique: 1, cancels: 1, workers: 1, throughput: 1 })
    const count = async (table: string): Promise<number> =>
      Number((await admin.query(`SELECT count(*) AS n FROM ${tracking.schema}.${table}`)).rows[0]?.n)
    expect(await count('tracking_unique')).toBe(1)
    expect(await count('tracking_cancels')).toBe(1)
    expect(await count('tracking_workers')).toBe(1)
    expect(await count('tracking_throughput')).toBe(1)
  })

  it('hands a listener the cancel requested while its connection was terminated, once it reconnects', async () => {
    const real = testPool(6)
    let blocked = false
    // The pool the backend uses: its checkouts (the LISTEN connection's) fail while `blocked`.
    const gated: PgPool = {
      query: real.query.bind(real),
      connect: async () => {
        if (blocked) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
        return real.connect()
      },
      end: () => real.end(),
      on: (event: 'error', listener: (error: Error) => void) => real.on(event, listener),
    }
    const logger = createCapturingLogger()
    const tracking = backend({ pool: gated, logger })
    try {
      const heard: CancelNotice[] = []
      const subscription = await tracking.subscribeCancels((notice) => heard.push(notice))
      const listening = `LISTEN "tq:${tracking.schema}:cancels"`
      const { rows } = await admin.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE query = $1 AND datname = current_database()',
        [listening],
      )
      expect(rows).toHaveLength(1)
      blocked = true
      await admin.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid])
      await waitFor(() => logger.entries.some((e) => /cancel channel connection was lost/.test(e.msg)), {
        timeout: 5000,
        message: 'the lost connection noticed',
      })
      const missed = randomUUID()
      await tracking.requestCancel(missed, 'cancel', DAY)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(heard).toEqual([])
      blocked = false
      await waitFor(() => heard.some((n) => n.messageId === missed), { timeout: 10_000, message: 'the missed cancel' })
      expect(heard).toContainEqual({ messageId: missed, mode: 'cancel' })
      // Listening again: a new cancel arrives as a notice.
      const later = randomUUID()
      await tracking.requestCancel(later, 'delete', DAY)
      await waitFor(() => heard.some((n) => n.messageId === later), { timeout: 5000, message: 'a notice after it' })
      const again = await admin.query('SELECT pid FROM pg_stat_activity WHERE query = $1', [listening])
      expect(again.rows).toHaveLength(1)
      await subscription.close()
      // Nobody subscribed: the LISTEN connection is back in the pool.
      await waitFor(
        async () =>
          (await admin.query('SELECT 1 FROM pg_stat_activity WHERE query = $1', [listening])).rows.length === 0,
        { timeout: 5000, message: 'UNLISTEN' },
      )
    } finally {
      await tracking.close()
      await real.end()
    }
  })
})
