import type { ScheduleInfo } from '../scheduler/scheduler.ts'
import type { Broker, QueueCounts } from '../broker.ts'
import { ConfigurationError, InvalidArgumentError, MessageNotFoundError } from '../errors.ts'
import { redrivenMessage } from '../adapter/redrive.ts'
import { Message } from '../message.ts'
import { qName } from '../queue-names.ts'
import {
  FINAL_STATES,
  type MessageState,
  type TrackedMessage,
  type TrackingBackend,
  type TrackingPage,
  type ThroughputCount,
  type TrackingQuery,
  type WorkerHeartbeat,
} from '../tracking/backend.ts'
import { uniqueKeyName } from '../tracking/control.ts'
import { Tracking } from '../tracking/middleware.ts'

export interface AdminOptions {
  broker: Broker
  /**
   * The tracking records to list and search (the `Tracking` middleware or its backend). Default:
   * the broker's `Tracking` middleware, if it has one.
   */
  tracking?: Tracking | TrackingBackend
}

/** What `Admin.cancel()` did. */
export interface CancelResult {
  messageId: string
  /** False when the message had already finished: nothing was changed. */
  cancelled: boolean
  /** The state the message was in when the cancel was asked for. */
  state: MessageState
}

const DAY = 86_400_000

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
  /** The middleware, when Admin found or was given it: its pending records are written before a read. */
  readonly #middleware: Tracking | undefined
  /** How long a cancel is kept: the Tracking middleware's retention, else 7 days. */
  readonly #retention: number

  constructor(options: AdminOptions) {
    this.broker = options.broker
    const tracking = options.tracking ?? options.broker.middleware.find((m) => m instanceof Tracking)
    this.#tracking = tracking instanceof Tracking ? tracking.backend : tracking
    this.#middleware = tracking instanceof Tracking ? tracking : undefined
    this.#retention = tracking instanceof Tracking ? tracking.retention : 7 * DAY
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
    const backend = this.#backend('list messages')
    await this.#middleware?.flush()
    return backend.list(query)
  }

  /** One tracked message, or `undefined` if tracking does not know it. */
  async message(messageId: string): Promise<TrackedMessage | undefined> {
    checkId(messageId)
    const backend = this.#backend('read a message')
    await this.#middleware?.flush()
    return backend.get(messageId)
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

  /**
   * Cancel a message, on whichever worker process gets it: a queued, delayed or retrying one is
   * recorded `cancelled` now and skipped (acked, never run) when it is delivered; a running one
   * has its actor's `AbortSignal` fired with a `CancelledError` and is not retried. A message
   * that already finished is left as it is (`cancelled: false`). Throws `MessageNotFoundError`
   * for an id tracking does not know.
   */
  async cancel(messageId: string): Promise<CancelResult> {
    const record = await this.#record(messageId, 'cancel a message')
    if (FINAL_STATES.has(record.state)) return { messageId, cancelled: false, state: record.state }
    const backend = this.#backend('cancel a message')
    await backend.requestCancel(messageId, 'cancel', this.#retention)
    if (record.state !== 'running') {
      await backend.write([{ kind: 'state', at: Date.now(), messageId, state: 'cancelled' }], this.#retention)
      await this.#releaseUnique(record)
    }
    return { messageId, cancelled: true, state: record.state }
  }

  /**
   * Forget a message: its record goes, and a message still waiting (or running) is cancelled so
   * it never runs (brokers cannot take one message out of a queue). Resolves false for an id
   * tracking does not know.
   */
  async delete(messageId: string): Promise<boolean> {
    checkId(messageId)
    const backend = this.#backend('delete a message')
    await this.#middleware?.flush()
    const record = await backend.get(messageId)
    if (!record) return false
    if (!FINAL_STATES.has(record.state)) {
      await backend.requestCancel(messageId, 'delete', this.#retention)
      await this.#releaseUnique(record)
    }
    await backend.delete(messageId)
    return true
  }

  /**
   * Send a finished message (failed, dead, cancelled, skipped or succeeded) again, from the
   * encoded copy tracking kept: same id, due now, its retry count reset. Resolves with the
   * message as enqueued. Throws `MessageNotFoundError` for an id tracking does not know and
   * `InvalidArgumentError` for a message that has not finished (it would run twice).
   */
  async retry(messageId: string): Promise<Message> {
    const record = await this.#record(messageId, 'retry a message')
    if (!FINAL_STATES.has(record.state)) {
      throw new InvalidArgumentError(
        `Message ${messageId} is ${record.state}: only a finished message can be retried (cancel it first)`,
      )
    }
    if (!record.body) {
      throw new MessageNotFoundError(messageId, 'tracking has no encoded copy of it to send again')
    }
    const message = redrivenMessage(Message.decode(record.body, this.broker.encoder))
    // A cancel kept for the id would skip the new delivery.
    await this.#backend('retry a message').clearCancel(messageId)
    return this.broker.enqueue(message)
  }

  /**
   * Attempts finished per minute and queue over the last `minutes` (default 60, at most 120),
   * oldest first, as the workers with `Tracking` report them with their heartbeats (a few
   * seconds behind). Minutes with nothing finished have no entry.
   */
  async throughput(options: { minutes?: number } = {}): Promise<ThroughputCount[]> {
    const minutes = options.minutes ?? 60
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 120) {
      throw new InvalidArgumentError(`minutes must be an integer from 1 to 120, got ${String(minutes)}`)
    }
    return this.#backend('count throughput').throughput(Date.now() - minutes * 60_000)
  }

  /** The workers whose heartbeats are current (each worker with `Tracking` sends them), by id. */
  /** The schedules of the broker's schedulers (`new Scheduler({ broker, … })`), with their next and last runs. */
  async schedules(): Promise<ScheduleInfo[]> {
    const lists = await Promise.all([...this.broker.schedulers].map((scheduler) => scheduler.list()))
    return lists.flat()
  }

  async workers(): Promise<WorkerHeartbeat[]> {
    return this.#backend('list workers').workers()
  }

  async #record(messageId: string, what: string): Promise<TrackedMessage> {
    checkId(messageId)
    const backend = this.#backend(what)
    // What this process sent within the flush interval is readable too.
    await this.#middleware?.flush()
    const record = await backend.get(messageId)
    if (!record) throw new MessageNotFoundError(messageId)
    return record
  }

  /** A cancelled or deleted message no longer holds its unique key. */
  async #releaseUnique(record: TrackedMessage): Promise<void> {
    const key = record.options['uniqueKey']
    if (typeof key !== 'string' || key === '') return
    await this.#backend('release a unique key').releaseUnique([
      { key: uniqueKeyName(record.actorName, key), messageId: record.messageId },
    ])
  }

  #backend(what: string): TrackingBackend {
    if (this.#tracking) return this.#tracking
    throw new ConfigurationError(
      `Admin cannot ${what} without tracking: add the Tracking middleware to the broker ` +
        '(broker.addMiddleware(new Tracking({ backend }))) or pass { tracking } to Admin',
    )
  }
}

function checkId(messageId: unknown): asserts messageId is string {
  if (typeof messageId !== 'string' || messageId === '') throw new InvalidArgumentError('A message id is needed')
}
