// The RabbitMQ ceiling: plain amqplib doing what tq's RabbitmqBroker promises — persistent
// messages, publisher confirms (waited for per batch), manual acks — on queues declared with
// the same arguments as tq's, with JSON bodies of the same shape (JSON.parse on delivery).
// It mirrors the raw baseline of src/rabbitmq.ts (which does not export it).
import { dqName, xqName } from '@tq/core'
import { queueDeclarations } from '@tq/rabbitmq'
import { connect } from 'amqplib'
import { wireBody } from './raw-redis.ts'
import type { BenchContext, SystemModule } from './types.ts'

export const rabbitQueue = (ctx: BenchContext, queue: string): string => `${queue}_${ctx.runId}`

export const system: SystemModule = {
  name: 'raw-amqp',
  label: 'raw amqplib',
  backend: 'rabbitmq',
  kind: 'ceiling',
  async producer(ctx, queue) {
    const q = rabbitQueue(ctx, queue)
    const model = await connect(ctx.amqpUrl, { noDelay: true })
    const channel = await model.createConfirmChannel()
    for (const d of queueDeclarations(q)) {
      await channel.assertQueue(d.name, {
        durable: d.durable,
        exclusive: d.exclusive,
        autoDelete: d.autoDelete,
        arguments: d.arguments,
      })
    }
    return {
      async bulk(values) {
        for (const value of values) channel.publish('', q, Buffer.from(wireBody(q, value)), { deliveryMode: 2 })
        await channel.waitForConfirms()
      },
      // Each send waits for its own confirm (the callback), as a program with many sends in
      // flight does; waitForConfirms would wait for every outstanding one.
      one(value) {
        return new Promise<void>((resolve, reject) => {
          channel.publish('', q, Buffer.from(wireBody(q, value)), { deliveryMode: 2 }, (error: unknown) => {
            if (error) reject(error instanceof Error ? error : new Error('publish was nacked'))
            else resolve()
          })
        })
      },
      async close() {
        await channel.close()
        await model.close()
      },
    }
  },
  async consumer(ctx, queue, concurrency, onProcessed) {
    const q = rabbitQueue(ctx, queue)
    const model = await connect(ctx.amqpUrl, { noDelay: true })
    const channel = await model.createChannel()
    // tq's Worker prefetches 2 × concurrency per queue; the raw consumer gets the same.
    await channel.prefetch(concurrency * 2, false)
    let consumerTag: string | undefined
    return {
      async start() {
        ;({ consumerTag } = await channel.consume(
          q,
          (message) => {
            if (!message) return
            const parsed = JSON.parse(message.content.toString('utf8')) as { args: [number] }
            channel.ack(message)
            onProcessed(parsed.args[0])
          },
          { noAck: false },
        ))
      },
      async stop() {
        if (consumerTag) await channel.cancel(consumerTag)
        await channel.close()
        await model.close()
      },
    }
  },
  cleanup: deleteQueues,
}

/** Delete a benchmark queue and its delay and dead-letter queues. */
export async function deleteQueues(ctx: BenchContext, queue: string): Promise<void> {
  const q = rabbitQueue(ctx, queue)
  const model = await connect(ctx.amqpUrl)
  try {
    for (const name of [q, dqName(q), xqName(q)]) {
      const channel = await model.createChannel()
      channel.on('error', () => undefined)
      await channel.deleteQueue(name).catch(() => undefined)
      await channel.close().catch(() => undefined)
    }
  } finally {
    await model.close()
  }
}
