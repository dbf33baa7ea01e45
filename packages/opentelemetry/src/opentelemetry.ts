import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api'
import { errorMessage, errorTypeName, qName, registerOptionName } from '@tq/core'
import type { Broker, Message, MessageProxy, Middleware, ProcessOutcome } from '@tq/core'

/** The message option that carries the trace context (camelCase in memory). */
export const TRACE_CONTEXT_OPTION = 'traceContext'
/**
 * Its name on the wire: `trace_context`, a dict of the propagator's fields (`traceparent`,
 * `tracestate`, …). Python Dramatiq keeps options it does not know and ignores them.
 */
export const TRACE_CONTEXT_WIRE_OPTION = 'trace_context'

const TRACER_NAME = '@tq/opentelemetry'

export interface OpenTelemetryOptions {
  /** Where spans go (default: the global tracer provider, as the OpenTelemetry SDK registers it). */
  tracerProvider?: TracerProvider
  /** `messaging.system` (default: from the broker class, e.g. `redis`, `rabbitmq`, `aws_sqs`, `stub`). */
  messagingSystem?: string
}

/** The spans of one delivery being processed. */
interface Processing {
  span: Span
  /** The context with the consumer span: the actor runs in it; a retry is sent from it. */
  context: Context
}

const KNOWN_SYSTEMS: Record<string, string> = { sqs: 'aws_sqs', amazonsqs: 'aws_sqs', awssqs: 'aws_sqs' }

/** `messaging.system` for a broker: its class name without `Broker`, lowercased (`RedisBroker` → `redis`; SQS → `aws_sqs`). */
export function messagingSystem(broker: Broker): string {
  const base = broker.constructor.name.replace(/Broker$/, '').toLowerCase() || 'tq'
  return KNOWN_SYSTEMS[base] ?? base
}

function carrierOf(options: Record<string, unknown>): Record<string, string> | undefined {
  const value = options[TRACE_CONTEXT_OPTION] ?? options[TRACE_CONTEXT_WIRE_OPTION]
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const carrier: Record<string, string> = {}
  for (const [key, field] of Object.entries(value)) if (typeof field === 'string') carrier[key] = field
  return Object.keys(carrier).length > 0 ? carrier : undefined
}

function setCarrier(options: Record<string, unknown>, carrier: Record<string, string>): void {
  delete options[TRACE_CONTEXT_WIRE_OPTION]
  if (Object.keys(carrier).length > 0) options[TRACE_CONTEXT_OPTION] = carrier
  else delete options[TRACE_CONTEXT_OPTION]
}

function numberOption(options: Record<string, unknown>, name: string): number {
  const value = options[name]
  return typeof value === 'number' && Number.isFinite(value) ? value : 0
}

/**
 * Traces messages with OpenTelemetry, following the messaging semantic conventions.
 *
 * - At enqueue, a `send <actor>` span (kind PRODUCER) is started and its context is written
 *   into the message's `traceContext` option (`trace_context` on the wire) through the global
 *   propagator (W3C `traceparent`/`tracestate` by default).
 * - At processing, a `process <actor>` span (kind CONSUMER) continues that context and wraps
 *   the actor call, so the spans the actor starts nest under it. A failure sets the span's
 *   status to ERROR and records the exception; the span ends when the message is acked or
 *   dead-lettered.
 * - Messages sent while processing — by the actor, a retry by `Retries`, the next step of a
 *   pipeline — continue the same trace.
 *
 * ```ts
 * const broker = new RedisBroker({ middleware: [...defaultMiddleware(), new OpenTelemetry()] })
 * ```
 */
export class OpenTelemetry implements Middleware {
  readonly actorOptions: readonly string[] = []
  readonly #tracer: Tracer | undefined
  readonly #system: string | undefined
  /** Producer spans, from beforeEnqueue to afterEnqueue. */
  readonly #sending = new WeakMap<Message, Span>()
  /** Consumer spans of the deliveries being processed, by delivery. */
  readonly #processing = new WeakMap<MessageProxy, Processing>()
  /** The same, by message id: a retry is a copy of the message, enqueued after the actor returned. */
  readonly #processingById = new Map<string, Processing>()
  /** Delayed messages held by this process: moving one to its queue is not a new send. */
  readonly #held = new Set<string>()

  constructor(options: OpenTelemetryOptions = {}) {
    registerOptionName(TRACE_CONTEXT_OPTION, TRACE_CONTEXT_WIRE_OPTION)
    this.#tracer = options.tracerProvider?.getTracer(TRACER_NAME)
    this.#system = options.messagingSystem
  }

