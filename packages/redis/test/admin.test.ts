import { afterAll } from 'vitest'
import { adminConformanceSuite } from '@tq/core/testing'
import { RedisBroker, RedisTrackingBackend } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const namespace = uniqueNamespace('admin')
const raw = rawClient()

const trackingPrefix = `tq-tracking-${namespace}`
let backends = 0

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await deleteNamespace(raw, trackingPrefix)
  await raw.quit()
})

adminConformanceSuite({
  name: 'RedisBroker',
  createBroker: ({ middleware }) => new RedisBroker({ url: REDIS_URL, namespace, middleware }),
})

// Tracking on Redis too: cancels cross connections on its pub/sub channel.
adminConformanceSuite({
  name: 'RedisBroker with RedisTrackingBackend',
  createBroker: ({ middleware }) => new RedisBroker({ url: REDIS_URL, namespace, middleware }),
  createTrackingBackend: () => new RedisTrackingBackend({ url: REDIS_URL, prefix: `${trackingPrefix}:${++backends}` }),
})
