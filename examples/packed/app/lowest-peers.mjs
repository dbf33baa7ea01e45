// The lowest supported peer majors (ioredis 5, amqplib 0.10): send, run, results, join on real servers.
import { Results, Worker, actor } from '@tq/core'
import { RabbitmqBroker } from '@tq/rabbitmq'
import { RedisBroker } from '@tq/redis'
import { RedisResultBackend } from '@tq/results-redis'

const redisUrl = process.env.APP_REDIS_URL ?? 'redis://127.0.0.1:6379/11'
const queue = `lowest_peers_${process.pid}`
const backend = new RedisResultBackend({ url: redisUrl })
for (const [name, broker] of [
  ['redis', new RedisBroker({ url: redisUrl })],
  ['rabbitmq', new RabbitmqBroker({ url: process.env.APP_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672' })],
]) {
  broker.addMiddleware(new Results({ backend }))
  const add = actor('add', (x, y) => x + y, { broker, queueName: queue, storeResults: true })
  const worker = new Worker(broker, { concurrency: 2 })
  await worker.start()
  const now = await add.send(1, 2)
  const later = await add.sendWithOptions({ args: [20, 22], delay: 50 })
  const results = [await now.getResult({ backend, block: true, timeout: 20_000 })]
  results.push(await later.getResult({ backend, block: true, timeout: 20_000 }))
  await broker.join(queue, { timeout: 20_000 })
  await worker.stop()
  await broker.flush(queue)
  await broker.close()
  console.log(`${name}: ${results.join(' ')}`)
}
await backend.close()
