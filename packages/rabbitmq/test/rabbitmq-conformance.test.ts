import { afterAll } from 'vitest'
import { brokerConformanceSuite } from '@tq/core/testing'
import { RabbitmqBroker } from '../src/index.ts'
import { AMQP_URL, RawAmqp, deadLetterBodies } from './helpers.ts'

const raw = new RawAmqp()
afterAll(() => raw.close())

brokerConformanceSuite({
  name: 'RabbitmqBroker',
  createBroker: ({ middleware }) =>
    new RabbitmqBroker({ url: AMQP_URL, middleware, connectionName: 'tq-test-conformance', reconnectDelay: 20 }),
  // A foreign producer publishes to queues that exist (a worker or a deploy step declared them).
  putRaw: async (broker, queueName, body) => {
    await (broker as RabbitmqBroker).assertQueue(queueName)
    await raw.publish(queueName, body)
  },
  deadLetters: (_broker, queueName) => deadLetterBodies(raw, queueName),
  cleanup: async (broker) => {
    const queues = [...broker.getDeclaredQueues()]
    await broker.close()
    await raw.deleteTopology(...queues)
  },
})
