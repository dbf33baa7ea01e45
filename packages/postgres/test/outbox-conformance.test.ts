import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll } from 'vitest'
import { brokerConformanceSuite } from '@tq/core/testing'
import { RedisBroker } from '@tq/redis'
import { OutboxBroker } from '../src/index.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

// The OutboxBroker in front of a RedisBroker behaves as a broker: enqueues go through the
// outbox table and its relay, consumption through Redis.
const REDIS_URL = process.env['TQ_REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379/7'
const schema = testSchema('tq_outbox_conf')
const namespace = `tq-outbox-conf-${randomUUID().slice(0, 8)}`
const pool = testPool(4)
const raw = new Redis(REDIS_URL)

afterAll(async () => {
  const keys = await raw.keys(`${namespace}:*`)
  if (keys.length > 0) await raw.del(...keys)
  await raw.quit()
  await dropSchema(pool, schema)
  await pool.end()
})

brokerConformanceSuite({
  name: 'OutboxBroker → RedisBroker',
  createBroker: ({ middleware }) =>
    new OutboxBroker({
      connectionString: PG_URL,
      schema,
      middleware,
      target: new RedisBroker({ url: REDIS_URL, namespace, middleware: [] }),
    }),
  putRaw: async (_broker, queueName, body) => {
    const id = randomUUID()
    await raw.hset(`${namespace}:${queueName}.msgs`, id, Buffer.from(body))
    await raw.rpush(`${namespace}:${queueName}`, id)
  },
  deadLetters: async (broker, queueName) =>
    (await ((broker as OutboxBroker).target as RedisBroker).deadLetters(queueName)).map((d) => d.body),
})
