import { afterAll } from 'vitest'
import { adminConformanceSuite } from '@tq/core/testing'
import { RedisBroker } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const namespace = uniqueNamespace('admin')
const raw = rawClient()

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await raw.quit()
})

adminConformanceSuite({
  name: 'RedisBroker',
  createBroker: ({ middleware }) => new RedisBroker({ url: REDIS_URL, namespace, middleware }),
})
