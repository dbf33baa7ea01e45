export { brokerConformanceSuite } from './conformance.ts'
export type { BrokerConformanceOptions } from './conformance.ts'
export { Ledger, createCapturingLogger, deferred, uniqueQueueName, waitFor } from './helpers.ts'
