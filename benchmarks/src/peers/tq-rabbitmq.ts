// tq on RabbitMQ: RabbitmqBroker (publisher confirms on, its default) + Worker.
import { Worker, actor } from '@tq/core'
import { RabbitmqBroker } from '@tq/rabbitmq'
import { deleteQueues, rabbitQueue } from './raw-amqp.ts'
import type { BenchContext, SystemModule } from './types.ts'

function newBroker(ctx: BenchContext, role: string): RabbitmqBroker {
  return new RabbitmqBroker({
    url: ctx.amqpUrl,
    connectionName: `tqbench-${ctx.runId}-${role}`,
    ...(ctx.tqMiddleware === 'none' ? { middleware: [] } : {}),
  })
}

export const system: SystemModule = {
  name: 'tq-rabbitmq',
  label: 'tq · RabbitMQ',
  backend: 'rabbitmq',
  kind: 'tq',
  async producer(ctx, queue) {
    const q = rabbitQueue(ctx, queue)
    const broker = newBroker(ctx, 'producer')
    const noop = actor('noop', (_value: number) => undefined, { broker, queueName: q })
    await broker.assertQueue(q)
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
    const q = rabbitQueue(ctx, queue)
    const broker = newBroker(ctx, 'worker')
    actor('noop', (value: number) => onProcessed(value), { broker, queueName: q })
    await broker.assertQueue(q)
    const worker = new Worker(broker, { concurrency, workerTimeout: 100 })
    return {
      start: () => worker.start(),
      async stop() {
        await worker.stop({ timeout: 5000 })
        await broker.close()
      },
    }
  },
  cleanup: deleteQueues,
}
