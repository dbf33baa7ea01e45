// The option and value types of the Broker template (broker.ts re-exports them).
import type { Encoder } from './encoder.ts'
import type { Logger } from './logger.ts'
import type { Message } from './message.ts'
import type { Middleware } from './middleware/middleware.ts'

export interface BrokerOptions {
  /** The middleware stack; defaults to `defaultMiddleware()` (AgeLimit, TimeLimit, ShutdownNotifications, Callbacks, Pipelines, Retries). */
  middleware?: Middleware[]
  logger?: Logger
  /** The encoder for this broker's messages; defaults to the global `getEncoder()`. */
  encoder?: Encoder
}

export interface EnqueueOptions {
  /** Milliseconds to wait before the message becomes due. */
  delay?: number
  /**
   * Enqueue inside this open database transaction: the message is invisible until the
   * transaction commits and never delivered if it rolls back. Only brokers that store messages in
   * that database honour it (`PostgresBroker`, `OutboxBroker` from `@tq/postgres`, which make
   * executors with `fromPg(client)`, `fromKnex(trx)`, …); every other broker refuses it with
   * `TransactionUnsupportedError` rather than sending outside the transaction.
   */
  transaction?: TransactionExecutor
}

/**
 * One open transaction of the application's own database connection, as a broker that enqueues
 * into that database uses it: each call runs one statement (`$1`-style parameters) on the
 * connection that holds the transaction. `@tq/postgres` makes them from the common client
 * libraries (`fromPg`, `fromPostgresJs`, `fromKnex`, `fromKysely`, `fromDrizzle`, `fromPrisma`).
 */
export interface TransactionExecutor {
  /** Run one statement inside the transaction; resolves with the rows it returned. */
  query(text: string, params: readonly unknown[]): Promise<{ rows: ReadonlyArray<Record<string, unknown>> }>
  /** What the executor wraps, for error messages (`pg client`, `knex transaction`, …). */
  readonly kind?: string
}

/** What the enqueue template hands a broker's `transmit` besides the messages. */
export interface TransmitOptions {
  /** The caller's transaction, on a broker that accepts transactions (`acceptsTransactions`). */
  transaction?: TransactionExecutor | undefined
}

export interface JoinOptions {
  /** Milliseconds to wait before throwing `QueueJoinTimeoutError`. Unlimited by default. */
  timeout?: number
}

/**
 * A message on its way out, handed to a broker's transport step (`transmit`): the enqueue hooks
 * ran, `message` is final (on the delay queue with its `eta` when delayed) and `body` is its
 * encoding.
 */
export interface OutgoingMessage {
  readonly message: Message
  readonly body: Uint8Array
  /** The canonical queue (`q` for `q` and `q.DQ`). */
  readonly canonical: string
  /** The delay the message was sent with (ms), if any. */
  readonly delay: number | undefined
}

/**
 * How many messages a queue holds, as the broker counts them (approximate on SQS; RabbitMQ
 * cannot count delivered, unacknowledged ones).
 */
export interface QueueCounts {
  /** Waiting in the queue, ready to be delivered. */
  ready: number
  /** In the delay queue (not yet due, or due and not yet moved). */
  delayed: number
  /** Delivered and not yet acked or nacked; `undefined` where the broker cannot tell. */
  running: number | undefined
  /** In the dead-letter queue. */
  dead: number
}