  /** The tracer, looked up on every use (by default from the global provider, which may be registered after this middleware is built). */
  get #activeTracer(): Tracer {
    return this.#tracer ?? trace.getTracer(TRACER_NAME)
  }

  #attributes(broker: Broker, message: Message | MessageProxy, operation: 'send' | 'process'): Attributes {
    return {
      'messaging.system': this.#system ?? messagingSystem(broker),
      'messaging.destination.name': qName(message.queueName),
      'messaging.operation.type': operation,
      'messaging.operation.name': operation,
      'messaging.message.id': message.messageId,
      'tq.actor.name': message.actorName,
      'tq.message.retries': numberOption(message.options, 'retries'),
    }
  }

  /** The context a message sent now belongs to. */
  #parentFor(message: Message): Context {
    // A retry (same message id) is sent from the delivery that failed.
    const processing = this.#processingById.get(message.messageId)
    if (processing) return processing.context
    const active = context.active()
    if (trace.getSpan(active)) return active
    // Carried in the message already (the next step of a pipeline, or set by the caller).
    const carrier = carrierOf(message.options)
    return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : active
  }

  beforeEnqueue(broker: Broker, message: Message, delay: number | undefined): void {
    // A delayed message moving to its queue keeps the context it was sent with.
    if (this.#isMove(message)) return
    const parent = this.#parentFor(message)
    const attributes = this.#attributes(broker, message, 'send')
    if (delay !== undefined) attributes['tq.message.delay'] = delay
    const span = this.#activeTracer.startSpan(
      `send ${message.actorName}`,
      { kind: SpanKind.PRODUCER, attributes },
      parent,
    )
    const carrier: Record<string, string> = {}
    propagation.inject(trace.setSpan(parent, span), carrier)
    setCarrier(message.options, carrier)
    this.#sending.set(message, span)
  }

  afterEnqueue(_broker: Broker, message: Message): void {
    if (this.#isMove(message)) {
      this.#held.delete(message.messageId)
      return
    }
    const span = this.#sending.get(message)
    if (!span) return
    this.#sending.delete(message)
    span.end()
  }

  #isMove(message: Message): boolean {
    return this.#held.has(message.messageId) && message.options['eta'] === undefined
  }

  beforeDelayMessage(_broker: Broker, message: MessageProxy): void {
    this.#held.add(message.messageId)
  }

  beforeProcessMessage(broker: Broker, message: MessageProxy): void {
    this.#held.delete(message.messageId)
    const carrier = carrierOf(message.options)
    const parent = carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT
    const span = this.#activeTracer.startSpan(
      `process ${message.actorName}`,
      { kind: SpanKind.CONSUMER, attributes: this.#attributes(broker, message, 'process') },
      parent,
    )
    const processing = { span, context: trace.setSpan(parent, span) }
    this.#processing.set(message, processing)
    this.#processingById.set(message.messageId, processing)
    this.#carryIntoPipeline(message, processing.context)
  }

  /** The next step of a pipeline is sent after the actor returns: give it this delivery's context. */
  #carryIntoPipeline(message: MessageProxy, ctx: Context): void {
    const target = message.options['pipeTarget']
    if (typeof target !== 'object' || target === null) return
    const options = (target as { options?: unknown }).options
    if (typeof options !== 'object' || options === null) return
    const carrier: Record<string, string> = {}
    propagation.inject(ctx, carrier)
    setCarrier(options as Record<string, unknown>, carrier)
  }

  wrapActorCall(_broker: Broker, message: MessageProxy, call: () => Promise<unknown>): Promise<unknown> {
    const processing = this.#processing.get(message)
    return processing ? context.with(processing.context, call) : call()
  }

  afterProcessMessage(_broker: Broker, message: MessageProxy, outcome: ProcessOutcome): void {
    const processing = this.#processing.get(message)
    if (!processing || outcome.exception === undefined) return
    const error = outcome.exception
    const { span } = processing
    span.recordException(error instanceof Error ? error : errorMessage(error))
    span.setAttribute('error.type', errorTypeName(error))
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) })
  }

  afterSkipMessage(_broker: Broker, message: MessageProxy): void {
    this.#processing.get(message)?.span.setAttribute('tq.message.skipped', true)
  }

  afterAck(_broker: Broker, message: MessageProxy): void {
    this.#end(message, false)
  }

  afterNack(_broker: Broker, message: MessageProxy): void {
    this.#end(message, true)
  }

  #end(message: MessageProxy, deadLettered: boolean): void {
    const processing = this.#processing.get(message)
    if (!processing) return
    this.#processing.delete(message)
    if (this.#processingById.get(message.messageId) === processing) this.#processingById.delete(message.messageId)
    if (deadLettered) processing.span.setAttribute('tq.message.dead_lettered', true)
    processing.span.end()
  }

  afterWorkerShutdown(): void {
    this.#held.clear()
  }
}
