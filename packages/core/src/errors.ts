/**
 * The tq error hierarchy. It mirrors Dramatiq's exceptions one to one (with an `Error` suffix),
 * and every class carries a stable `code` so callers can branch without `instanceof`.
 *
 * `instanceof` still works across two copies of `@tq/core` in one process: every `TqError`
 * is branded with a registry symbol and each class checks the brand plus its code set.
 */

const BRAND: unique symbol = Symbol.for('@tq/error') as never

/** Every code a tq error can carry. Codes are stable across releases. */
export const ErrorCode = {
  TQ_ERROR: 'TQ_ERROR',
  DECODE: 'TQ_DECODE',
  BROKER: 'TQ_BROKER',
  ACTOR_NOT_FOUND: 'TQ_ACTOR_NOT_FOUND',
  QUEUE_NOT_FOUND: 'TQ_QUEUE_NOT_FOUND',
  BROKER_CONNECTION: 'TQ_BROKER_CONNECTION',
  CONNECTION_FAILED: 'TQ_CONNECTION_FAILED',
  CONNECTION_CLOSED: 'TQ_CONNECTION_CLOSED',
  BROKER_CLOSED: 'TQ_BROKER_CLOSED',
  QUEUE_JOIN_TIMEOUT: 'TQ_QUEUE_JOIN_TIMEOUT',
  RATE_LIMIT_EXCEEDED: 'TQ_RATE_LIMIT_EXCEEDED',
  RETRY: 'TQ_RETRY',
  RESULT: 'TQ_RESULT',
  RESULT_TIMEOUT: 'TQ_RESULT_TIMEOUT',
  RESULT_MISSING: 'TQ_RESULT_MISSING',
  RESULT_FAILURE: 'TQ_RESULT_FAILURE',
  INVALID_ARGUMENT: 'TQ_INVALID_ARGUMENT',
  CONFIGURATION: 'TQ_CONFIGURATION',
  MESSAGE_TOO_LARGE: 'TQ_MESSAGE_TOO_LARGE',
  SKIP_MESSAGE: 'TQ_SKIP_MESSAGE',
  TIME_LIMIT_EXCEEDED: 'TQ_TIME_LIMIT_EXCEEDED',
  SHUTDOWN: 'TQ_SHUTDOWN',
  CANCELLED: 'TQ_CANCELLED',
  MESSAGE_NOT_FOUND: 'TQ_MESSAGE_NOT_FOUND',
  TRANSACTION_UNSUPPORTED: 'TQ_TRANSACTION_UNSUPPORTED',
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

export interface TqErrorOptions {
  cause?: unknown
  /** Whether retrying the same operation may succeed (connection errors are, decode errors are not). */
  retryable?: boolean
}

/** The base of every error tq throws. */
export class TqError extends Error {
  /** Codes this class and its subclasses use; `instanceof` checks against it across package copies. */
  static readonly codes: readonly ErrorCode[] = Object.values(ErrorCode)
  readonly code: ErrorCode
  readonly retryable: boolean
  declare readonly [BRAND]: true

  constructor(message: string, code: ErrorCode = ErrorCode.TQ_ERROR, options: TqErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.retryable = options.retryable ?? false
    this.name = new.target.name
    Object.defineProperty(this, BRAND, { value: true, enumerable: false })
  }

  /** True for any tq error, from this copy of the package or another. */
  static is(value: unknown): value is TqError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // `this` is the class on the right of `instanceof`.
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true
    if (!TqError.is(value)) return false
    return (this as unknown as { codes: readonly ErrorCode[] }).codes.includes(value.code)
  }
}

/** A payload could not be decoded into a message. */
export class DecodeError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.DECODE]
  /** The bytes (or value) that failed to decode. */
  readonly data: unknown
  constructor(message: string, data?: unknown, cause?: unknown) {
    super(message, ErrorCode.DECODE, { cause })
    this.data = data
  }
}

/** Base for broker failures. */
export class BrokerError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [
    ErrorCode.BROKER,
    ErrorCode.ACTOR_NOT_FOUND,
    ErrorCode.QUEUE_NOT_FOUND,
    ErrorCode.BROKER_CONNECTION,
    ErrorCode.CONNECTION_FAILED,
    ErrorCode.CONNECTION_CLOSED,
    ErrorCode.BROKER_CLOSED,
    ErrorCode.MESSAGE_TOO_LARGE,
  ]
  constructor(message: string, code: ErrorCode = ErrorCode.BROKER, options: TqErrorOptions = {}) {
    super(message, code, options)
  }
}

