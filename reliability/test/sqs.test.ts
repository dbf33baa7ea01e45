// SQS: real `tq worker` processes against fauxqs, started from code on 127.0.0.1 (as
// packages/sqs's test setup does). visibilityTimeout 2 s, so a killed worker's messages come
// back within seconds. The connection-cut fault stops fauxqs (every connection drops) and starts
// it again on the same port with the same in-memory state, as an SQS endpoint outage would look.
// Hostile payloads over SQS's 256 KiB limit are refused at send by SQS itself.
import { brokerSuite } from '../src/suite.ts'
import { FauxqsServer, SqsTarget } from '../src/targets/sqs.ts'

const server = new FauxqsServer()

brokerSuite({
  name: 'sqs',
  makeTarget: () => new SqsTarget(server),
  cutLabel: 'server outage (fauxqs stopped 1 s, restarted on the same port)',
  setup: () => server.start(),
  teardown: () => server.stop(),
})
