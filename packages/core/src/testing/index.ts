export { brokerConformanceSuite } from './conformance.ts'
export type { BrokerConformanceOptions } from './conformance.ts'
export { Ledger, createCapturingLogger, deferred, freePort, rejection, uniqueQueueName, waitFor } from './helpers.ts'
