// tq on PostgreSQL: PostgresBroker + Worker, the way an application uses them, in a schema of
// their own (`tqbench`). Bulk: enqueueMany (one INSERT per call); one: send; in a transaction:
// sendWithOptions({ transaction: fromPg(client) }). Everything else at its defaults (pool of 10,
// LISTEN/NOTIFY on, pollInterval 1 s, the Worker's prefetch of 2 × concurrency).
import pg from 'pg'
import { Worker, actor } from '@tq/core'
import { PostgresBroker, fromPg } from '@tq/postgres'
import { SCHEMAS, dropSchema, ranges } from './pg.ts'
import type { BenchContext, SystemModule } from './types.ts'

function newBroker(ctx: BenchContext): PostgresBroker {
  return new PostgresBroker({
    connectionString: ctx.pgUrl,
    schema: SCHEMAS.tq,
    poolOptions: { application_name: `tqbench-${ctx.runId}` },
    ...(ctx.tqMiddleware === 'none' ? { middleware: [] } : {}),
  })
}

const noopActor = (broker: PostgresBroker, queue: string) =>
  actor('noop', (_value: number) => undefined, { broker, queueName: queue })

function producerOf(ctx: BenchContext, queue: string): { broker: PostgresBroker; noop: ReturnType<typeof noopActor> } {
  const broker = newBroker(ctx)
  return { broker, noop: noopActor(broker, queue) }
}

/** Messages per INSERT when seeding (the broker's own chunk). */
const SEED_BATCH = 5000

export const system: SystemModule = {
  name: 'tq-postgres',
  label: 'tq · PostgreSQL',
  backend: 'postgres',
  kind: 'tq',
  async producer(ctx, queue) {
    const { broker, noop } = producerOf(ctx, queue)
    await broker.connect()
    return {
      async bulk(values) {
        await broker.enqueueMany(values.map((value) => noop.message(value)))
      },
      async one(value) {
        await noop.send(value)
      },
      close: () => broker.close(),
    }
  },
  async consumer(ctx, queue, concurrency, onProcessed) {
    const broker = newBroker(ctx)
    actor('noop', (value: number) => onProcessed(value), { broker, queueName: queue })
    await broker.connect()
    // workerTimeout only bounds how long an idle consumer waits before checking for shutdown.
    const worker = new Worker(broker, { concurrency, workerTimeout: 100 })
    return {
      start: () => worker.start(),
      async stop() {
        await worker.stop({ timeout: 5000 })
        await broker.close()
      },
    }
  },
  async prepare(ctx) {
    await dropSchema(ctx.pgUrl, SCHEMAS.tq)
    const broker = newBroker(ctx)
    try {
      await broker.migrate()
    } finally {
      await broker.close()
    }
  },
  async seedDelayed(ctx, queue, count, delayMs) {
    const { broker, noop } = producerOf(ctx, queue)
    try {
      for (const values of ranges(count, SEED_BATCH)) {
        await broker.enqueueMany(
          values.map((value) => noop.message(value)),
          { delay: delayMs },
        )
      }
    } finally {
      await broker.close()
    }
  },
  async transactional(ctx, queue) {
    // The broker gets a pool of ours, counted: a send in a transaction should use none of it.
    const pool = new pg.Pool({ connectionString: ctx.pgUrl, max: 2 })
    let outside = 0
    const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>
    Object.assign(pool, { query: (...args: unknown[]) => (outside++, query(...args)) })
    const broker = new PostgresBroker({ pool, schema: SCHEMAS.tq })
    const noop = noopActor(broker, queue)
    await broker.connect()
    outside = 0
    return {
      async send(client, value) {
        await noop.sendWithOptions({ args: [value], transaction: fromPg(client) })
      },
      outsideStatements: () => outside,
      async close() {
        await broker.close()
        await pool.end()
      },
    }
  },
}
