import { performance } from 'node:perf_hooks'
import { ConfigurationError, StubBroker, errorMeta, qName } from '@tq/core'
import type { Broker, Message, MessageProxy, Middleware, ProcessOutcome } from '@tq/core'
import {
  Counter,
  Gauge,
  Histogram,
  register as globalRegistry,
  type MetricObjectWithValues,
  type MetricValue,
  type Registry,
} from 'prom-client'
import { queueSizeReader, type QueueSizeReader } from './queue-size.ts'

/**
 * Upper bounds (ms) of `dramatiq_message_duration_milliseconds`, as Dramatiq's; prom-client adds
 * the `+Inf` bucket.
 */
export const DURATION_BUCKETS: readonly number[] = [
  5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, 30000, 60000, 600000, 900000,
]

export interface PrometheusOptions {
  /** Where the metrics are registered (default: prom-client's global `register`). */
  registry?: Registry
  /** Prefix of every metric name (default `'dramatiq_'`, so dashboards made for Dramatiq work). */
  prefix?: string
  /**
   * Export `<prefix>queue_size`, the messages waiting in each declared queue, read from the
   * broker at scrape time where the broker can tell (default true). See `QueueSizeCapable`.
   */
  queueSize?: boolean
}

type Labels = { queue_name: string; actor_name: string }
const LABEL_NAMES = ['queue_name', 'actor_name'] as const

function labelsOf(message: Message | MessageProxy): Labels {
  return { queue_name: qName(message.queueName), actor_name: message.actorName }
}

/**
 * Exports Dramatiq's metric set through prom-client, with the same names and the labels
 * `queue_name` (the canonical queue, never `.DQ`) and `actor_name`:
 *
 * | metric | type | moves when |
 * | --- | --- | --- |
 * | `dramatiq_messages_total` | counter | a message was processed (or skipped) |
 * | `dramatiq_message_errors_total` | counter | the actor failed |
 * | `dramatiq_message_retries_total` | counter | a retry was enqueued |
 * | `dramatiq_message_rejects_total` | counter | a message was dead-lettered (nacked) |
 * | `dramatiq_messages_inprogress` | gauge | a message is being processed |
 * | `dramatiq_delayed_messages_inprogress` | gauge | a delayed message is held until its eta |
 * | `dramatiq_message_duration_milliseconds` | histogram | processing time |
 * | `dramatiq_queue_size` | gauge | messages waiting in the queue (where the broker can tell) |
 *
 * ```ts
 * const registry = new Registry()
 * const broker = new RedisBroker({ middleware: [...defaultMiddleware(), new Prometheus({ registry })] })
 * await serveMetrics({ port: 9191, registry })
 * ```
 *
 * Under `tq worker --metrics-port`, the CLI merges every worker process's metrics (it asks
 * each process for `getMetricsAsJSON()`).
 */
export class Prometheus implements Middleware {
  readonly actorOptions: readonly string[] = []
  /** The registry the metrics live in. */
  readonly registry: Registry
  readonly prefix: string
  readonly #messages: Counter<keyof Labels>
  readonly #errors: Counter<keyof Labels>
  readonly #retries: Counter<keyof Labels>
  readonly #rejects: Counter<keyof Labels>
  readonly #inProgress: Gauge<keyof Labels>
  readonly #delayedInProgress: Gauge<keyof Labels>
  readonly #duration: Histogram<keyof Labels>
  readonly #queueSizeEnabled: boolean
  /** Start times of the messages being processed. */
  readonly #starts = new WeakMap<MessageProxy, number>()
  /** Delayed messages held in this process (by id): their move to the queue is not a new enqueue. */
  readonly #delayed = new Map<string, Labels>()
  #broker: Broker | undefined

