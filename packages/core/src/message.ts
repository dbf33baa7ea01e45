import { randomUUID } from 'node:crypto'
import { getEncoder, type Encoder } from './encoder.ts'
import { ConfigurationError, DecodeError, errorMessage } from './errors.ts'
import { fieldsFromWire, fieldsToWire, type MessageFields, type WireMessage } from './wire.ts'
import type { ResultBackend } from './results/backend.ts'
import type { TrackingBackend } from './tracking/backend.ts'

/**
 * Options a message can carry. Broker, Retries, Pipelines and group fields are listed; any
 * actor option can also be set per message, and unknown keys travel unchanged.
 */
export interface MessageOptions {
  /** Unix ms at which a delayed message becomes due (set by the broker on delayed enqueue). */
  eta?: number
  /** A delay (ms) to apply when this message is enqueued as a pipeline step. */
  delay?: number
  retries?: number
  traceback?: string
  requeueTimestamp?: number
  /** RabbitMQ message priority (higher first; needs `maxPriority` on the broker). */
  brokerPriority?: number
  maxRetries?: number | null
  minBackoff?: number
  maxBackoff?: number
  timeLimit?: number
  maxAge?: number
  notifyShutdown?: boolean
  onSuccess?: string
  onFailure?: string
  onRetryExhausted?: string
  storeResults?: boolean
  resultTtl?: number
  pipeIgnore?: boolean
  pipeTarget?: MessageFields
  groupCompletionUuid?: string
  groupCompletionCallbacks?: MessageFields[]
  [option: string]: unknown
}

export interface MessageInit {
  queueName: string
  actorName: string
  args?: unknown[]
  kwargs?: Record<string, unknown>
  options?: MessageOptions
  messageId?: string
  messageTimestamp?: number
}

export interface GetResultOptions {
  /** The backend to read from; defaults to the global broker's `Results` backend. */
  backend?: ResultBackend
  /** Wait for the result instead of failing with `ResultMissingError`. */
  block?: boolean
  /** How long a blocking read waits, in ms (default 10 000). */
  timeout?: number
}

/**
 * A message to an actor: Dramatiq's seven fields. `R` is the actor's result type, so
 * `getResult()` is typed by the actor that built the message.
 */
export class Message<R = unknown> implements MessageFields {
  readonly queueName: string
  readonly actorName: string
  readonly args: unknown[]
  readonly kwargs: Record<string, unknown>
  /** Mutable: middleware record state here (Retries writes `retries`, …). */
  readonly options: MessageOptions
  readonly messageId: string
  /** Unix ms at which the message was first created. Kept across retries. */
  readonly messageTimestamp: number
  /** Type-only marker for the result type. */
  declare readonly __result?: R

  constructor(init: MessageInit) {
    this.queueName = init.queueName
    this.actorName = init.actorName
    this.args = init.args ?? []
    this.kwargs = init.kwargs ?? {}
    this.options = init.options ?? {}
    this.messageId = init.messageId ?? randomUUID()
    this.messageTimestamp = init.messageTimestamp ?? Date.now()
  }

  /** The fields as a plain object. Shallow, like Dramatiq's: `options` is the same object. */
  asDict(): MessageFields {
    return {
      queueName: this.queueName,
      actorName: this.actorName,
      args: this.args,
      kwargs: this.kwargs,
      options: this.options,
      messageId: this.messageId,
      messageTimestamp: this.messageTimestamp,
    }
  }

  /** The message as Dramatiq's wire dict (snake_case keys and option names). */
  toWire(): WireMessage {
    return fieldsToWire(this)
  }

  /** A copy with `attrs` replaced; `options` are merged (old ∪ new), the rest replaced. */
  copy(attrs: Partial<MessageInit> = {}): Message<R> {
    // Field by field rather than spreading asDict(): every Redis enqueue makes one copy. A field
    // given as undefined still falls to the constructor's default, as with a spread.
    return new Message<R>({
      queueName: 'queueName' in attrs ? attrs.queueName : this.queueName,
      actorName: 'actorName' in attrs ? attrs.actorName : this.actorName,
      args: 'args' in attrs ? attrs.args : this.args,
      kwargs: 'kwargs' in attrs ? attrs.kwargs : this.kwargs,
      options: { ...this.options, ...attrs.options },
      messageId: 'messageId' in attrs ? attrs.messageId : this.messageId,
      messageTimestamp: 'messageTimestamp' in attrs ? attrs.messageTimestamp : this.messageTimestamp,
    })
  }

  encode(encoder: Encoder = getEncoder()): Uint8Array {
    return encoder.encode(this.toWire() as unknown as Record<string, unknown>)
  }

  /** Decode bytes into a message. Throws `DecodeError` naming what is wrong. */
  static decode(bytes: Uint8Array, encoder: Encoder = getEncoder()): Message {
    try {
      return new Message(fieldsFromWire(encoder.decode(bytes)))
    } catch (error) {
      // Anything else (a stack overflow on absurdly nested pipe_targets, an encoder that
      // throws its own errors) is still an undecodable body: callers dead-letter on DecodeError.
      if (error instanceof DecodeError) throw error
      throw new DecodeError(`Message body could not be decoded: ${errorMessage(error)}`, bytes, error)
    }
  }

  /** Build a message from a wire dict (as found in `pipe_target` or a callback's arguments). */
  static fromWire(dict: unknown): Message {
    return new Message(fieldsFromWire(dict))
  }

  /** Build a message from camelCase fields (as `asDict()` returns them). */
  static fromFields<R = unknown>(fields: MessageFields): Message<R> {
    return new Message<R>(fields)
  }

  /** Read this message's result from a result backend. */
  async getResult(options: GetResultOptions = {}): Promise<R> {
    // Loaded here, not at the top: global.ts imports StubBroker, which needs the Broker class,
    // whose default middleware need Message — a static import would make that a cycle.
    const backend = options.backend ?? (await import('./global.ts')).getBroker().getResultBackend()
    return (await backend.getResult(this, options)) as R
  }

  /**
   * The last progress this message's actor reported with `setProgress()`, from tracking
   * (`undefined` if none, or if tracking does not know the message). `backend` defaults to the
   * global broker's `Tracking` middleware's; without one, `ConfigurationError`.
   */
  async getProgress(options: { backend?: TrackingBackend } = {}): Promise<unknown> {
    let backend = options.backend
    if (!backend) {
      const broker = (await import('./global.ts')).getBroker()
      const { Tracking } = await import('./tracking/middleware.ts')
      const tracking = broker.middleware.find((m) => m instanceof Tracking)
      if (!tracking) {
        throw new ConfigurationError('getProgress() reads tracking: add the Tracking middleware, or pass { backend }')
      }
      backend = tracking.backend
    }
    return (await backend.get(this.messageId))?.progress
  }

  /** `actor(1, 2, k=v)` */
  toString(): string {
    const parts = this.args.map((a) => JSON.stringify(a))
    for (const [k, v] of Object.entries(this.kwargs)) parts.push(`${k}=${JSON.stringify(v)}`)
    return `${this.actorName}(${parts.join(', ')})`
  }
}

export type { MessageFields, WireMessage }
