import { afterAll } from 'vitest'
import { adminConformanceSuite } from '@tq/core/testing'
import type { SqsBroker } from '../src/index.ts'
import { TIME_SCALE, deleteQueues, newBroker, rawClient, uniquePrefix } from './helpers.ts'

const raw = rawClient()
afterAll(() => raw.destroy())
const prefix = uniquePrefix('admin')

adminConformanceSuite({
  name: 'SqsBroker',
  createBroker: ({ middleware }) => newBroker({ queuePrefix: prefix, middleware }),
  cleanup: async (broker) => {
    await broker.close()
    await deleteQueues(raw, broker as SqsBroker)
  },
  timeScale: TIME_SCALE,
})