  constructor(options: PrometheusOptions = {}) {
    this.registry = options.registry ?? globalRegistry
    this.prefix = options.prefix ?? 'dramatiq_'
    this.#queueSizeEnabled = options.queueSize ?? true
    const registers = [this.registry]
    const counter = (name: string, help: string): Counter<keyof Labels> =>
      this.#metric(name, Counter, () => new Counter({ name, help, labelNames: LABEL_NAMES, registers }))
    const gauge = (name: string, help: string): Gauge<keyof Labels> =>
      this.#metric(name, Gauge, () => new Gauge({ name, help, labelNames: LABEL_NAMES, registers }))
    const p = this.prefix
    this.#messages = counter(`${p}messages_total`, 'The total number of messages processed.')
    this.#errors = counter(`${p}message_errors_total`, 'The total number of errored messages.')
    this.#retries = counter(`${p}message_retries_total`, 'The total number of retried messages.')
    this.#rejects = counter(`${p}message_rejects_total`, 'The total number of dead-lettered messages.')
    this.#inProgress = gauge(`${p}messages_inprogress`, 'The number of messages in progress.')
    this.#delayedInProgress = gauge(`${p}delayed_messages_inprogress`, 'The number of delayed messages in memory.')
    const durationName = `${p}message_duration_milliseconds`
    this.#duration = this.#metric(
      durationName,
      Histogram,
      () =>
        new Histogram({
          name: durationName,
          help: 'The time spent processing messages.',
          labelNames: LABEL_NAMES,
          buckets: [...DURATION_BUCKETS],
          registers,
        }),
    )
  }

  /** A metric already in the registry under `name` (a second middleware on it shares it), or a new one. */
  #metric<M>(name: string, kind: abstract new (...args: never[]) => M, create: () => M): M {
    const existing: unknown = this.registry.getSingleMetric(name)
    if (existing === undefined) return create()
    if (existing instanceof kind) return existing
    throw new ConfigurationError(
      `The registry already has a metric named ${name} of another type; give Prometheus another prefix or registry`,
    )
  }

  /** Every metric of the registry as prom-client JSON (what the `tq worker` CLI merges across processes). */
  getMetricsAsJSON(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return this.registry.getMetricsAsJSON()
  }

  /** The registry's metrics in the text exposition format. */
  metrics(): Promise<string> {
    return this.registry.metrics()
  }

  // ---- broker sighting: the queue-size gauge needs to know the broker ----

  afterDeclareQueue(broker: Broker): void {
    this.#see(broker)
  }

  #see(broker: Broker): void {
    if (this.#broker) return
    this.#broker = broker
    if (!this.#queueSizeEnabled) return
    const read = queueSizeReader(broker)
    if (!read) {
      broker.logger.debug(
        `Prometheus: ${broker.constructor.name} cannot report queue sizes; no ${this.prefix}queue_size`,
      )
      return
    }
    this.#registerQueueSize(broker, read)
  }

  #registerQueueSize(broker: Broker, read: QueueSizeReader): void {
    const name = `${this.prefix}queue_size`
    if (this.registry.getSingleMetric(name)) return
    const logger = broker.logger.child({ component: 'prometheus' })
    new Gauge({
      name,
      help: 'The number of messages waiting in the queue (and its delay queue), as the broker reports it.',
      labelNames: ['queue_name'],
      registers: [this.registry],
      // Each process of a StubBroker has its own queues (sum them); a server broker's queues are
      // shared, and every process reports the same number (take the largest).
      aggregator: broker instanceof StubBroker ? 'sum' : 'max',
      async collect() {
        this.reset()
        for (const queue of broker.getDeclaredQueues()) {
          try {
            this.set({ queue_name: queue }, await read(queue))
          } catch (error) {
            logger.debug(`Could not read the size of queue ${queue}`, { queue, ...errorMeta(error) })
          }
        }
      },
    })
  }

  // ---- message hooks (Dramatiq's, plus an exact delayed-message gauge) ----

  afterEnqueue(broker: Broker, message: Message): void {
    this.#see(broker)
    const held = this.#delayed.get(message.messageId)
    if (held && message.options['eta'] === undefined) {
      // A delayed message moved to its queue: it leaves this process's memory; not a new retry.
      this.#delayed.delete(message.messageId)
      this.#delayedInProgress.dec(held)
      return
    }
    if ('retries' in message.options) this.#retries.inc(labelsOf(message))
  }

  beforeDelayMessage(_broker: Broker, message: MessageProxy): void {
    if (this.#delayed.has(message.messageId)) return
    const labels = labelsOf(message)
    this.#delayed.set(message.messageId, labels)
    this.#delayedInProgress.inc(labels)
  }

  beforeProcessMessage(_broker: Broker, message: MessageProxy): void {
    const held = this.#delayed.get(message.messageId)
    if (held) {
      this.#delayed.delete(message.messageId)
      this.#delayedInProgress.dec(held)
    }
    this.#inProgress.inc(labelsOf(message))
    this.#starts.set(message, performance.now())
  }

  afterProcessMessage(_broker: Broker, message: MessageProxy, outcome: ProcessOutcome): void {
    const labels = this.#finish(message)
    if (outcome.exception !== undefined) this.#errors.inc(labels)
  }

  afterSkipMessage(_broker: Broker, message: MessageProxy): void {
    this.#finish(message)
  }

  afterNack(_broker: Broker, message: MessageProxy): void {
    this.#rejects.inc(labelsOf(message))
  }

  afterWorkerShutdown(): void {
    // Delayed messages still held went back to the broker with the worker's stop.
    for (const labels of this.#delayed.values()) this.#delayedInProgress.dec(labels)
    this.#delayed.clear()
  }

  #finish(message: MessageProxy): Labels {
    const labels = labelsOf(message)
    this.#messages.inc(labels)
    const start = this.#starts.get(message)
    if (start !== undefined) {
      this.#starts.delete(message)
      this.#inProgress.dec(labels)
      this.#duration.observe(labels, performance.now() - start)
    }
    return labels
  }
}
