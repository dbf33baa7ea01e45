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
