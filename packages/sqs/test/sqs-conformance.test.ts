import { afterAll } from 'vitest'
import { brokerConformanceSuite } from '@tq/core/testing'
import type { SqsBroker } from '../src/index.ts'
import { TIME_SCALE, deadLetterBodies, deleteQueues, newBroker, putRaw, rawClient, uniquePrefix } from './helpers.ts'

const raw = rawClient()
afterAll(() => raw.destroy())
const prefix = uniquePrefix('conf')

brokerConformanceSuite({
  name: 'SqsBroker',
  createBroker: ({ middleware }) => newBroker({ queuePrefix: prefix, middleware }),
  putRaw: (broker, queueName, body) => putRaw(raw, broker, queueName, body),
  deadLetters: (broker, queueName) => deadLetterBodies(raw, broker, queueName),
  cleanup: async (broker) => {
    await broker.close()
    await deleteQueues(raw, broker as SqsBroker)
  },
  timeScale: TIME_SCALE,
})
