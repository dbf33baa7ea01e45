// tq on SQS, served by fauxqs (an in-process SQS emulator the orchestrator starts on loopback):
// SqsBroker + Worker. fauxqs is not AWS: these rows say what tq's SQS code costs, not what SQS does.
import { Worker, actor } from '@tq/core'
import { SqsBroker } from '@tq/sqs'
import type { BenchContext, SystemModule } from './types.ts'

function newBroker(ctx: BenchContext): SqsBroker {
  if (!ctx.sqsEndpoint) throw new Error('tq-sqs needs an SQS endpoint')
  return new SqsBroker({
    endpoint: ctx.sqsEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    queuePrefix: `tqbench-${ctx.runId}-`,
    waitTimeSeconds: 1,
    closeTimeout: 0,
    ...(ctx.tqMiddleware === 'none' ? { middleware: [] } : {}),
  })
}

export const system: SystemModule = {
  name: 'tq-sqs',
  label: 'tq · SQS (fauxqs)',
  backend: 'sqs',
  kind: 'tq',
  async producer(ctx, queue) {
    const broker = newBroker(ctx)
    const noop = actor('noop', (_value: number) => undefined, { broker, queueName: queue })
    await broker.getQueueUrl(queue)
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
    await broker.getQueueUrl(queue)
    const worker = new Worker(broker, { concurrency, workerTimeout: 100 })
    return {
      start: () => worker.start(),
      async stop() {
        await worker.stop({ timeout: 5000 })
        await broker.close()
      },
    }
  },
  async cleanup(ctx, queue) {
    const broker = newBroker(ctx)
    try {
      actor('noop', (_value: number) => undefined, { broker, queueName: queue })
      await broker.getQueueUrl(queue)
      await broker.deleteQueue(queue)
    } finally {
      await broker.close()
    }
  },
}