/** A message names an actor this broker does not know. */
export class ActorNotFoundError extends BrokerError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.ACTOR_NOT_FOUND]
  readonly actorName: string
  constructor(actorName: string) {
    super(`Actor ${JSON.stringify(actorName)} is not declared on this broker`, ErrorCode.ACTOR_NOT_FOUND)
    this.actorName = actorName
  }
}

/** A queue was used before it was declared. */
export class QueueNotFoundError extends BrokerError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.QUEUE_NOT_FOUND]
  readonly queueName: string
  constructor(queueName: string) {
    super(`Queue ${JSON.stringify(queueName)} is not declared on this broker`, ErrorCode.QUEUE_NOT_FOUND)
    this.queueName = queueName
  }
}

/** A message is larger than the broker accepts. */
export class MessageTooLargeError extends BrokerError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.MESSAGE_TOO_LARGE]
  readonly size: number
  readonly limit: number
  constructor(size: number, limit: number, brokerName: string) {
    super(`Message of ${size} bytes exceeds the ${brokerName} limit of ${limit} bytes`, ErrorCode.MESSAGE_TOO_LARGE)
    this.size = size
    this.limit = limit
  }
}

/** The connection to the broker failed or was lost. Retryable. */
export class BrokerConnectionError extends BrokerError {
  static override readonly codes: readonly ErrorCode[] = [
    ErrorCode.BROKER_CONNECTION,
    ErrorCode.CONNECTION_FAILED,
    ErrorCode.CONNECTION_CLOSED,
    ErrorCode.BROKER_CLOSED,
  ]
  constructor(message: string, code: ErrorCode = ErrorCode.BROKER_CONNECTION, options: TqErrorOptions = {}) {
    super(message, code, { retryable: true, ...options })
  }
}

/** A connection could not be established. */
export class ConnectionFailedError extends BrokerConnectionError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.CONNECTION_FAILED]
  constructor(message: string, options: TqErrorOptions = {}) {
    super(message, ErrorCode.CONNECTION_FAILED, options)
  }
}

/** An established connection was closed. */
export class ConnectionClosedError extends BrokerConnectionError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.CONNECTION_CLOSED, ErrorCode.BROKER_CLOSED]
  constructor(message: string, options: TqErrorOptions = {}, code: ErrorCode = ErrorCode.CONNECTION_CLOSED) {
    super(message, code, options)
  }
}

/**
 * The broker was closed by `close()`: what was asked of it afterwards (an enqueue, a consumer)
 * cannot succeed. Not retryable — unlike a connection that dropped, nothing reopens it.
 */
export class BrokerClosedError extends ConnectionClosedError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.BROKER_CLOSED]
  constructor(brokerName: string, options: { cause?: unknown } = {}) {
    super(`This ${brokerName} is closed`, { ...options, retryable: false }, ErrorCode.BROKER_CLOSED)
  }
}

/** `broker.join()` did not see the queue drain in time. */
export class QueueJoinTimeoutError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.QUEUE_JOIN_TIMEOUT]
  readonly queueName: string
  constructor(queueName: string, timeout: number) {
    super(`Queue ${JSON.stringify(queueName)} did not drain within ${timeout} ms`, ErrorCode.QUEUE_JOIN_TIMEOUT)
    this.queueName = queueName
  }
}

/** A rate limiter is full. Thrown inside an actor, it is retried by `Retries` and logged at debug level. */
export class RateLimitExceededError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.RATE_LIMIT_EXCEEDED]
  constructor(message: string) {
    super(message, ErrorCode.RATE_LIMIT_EXCEEDED, { retryable: true })
  }
}

/**
 * Throw from an actor to ask for a retry without logging an error. With `delay` (ms), that
 * delay replaces the computed backoff.
 */
export class Retry extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.RETRY]
  readonly delay: number | undefined
  constructor(message = '', options: { delay?: number } = {}) {
    super(message, ErrorCode.RETRY, { retryable: true })
    this.delay = options.delay
  }
}

/** Base for result-backend errors. */
export class ResultError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [
    ErrorCode.RESULT,
    ErrorCode.RESULT_TIMEOUT,
    ErrorCode.RESULT_MISSING,
    ErrorCode.RESULT_FAILURE,
  ]
  constructor(message: string, code: ErrorCode = ErrorCode.RESULT, options: TqErrorOptions = {}) {
    super(message, code, options)
  }
}

