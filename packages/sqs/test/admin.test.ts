import { afterAll } from 'vitest'
import { adminConformanceSuite } from '@tq/core/testing'
import { RedisTrackingBackend } from '@tq/redis'
import type { SqsBroker } from '../src/index.ts'
import { TIME_SCALE, deleteQueues, newBroker, rawClient, uniquePrefix } from './helpers.ts'

const raw = rawClient()
const prefix = uniquePrefix('admin')
// Tracking on Redis, as in production (its cancel channel is Redis pub/sub).
const REDIS_URL = process.env['TQ_REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379/7'
const trackingPrefix = `tq-tracking-sqs-${prefix}`
let backends = 0
afterAll(async () => {
  raw.destroy()
  const cleanup = new RedisTrackingBackend({ url: REDIS_URL, prefix: trackingPrefix })
  const keys = await cleanup.client.keys(`${trackingPrefix}:*`)
  for (let i = 0; i < keys.length; i += 1000) await cleanup.client.del(...keys.slice(i, i + 1000))
  await cleanup.close()
})

adminConformanceSuite({
  name: 'SqsBroker',
  createBroker: ({ middleware }) => newBroker({ queuePrefix: prefix, middleware }),
  cleanup: async (broker) => {
    await broker.close()
    await deleteQueues(raw, broker as SqsBroker)
  },
  timeScale: TIME_SCALE,
  createTrackingBackend: () => new RedisTrackingBackend({ url: REDIS_URL, prefix: `${trackingPrefix}:${++backends}` }),
})
