import { StubBroker, qName, type Broker } from '../src/index.ts'
import { brokerConformanceSuite } from '../src/testing/index.ts'

const stub = (broker: Broker): StubBroker => broker as StubBroker

brokerConformanceSuite({
  name: 'StubBroker',
  createBroker: ({ middleware }) => new StubBroker({ middleware }),
  putRaw: async (broker, queueName, body) => stub(broker).putRaw(queueName, body),
  deadLetters: async (broker, queueName) => {
    const b = stub(broker)
    const proxies = [...(b.deadLettersByQueue.get(queueName) ?? []), ...(b.deadLettersByQueue.get(`${queueName}.DQ`) ?? [])]
    const rejected = b.rejected.filter((r) => qName(r.queueName) === queueName).map((r) => r.body)
    return [...proxies.map((p) => p.message.encode(b.encoder)), ...rejected]
  },
})
