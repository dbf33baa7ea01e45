import { randomUUID } from 'node:crypto'
import { afterAll } from 'vitest'
import { adminConformanceSuite } from '@tq/core/testing'
import { RedisTrackingBackend } from '@tq/redis'
import { RabbitmqBroker } from '../src/index.ts'
import { AMQP_URL, RawAmqp } from './helpers.ts'

const raw = new RawAmqp()
// Tracking on Redis, as in production (its cancel channel is Redis pub/sub).
const REDIS_URL = process.env['TQ_REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379/7'
const trackingPrefix = `tq-tracking-rabbitmq-admin-${randomUUID().slice(0, 8)}`
let backends = 0
afterAll(async () => {
  await raw.close()
  const cleanup = new RedisTrackingBackend({ url: REDIS_URL, prefix: trackingPrefix })
  const keys = await cleanup.client.keys(`${trackingPrefix}:*`)
  for (let i = 0; i < keys.length; i += 1000) await cleanup.client.del(...keys.slice(i, i + 1000))
  await cleanup.close()
})

adminConformanceSuite({
  name: 'RabbitmqBroker',
  createBroker: ({ middleware }) =>
    new RabbitmqBroker({ url: AMQP_URL, middleware, connectionName: 'tq-test-admin', reconnectDelay: 20 }),
  cleanup: async (broker) => {
    const queues = [...broker.getDeclaredQueues()]
    await broker.close()
    await raw.deleteTopology(...queues)
  },
  createTrackingBackend: () => new RedisTrackingBackend({ url: REDIS_URL, prefix: `${trackingPrefix}:${++backends}` }),
})
