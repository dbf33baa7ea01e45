// pg-boss 10: insert() (one statement per call) / send() for enqueueing, in a schema of its own,
// on a queue made with createQueue() (pg-boss 10 drops jobs sent to a queue that does not exist).
//
// Concurrency N: pg-boss 10 has neither teamSize/teamConcurrency (gone in 10) nor localConcurrency
// (added after 10). A work() worker is one loop: fetch up to batchSize jobs, await the handler,
// complete the batch (not awaited), wait out the rest of pollingIntervalSeconds, fetch again. So
// "N jobs in flight" is one work() with batchSize N whose handler runs the batch's jobs together;
// at concurrency 1 that is the plain batchSize-1 worker. Left alone, the loop fetches at most once
// per polling interval even when the queue is full (at most N jobs per 0.5 s, its minimum
// interval): the handler calls notifyWorker(id), pg-boss's documented way to skip the wait, when
// its batch came back full, so a busy queue is fetched back to back as by tq and graphile-worker.
// An idle worker polls every 0.5 s (pg-boss 10 has no LISTEN/NOTIFY). Everything else at its
// defaults (a pool of 10, supervise and schedule on, retention and archiving as shipped).
import PgBoss from 'pg-boss'
import { SCHEMAS, dropSchema, ranges } from './pg.ts'
import type { BenchContext, SystemModule } from './types.ts'

/** The shortest polling interval pg-boss 10 accepts (the default is 2 s). */
const POLLING_INTERVAL_SECONDS = 0.5
const SEED_BATCH = 5000

async function startBoss(ctx: BenchContext, queue?: string): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: ctx.pgUrl,
    schema: SCHEMAS.pgBoss,
    application_name: `tqbench-${ctx.runId}`,
  })
  boss.on('error', (error) => console.error(`pg-boss: ${error.message}`))
  await boss.start()
  if (queue !== undefined) await createQueue(boss, queue)
  return boss
}

/**
 * createQueue (idempotent), retried: the producer and the workers of a scenario open at once, and
 * two create_queue calls attaching the queue's partition at the same moment can deadlock.
 */
async function createQueue(boss: PgBoss, queue: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      if (!(await boss.getQueue(queue))) await boss.createQueue(queue)
      return
    } catch (error) {
      const code = (error as { code?: unknown }).code
      if (attempt >= 5 || (code !== '40P01' && code !== '23505')) throw error
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt))
    }
  }
}

const stop = (boss: PgBoss): Promise<void> => boss.stop({ graceful: true, timeout: 5000 })

export const system: SystemModule = {
  name: 'pg-boss',
  label: 'pg-boss',
  backend: 'postgres',
  kind: 'peer',
  async producer(ctx, queue) {
    const boss = await startBoss(ctx, queue)
    return {
      async bulk(values) {
        await boss.insert(values.map((v) => ({ name: queue, data: { v } })))
      },
      async one(v) {
        if ((await boss.send(queue, { v })) === null) throw new Error(`pg-boss did not create a job on ${queue}`)
      },
      close: () => stop(boss),
    }
  },
  async consumer(ctx, queue, concurrency, onProcessed) {
    const boss = await startBoss(ctx, queue)
    let workerId: string | undefined
    return {
      async start() {
        workerId = await boss.work<{ v: number }>(
          queue,
          { batchSize: concurrency, pollingIntervalSeconds: POLLING_INTERVAL_SECONDS },
          async (jobs) => {
            await Promise.all(jobs.map(async (job) => onProcessed(job.data.v)))
            if (jobs.length === concurrency && workerId !== undefined) boss.notifyWorker(workerId)
          },
        )
      },
      async stop() {
        await boss.offWork(queue)
        await stop(boss)
      },
    }
  },
  async prepare(ctx) {
    await dropSchema(ctx.pgUrl, SCHEMAS.pgBoss)
    // start() creates the schema; nothing else runs here (no supervision, no schedule).
    const boss = new PgBoss({ connectionString: ctx.pgUrl, schema: SCHEMAS.pgBoss, supervise: false, schedule: false })
    boss.on('error', (error) => console.error(`pg-boss: ${error.message}`))
    await boss.start()
    await stop(boss)
  },
  async seedDelayed(ctx, queue, count, delayMs) {
    const boss = await startBoss(ctx, queue)
    try {
      const startAfter = new Date(Date.now() + delayMs)
      for (const values of ranges(count, SEED_BATCH)) {
        await boss.insert(values.map((v) => ({ name: queue, data: { v }, startAfter })))
      }
    } finally {
      await stop(boss)
    }
  },
  async transactional(ctx, queue) {
    const boss = await startBoss(ctx, queue)
    return {
      async send(client, v) {
        const db = { executeSql: (text: string, values: unknown[]) => client.query(text, values) }
        if ((await boss.send(queue, { v }, { db })) === null)
          throw new Error(`pg-boss did not create a job on ${queue}`)
      },
      close: () => stop(boss),
    }
  },
}
