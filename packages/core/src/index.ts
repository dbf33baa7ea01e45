// Actors and messages
export { actor } from './actor.ts'
export type {
  Actor,
  ActorMembers,
  ActorOptions,
  AnyActor,
  ErrorClass,
  MessageOptionsInput,
  MessageWithOptionsInput,
  MiddlewareOptions,
  SendWithOptionsInput,
} from './actor.ts'
export { Message } from './message.ts'
export type { GetResultOptions, MessageInit, MessageOptions } from './message.ts'
export { MessageProxy } from './message-proxy.ts'
export { fieldsFromWire, fieldsToWire, optionFromWire, optionToWire, registerOptionName } from './wire.ts'
export type { MessageFields, WireMessage } from './wire.ts'
export { dqName, qName, validateQueueName, xqName } from './queue-names.ts'

// Encoding
export { JSONEncoder, getEncoder, setEncoder } from './encoder.ts'
export type { Encoder } from './encoder.ts'

// Brokers
export { Broker } from './broker.ts'
export type {
  BrokerOptions,
  ConsumeOptions,
  Consumer,
  EnqueueOptions,
  JoinOptions,
  OutgoingMessage,
  QueueCounts,
  ReceiveOptions,
  TransactionExecutor,
  TransmitOptions,
} from './broker.ts'
export { StubBroker } from './brokers/stub-broker.ts'
export type { RejectedPayload, StubBrokerOptions } from './brokers/stub-broker.ts'
export { createBroker, getBroker, registerBroker, setBroker } from './global.ts'
export type { BrokerPlugin } from './global.ts'

// Worker
export { Worker } from './worker.ts'
export type { WorkerOptions, WorkerStats, WorkerStopOptions } from './worker.ts'

// Middleware contract
export type { HookName, Middleware, MiddlewareClass, ProcessOutcome } from './middleware/middleware.ts'

// Middleware (default stack and optional), results, composition and rate limits
export * from './middleware/index.ts'
export * from './results/index.ts'
export * from './tracking/index.ts'
export * from './admin/index.ts'
export * from './scheduler/index.ts'
export * from './composition/index.ts'
export * from './rate-limits/index.ts'

// Errors and logging
export {
  ActorNotFoundError,
  BrokerClosedError,
  BrokerConnectionError,
  BrokerError,
  CancelledError,
  ConfigurationError,
  ConnectionClosedError,
  ConnectionFailedError,
  DecodeError,
  ErrorCode,
  InvalidArgumentError,
  MessageNotFoundError,
  MessageTooLargeError,
  QueueJoinTimeoutError,
  QueueNotFoundError,
  RateLimitExceededError,
  ResultError,
  ResultFailureError,
  ResultMissingError,
  ResultTimeoutError,
  Retry,
  ShutdownError,
  SkipMessage,
  TimeLimitExceededError,
  TqError,
  TransactionUnsupportedError,
  errorMessage,
  errorTypeName,
} from './errors.ts'
export type { TqErrorOptions } from './errors.ts'
export { createLogger, errorMeta, noopLogger } from './logger.ts'
export type { LogEntry, LogLevel, Logger } from './logger.ts'

// Helpers for broker authors
export { Notifier, sleep } from './notifier.ts'
export { redactUrl } from './redact.ts'
