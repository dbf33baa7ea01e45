import { StubBroker, type Broker } from '../src/index.ts'
import { brokerConformanceSuite } from '../src/testing/index.ts'

const stub = (broker: Broker): StubBroker => broker as StubBroker

brokerConformanceSuite({
  name: 'StubBroker',
  createBroker: ({ middleware }) => new StubBroker({ middleware }),
  putRaw: async (broker, queueName, body) => stub(broker).putRaw(queueName, body),
  deadLetters: async (broker, queueName) => stub(broker).deadLetteredBodies(queueName),
})