/** A blocking result read did not see the result in time. */
export class ResultTimeoutError extends ResultError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.RESULT_TIMEOUT]
  constructor(message: string) {
    super(message, ErrorCode.RESULT_TIMEOUT)
  }
}

/** The result is not stored (not yet, never, or expired). */
export class ResultMissingError extends ResultError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.RESULT_MISSING]
  constructor(message: string) {
    super(message, ErrorCode.RESULT_MISSING)
  }
}

/** The actor failed; the backend holds its error type and message instead of a result. */
export class ResultFailureError extends ResultError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.RESULT_FAILURE]
  readonly origExcType: string
  readonly origExcMsg: string
  constructor(message: string, origExcType: string, origExcMsg: string) {
    super(message, ErrorCode.RESULT_FAILURE)
    this.origExcType = origExcType
    this.origExcMsg = origExcMsg
  }
}

/** An argument or option is invalid (bad queue name, unknown actor option, …). */
export class InvalidArgumentError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.INVALID_ARGUMENT]
  constructor(message: string, options: TqErrorOptions = {}) {
    super(message, ErrorCode.INVALID_ARGUMENT, options)
  }
}

/** tq is not set up the way an operation needs (no broker, no result backend, …). */
export class ConfigurationError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.CONFIGURATION, ErrorCode.TRANSACTION_UNSUPPORTED]
  constructor(message: string, options: TqErrorOptions = {}, code: ErrorCode = ErrorCode.CONFIGURATION) {
    super(message, code, options)
  }
}

/**
 * `enqueue(…, { transaction })` on a broker that cannot enqueue inside the caller's database
 * transaction (RabbitMQ, Redis, SQS, the StubBroker): nothing was sent. Use `PostgresBroker`, or
 * `OutboxBroker` in front of the broker, from `@tq/postgres`.
 */
export class TransactionUnsupportedError extends ConfigurationError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.TRANSACTION_UNSUPPORTED]
  constructor(brokerName: string) {
    super(
      `${brokerName} cannot enqueue inside a database transaction; nothing was sent. ` +
        'Send through a PostgresBroker, or an OutboxBroker in front of this broker (@tq/postgres)',
      {},
      ErrorCode.TRANSACTION_UNSUPPORTED,
    )
  }
}

/** Raised by a "before" middleware hook to stop a message from being processed. */
export class SkipMessage extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.SKIP_MESSAGE]
  constructor(message = 'Message skipped') {
    super(message, ErrorCode.SKIP_MESSAGE)
  }
}

/** The actor ran past its time limit. Its `AbortSignal` fired with this reason. */
export class TimeLimitExceededError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.TIME_LIMIT_EXCEEDED]
  constructor(message: string) {
    super(message, ErrorCode.TIME_LIMIT_EXCEEDED)
  }
}

/** The worker is shutting down. Actors with `notifyShutdown` see their `AbortSignal` fire with this reason. */
export class ShutdownError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.SHUTDOWN]
  constructor(message = 'Worker is shutting down') {
    super(message, ErrorCode.SHUTDOWN)
  }
}

/**
 * The message was cancelled (`admin.cancel(id)`): a running actor's `AbortSignal` fires with this
 * reason, and the message is acked as `cancelled`, never retried.
 */
export class CancelledError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.CANCELLED]
  readonly messageId: string
  constructor(messageId: string, message = `Message ${messageId} was cancelled`) {
    super(message, ErrorCode.CANCELLED, { retryable: false })
    this.messageId = messageId
  }
}

/** No message with this id is known (to tracking, for `Admin.retry()` / `cancel()`). */
export class MessageNotFoundError extends TqError {
  static override readonly codes: readonly ErrorCode[] = [ErrorCode.MESSAGE_NOT_FOUND]
  readonly messageId: string
  constructor(messageId: string, detail = 'tracking has no record of it (never tracked, or expired)') {
    super(`Message ${JSON.stringify(messageId)} is not known: ${detail}`, ErrorCode.MESSAGE_NOT_FOUND)
    this.messageId = messageId
  }
}

/** The class name of an error as Dramatiq reports it (`ValueError`, `TypeError`, …). */
export function errorTypeName(error: unknown): string {
  if (error instanceof Error) {
    // A subclass that does not set `name` inherits "Error": its class name is what Dramatiq reports.
    const ctor = error.constructor.name
    if (error.name === 'Error' && ctor && ctor !== 'Error') return ctor
    return error.name || ctor || 'Error'
  }
  return typeof error
}

/** The message of an error as `str(exc)` would give it. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message
  return String(error)
}
