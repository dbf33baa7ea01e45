import type { Broker, QueueCounts } from '../broker.ts'
import { ConfigurationError, InvalidArgumentError } from '../errors.ts'
import { qName } from '../queue-names.ts'
import type { TrackedMessage, TrackingBackend, TrackingPage, TrackingQuery } from '../tracking/backend.ts'
import { Tracking } from '../tracking/middleware.ts'

export interface AdminOptions {
  broker: Broker
  /**
   * The tracking records to list and search (the `Tracking` middleware or its backend). Default:
   * the broker's `Tracking` middleware, if it has one.
   */
  tracking?: Tracking | TrackingBackend
}

/** A queue and its counts, as the broker counts them. */
export interface QueueSummary extends QueueCounts {
  /** The canonical queue name. */
  name: string
}

/**
 * Operations on a running tq deployment, on any broker: the queues and their counts, the tracked
 * messages (listed, searched, read one by one) and purging a queue.
 *
 * ```ts
 * const admin = new Admin({ broker })
 * const backlog = (await admin.queues()).filter((queue) => queue.ready > 1000 || queue.dead > 0)
 * const failed = await admin.messages({ state: 'dead', limit: 20 })
 * ```
 */
export class Admin {
  readonly broker: Broker
  readonly #tracking: TrackingBackend | undefined

  constructor(options: AdminOptions) {
    this.broker = options.broker
    const tracking = options.tracking ?? options.broker.middleware.find((m) => m instanceof Tracking)
    this.#tracking = tracking instanceof Tracking ? tracking.backend : tracking
  }

  /** Whether messages can be listed (a tracking backend is at hand). */
  get tracking(): TrackingBackend | undefined {
    return this.#tracking
  }

  /** Every declared queue with its counts (broker-native), by name. */
  async queues(): Promise<QueueSummary[]> {
    const counts = this.broker.queueCounts?.bind(this.broker)
    if (!counts)
      throw new ConfigurationError(`${this.broker.constructor.name} cannot count its queues (no queueCounts())`)
    const names = [...this.broker.getDeclaredQueues()].sort()
    return Promise.all(names.map(async (name) => ({ name, ...(await counts(name)) })))
  }

  /** Tracked messages, newest first, filtered; pass a page's `cursor` back for the next one. */
  async messages(query: TrackingQuery = {}): Promise<TrackingPage> {
    return this.#backend('list messages').list(query)
  }

  /** One tracked message, or `undefined` if tracking does not know it. */
  async message(messageId: string): Promise<TrackedMessage | undefined> {
    if (typeof messageId !== 'string' || messageId === '')
      throw new InvalidArgumentError('message() needs a message id')
    return this.#backend('read a message').get(messageId)
  }

  /** Drop every message waiting in a queue and its delay queue. */
  async purge(queueName: string): Promise<void> {
    const canonical = qName(queueName)
    if (!this.broker.getDeclaredQueues().has(canonical)) {
      throw new InvalidArgumentError(`Queue ${JSON.stringify(canonical)} is not declared on this broker`)
    }
    await this.broker.flush(canonical)
  }

  /**
   * Send up to `limit` (default: all) dead letters of a queue back to it, each once, due now and
   * with its retry count reset; resolves with how many went back. Works without tracking on
   * every broker that can reach its dead letters (Redis, RabbitMQ, SQS, the StubBroker).
   */
  async redrive(queueName: string, options: { limit?: number } = {}): Promise<number> {
    const canonical = qName(queueName)
    if (!this.broker.getDeclaredQueues().has(canonical)) {
      throw new InvalidArgumentError(`Queue ${JSON.stringify(canonical)} is not declared on this broker`)
    }
    const limit = options.limit
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
      throw new InvalidArgumentError(`limit must be a positive integer, got ${String(limit)}`)
    }
    const redrive = this.broker.redriveDeadLetters?.bind(this.broker)
    if (!redrive) {
      throw new ConfigurationError(`${this.broker.constructor.name} cannot redrive its dead letters`)
    }
    return redrive(canonical, limit === undefined ? {} : { limit })
  }

  #backend(what: string): TrackingBackend {
    if (this.#tracking) return this.#tracking
    throw new ConfigurationError(
      `Admin cannot ${what} without tracking: add the Tracking middleware to the broker ` +
        '(broker.addMiddleware(new Tracking({ backend }))) or pass { tracking } to Admin',
    )
  }
}
