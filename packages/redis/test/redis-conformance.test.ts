import { randomUUID } from 'node:crypto'
import { afterAll } from 'vitest'
import { brokerConformanceSuite } from '@tq/core/testing'
import { RedisBroker } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, putRaw, rawClient, uniqueNamespace } from './helpers.ts'

const namespace = uniqueNamespace('conformance')
const raw = rawClient()

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await raw.quit()
})

brokerConformanceSuite({
  name: 'RedisBroker',
  createBroker: ({ middleware }) => new RedisBroker({ url: REDIS_URL, namespace, middleware }),
  putRaw: (_broker, queueName, body) => putRaw(raw, namespace, queueName, randomUUID(), body),
  deadLetters: async (broker, queueName) => (await (broker as RedisBroker).deadLetters(queueName)).map((d) => d.body),
  messageCount: 2000,
})
