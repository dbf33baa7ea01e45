// graphile-worker 0.17: WorkerUtils.addJobs (one statement per call) / addJob for enqueueing, the
// queue's name as the task identifier (no `queueName`: that would run the jobs one at a time),
// `run()` with the same concurrency and a no-op task for processing, in a schema of its own.
// Everything else at its defaults: a pool of 10 (its maxPoolSize default), LISTEN/NOTIFY, no
// local queue (localQueue.size -1), completeJobBatchDelay -1 (each job completed by itself),
// pollInterval 2 s, prepared statements on. In a transaction: SQL `add_job` on the caller's client
// (graphile-worker's own way to enqueue from SQL).
import pg from 'pg'
import { Logger, run, runMigrations, makeWorkerUtils, type Runner, type WorkerUtils } from 'graphile-worker'
import { SCHEMAS, dropSchema, ranges } from './pg.ts'
import type { BenchContext, SystemModule } from './types.ts'

/** Errors only: the info lines ("Worker connected…") would drown the harness's output. */
const logger = new Logger(() => (level, message) => {
  if ((level as string) === 'error') console.error(`graphile-worker: ${message}`)
})

const SEED_BATCH = 5000

async function utilsFor(ctx: BenchContext): Promise<WorkerUtils> {
  return makeWorkerUtils({ connectionString: ctx.pgUrl, schema: SCHEMAS.graphile, logger })
}

export const system: SystemModule = {
  name: 'graphile-worker',
  label: 'graphile-worker',
  backend: 'postgres',
  kind: 'peer',
  async producer(ctx, queue) {
    const utils = await utilsFor(ctx)
    return {
      async bulk(values) {
        await utils.addJobs(values.map((v) => ({ identifier: queue, payload: { v } })))
      },
      async one(v) {
        await utils.addJob(queue, { v })
      },
      async close() {
        await utils.release()
      },
    }
  },
  async consumer(ctx, queue, concurrency, onProcessed) {
    // graphile-worker's default pool size (10), made here so it is connected before the clock starts.
    const pgPool = new pg.Pool({ connectionString: ctx.pgUrl, max: 10 })
    // The error handlers graphile-worker asks a pool of the caller's to have (a pool and its clients).
    pgPool.on('error', () => undefined)
    pgPool.on('connect', (client) => void client.on('error', () => undefined))
    await runMigrations({ pgPool, schema: SCHEMAS.graphile, logger })
    let runner: Runner | undefined
    return {
      async start() {
        runner = await run({
          pgPool,
          schema: SCHEMAS.graphile,
          concurrency,
          logger,
          noHandleSignals: true,
          parsedCronItems: [],
          taskList: {
            [queue]: async (payload) => {
              onProcessed((payload as { v: number }).v)
            },
          },
        })
      },
      async stop() {
        await runner?.stop()
        await pgPool.end()
      },
    }
  },
  async prepare(ctx) {
    await dropSchema(ctx.pgUrl, SCHEMAS.graphile)
    await runMigrations({ connectionString: ctx.pgUrl, schema: SCHEMAS.graphile, logger })
  },
  async seedDelayed(ctx, queue, count, delayMs) {
    const utils = await utilsFor(ctx)
    try {
      const runAt = new Date(Date.now() + delayMs)
      for (const values of ranges(count, SEED_BATCH)) {
        await utils.addJobs(values.map((v) => ({ identifier: queue, payload: { v }, runAt })))
      }
    } finally {
      await utils.release()
    }
  },
  async transactional(_ctx, queue) {
    const text = `SELECT ${SCHEMAS.graphile}.add_job($1, $2::json)`
    return {
      async send(client, v) {
        await client.query(text, [queue, JSON.stringify({ v })])
      },
      async close() {},
    }
  },
}
