// BullMQ 5: Queue.addBulk / Queue.add for enqueueing, Worker with the same concurrency for
// processing, finished jobs removed (removeOnComplete: true); everything else at its defaults.
import { Queue, Worker } from 'bullmq'
import { redisTarget, type SystemModule } from './types.ts'

const JOB_OPTIONS = { removeOnComplete: true }

export const system: SystemModule = {
  name: 'bullmq',
  label: 'BullMQ',
  backend: 'redis',
  kind: 'peer',
  async producer(ctx, queue) {
    const q = new Queue<{ v: number }>(queue, { connection: redisTarget(ctx.redisUrl) })
    await q.waitUntilReady()
    return {
      async bulk(values) {
        await q.addBulk(values.map((v) => ({ name: 'noop', data: { v }, opts: JOB_OPTIONS })))
      },
      async one(v) {
        await q.add('noop', { v }, JOB_OPTIONS)
      },
      close: () => q.close(),
    }
  },
  async consumer(ctx, queue, concurrency, onProcessed) {
    const worker = new Worker<{ v: number }>(
      queue,
      async (job) => {
        onProcessed(job.data.v)
      },
      { connection: { ...redisTarget(ctx.redisUrl), maxRetriesPerRequest: null }, concurrency, autorun: false },
    )
    worker.on('error', () => undefined)
    await worker.waitUntilReady()
    let running: Promise<void> | undefined
    return {
      async start() {
        running = worker.run().catch(() => undefined)
      },
      async stop() {
        await worker.close()
        await running
      },
    }
  },
}
