// tq on Redis: RedisBroker + Worker, the way an application uses them.
import { Worker, actor } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import type { BenchContext, SystemModule } from './types.ts'

const NAMESPACE = 'tqbench'

function newBroker(ctx: BenchContext): RedisBroker {
  return new RedisBroker({
    url: ctx.redisUrl,
    namespace: NAMESPACE,
    ...(ctx.tqMiddleware === 'none' ? { middleware: [] } : {}),
  })
}

export const system: SystemModule = {
  name: 'tq-redis',
  label: 'tq · Redis',
  backend: 'redis',
  kind: 'tq',
  async producer(ctx, queue) {
    const broker = newBroker(ctx)
    const noop = actor('noop', (_value: number) => undefined, { broker, queueName: queue })
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
}
