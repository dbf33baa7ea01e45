import { afterAll } from 'vitest'
import { adminConformanceSuite } from '@tq/core/testing'
import { RabbitmqBroker } from '../src/index.ts'
import { AMQP_URL, RawAmqp } from './helpers.ts'

const raw = new RawAmqp()
afterAll(() => raw.close())

adminConformanceSuite({
  name: 'RabbitmqBroker',
  createBroker: ({ middleware }) =>
    new RabbitmqBroker({ url: AMQP_URL, middleware, connectionName: 'tq-test-admin', reconnectDelay: 20 }),
  cleanup: async (broker) => {
    const queues = [...broker.getDeclaredQueues()]
    await broker.close()
    await raw.deleteTopology(...queues)
  },
})
