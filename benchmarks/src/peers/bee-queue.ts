// bee-queue 2: createJob().save() / saveAll() for enqueueing, process(concurrency, handler) for
// processing, finished jobs removed (removeOnSuccess: true). The producer neither stores jobs nor
// listens for events (a fire-and-forget producer); the worker keeps its default sendEvents.
import BeeQueue from 'bee-queue'
import { redisTarget, type SystemModule } from './types.ts'

export const system: SystemModule = {
  name: 'bee-queue',
  label: 'bee-queue',
  backend: 'redis',
  kind: 'peer',
  async producer(ctx, queue) {
    const q = new BeeQueue<{ v: number }>(queue, {
      redis: redisTarget(ctx.redisUrl),
      isWorker: false,
      getEvents: false,
      storeJobs: false,
    })
    await q.ready()
    return {
      async bulk(values) {
        const errors = await q.saveAll(values.map((v) => q.createJob({ v })))
        const [first] = errors.values()
        if (first) throw first
      },
      async one(v) {
        await q.createJob({ v }).save()
      },
      close: () => q.close(5000),
    }
  },
  async consumer(ctx, queue, concurrency, onProcessed) {
    const q = new BeeQueue<{ v: number }>(queue, {
      redis: redisTarget(ctx.redisUrl),
      isWorker: true,
      getEvents: false,
      storeJobs: false,
      removeOnSuccess: true,
    })
    q.on('error', () => undefined)
    await q.ready()
    return {
      async start() {
        q.process(concurrency, async (job) => {
          onProcessed(job.data.v)
        })
      },
      stop: () => q.close(5000),
    }
  },
}
