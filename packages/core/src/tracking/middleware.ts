import { hostname } from 'node:os'
import { OutageLog } from '../adapter/outage-log.ts'
import type { Broker } from '../broker.ts'
import { CancelledError, InvalidArgumentError, SkipMessage, errorMessage, errorTypeName } from '../errors.ts'
import { errorMeta, noopLogger, type Logger } from '../logger.ts'
import { Message } from '../message.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { Middleware, ProcessOutcome } from '../middleware/middleware.ts'
import { qName } from '../queue-names.ts'
import type { Worker } from '../worker.ts'
import type { MessageState, TrackedAttempt, TrackingBackend, TrackingUpdate, UniqueClaim } from './backend.ts'
import { UNIQUE_OPTIONS, WorkerControl, heldUniqueKey, uniqueSpecOf } from './control.ts'
import type { ProgressSink } from './progress.ts'

export interface TrackingOptions {
  /** Where the records go: `StubTrackingBackend`, `RedisTrackingBackend` (@tq/redis), … */
  backend: TrackingBackend
  /** How long a record is kept after its last update, in ms (default 7 days). */
  retention?: number
  /**
   * Largest encoded message (bytes) whose args and kwargs are kept in its record (default
   * 64 KiB). Above it they are left out (`argsTruncated`); the encoded message is kept whole.
   */
  maxArgsBytes?: number
  /** This process in the records of the attempts it runs (default `<host>:<pid>`). */
  workerId?: string
  /**
   * Longest a tracking update waits to be written, in ms (default 50): the updates of that
   * window go in one `backend.write()`, and the start, end and outcome of an attempt that fall
   * in the same window are merged into one update. 0 writes once per event-loop turn.
   */
  flushInterval?: number
  /** Where write failures are logged (default: the broker's logger). */
  logger?: Logger
  /**
   * How often a worker sends its heartbeat (`Admin.workers()`), in ms (default 5000); a worker
   * is listed until three intervals pass without one.
   */
  heartbeatInterval?: number
}

/** A batch this large is written at once, without waiting for the interval. */
const MAX_BATCH = 1000

const DAY = 86_400_000

type AttemptUpdate = Extract<TrackingUpdate, { kind: 'attempt' }>
type ProgressUpdate = Extract<TrackingUpdate, { kind: 'progress' }>

/** An attempt this process is running (or has just run), until its message is settled. */
interface Running {
  proxy: MessageProxy
  attempt: TrackedAttempt
  /**
   * The attempt's last update while it still waits in the pending batch `batch`: the attempt's
   * end and its outcome are folded into it (one update instead of three). Unset once an enqueue
   * of the message came after it (the order of the two matters).
   */
  pending: AttemptUpdate | undefined
  /** The last progress update while it waits in the pending batch `batch` (only the last counts). */
  progress: ProgressUpdate | undefined
  batch: number
  failed: boolean
  /** Retries enqueued the message again while it ran: its record says `retrying` already. */
  retried: boolean
  /** It was cancelled while it ran (it failed with `CancelledError`). */
  cancelled: boolean
}

/**
 * Keeps a record of every message — queued, delayed, running, retrying, succeeded, failed,
 * dead, skipped — with its arguments, options, attempts and errors, in a `TrackingBackend`, so
 * messages can be listed, searched and re-sent on any broker (RabbitMQ and SQS cannot list a
 * queue). Records are written in batches: every update of one event-loop turn goes in one
 * `backend.write()` call, never one round trip per hook. Tracking is an index: a failed write
 * is logged (once per outage) and does not fail the message.
 *
 * Add it on producers and workers alike (the producer's side records the enqueue):
 *
 * ```ts
 * const tracking = new Tracking({ backend: new StubTrackingBackend() })
 * const broker = new StubBroker({ middleware: [...defaultMiddleware(), tracking] })
 * ```
 */
export class Tracking implements Middleware, ProgressSink {
  readonly actorOptions: readonly string[] = UNIQUE_OPTIONS
  readonly backend: TrackingBackend
  readonly retention: number
  readonly maxArgsBytes: number
  readonly workerId: string
  readonly #logger: Logger | undefined
  #outage: OutageLog | undefined
  readonly flushInterval: number
  #pending: TrackingUpdate[] = []
  /** The number of the pending batch (one more each time one is handed to the backend). */
  #batch = 0
  #timer: NodeJS.Timeout | undefined
  #scheduled = false
  /** Writes started and not finished, for `flush()`. */
  readonly #writing = new Set<Promise<void>>()
  readonly #running = new Map<string, Running>()
  /** Unique keys to release with the next write. */
  #releases: UniqueClaim[] = []
  readonly #control: WorkerControl
  #broker: Broker | undefined

  constructor(options: TrackingOptions) {
    this.backend = options.backend
    this.retention = options.retention ?? 7 * DAY
    if (!Number.isFinite(this.retention) || this.retention <= 0) {
      throw new InvalidArgumentError(
        `Tracking retention must be a positive number of ms, got ${String(this.retention)}`,
      )
    }
    this.maxArgsBytes = options.maxArgsBytes ?? 64 * 1024
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}`
    this.flushInterval = Math.max(0, options.flushInterval ?? 50)
    this.#logger = options.logger
    const heartbeatInterval = options.heartbeatInterval ?? 5000
    if (!Number.isFinite(heartbeatInterval) || heartbeatInterval <= 0) {
      throw new InvalidArgumentError(
        `Tracking heartbeatInterval must be a positive number of ms, got ${String(heartbeatInterval)}`,
      )
    }
    this.#control = new WorkerControl({
      backend: this.backend,
      retention: this.retention,
      workerId: this.workerId,
      heartbeatInterval,
      logger: () => (this.#logger ?? this.#broker?.logger ?? noopLogger).child({ component: 'tracking' }),
      running: (messageId) => {
        const running = this.#running.get(messageId)
        // Between its end and its settling an attempt is not aborted any more.
        return running?.attempt.finishedAt === undefined ? running?.proxy : undefined
      },
    })
  }

  /**
   * Deduplication, asked by the enqueue template for a message with a `uniqueKey`: claim the key
   * (atomically, in the backend) or resolve with the message holding it.
   */
  async claimUnique(broker: Broker, message: Message): Promise<Message | undefined> {
    const spec = uniqueSpecOf(broker, message)
    if (!spec) return undefined
    const holder = await this.backend.claimUnique(spec.key, spec.messageId, spec.ttl)
    if (holder === undefined) return undefined
    // The message holding the key, as tracking recorded it (else this one under the holder's id).
    const read = () => this.backend.get(holder).catch(() => undefined)
    let record = await read()
    if (!record) {
      // Sent from this process within the flush interval: its record is still pending here.
      await this.flush()
      record = await read()
    }
    if (record?.body) {
      try {
        return Message.decode(record.body, broker.encoder)
      } catch {
        // A record that does not decode: fall through to the copy.
      }
    }
    return message.copy({ messageId: holder })
  }

  async beforeWorkerBoot(broker: Broker, worker: Worker): Promise<void> {
    this.#broker ??= broker
    await this.#control.workerStarting(worker)
  }

  async afterWorkerBoot(_broker: Broker, worker: Worker): Promise<void> {
    await this.#control.workerStarted(worker)
  }

  afterEnqueue(broker: Broker, message: Message, _delay?: number, encoded?: Uint8Array, began?: number): void {
    // A cancelled delayed message moved to its queue by this worker: its record stays `cancelled`.
    if (this.#control.cancelOf(message.messageId)) return
    // The enqueue template hands over the bytes it sent; other paths (promotion, redrive) do not.
    const body = encoded ?? message.encode(broker.encoder)
    const eta = message.options.eta
    const retries = message.options.retries
    const count = typeof retries === 'number' ? retries : 0
    // Retries sends a message again with its retry count past the attempt that failed; the
    // producer's own enqueue of a message this process already runs (its publish confirmed
    // after the worker got it) has not.
    const running = this.#running.get(message.messageId)
    const again = running !== undefined && count >= running.attempt.number
    const retrying = again || (count > 0 && eta !== undefined)
    if (running) {
      if (again) running.retried = true
      // What the attempt reports from now on comes after this enqueue: not folded into an earlier update.
      running.pending = undefined
    }
    const fits = body.byteLength <= this.maxArgsBytes
    this.#push(broker, {
      kind: 'enqueued',
      // When the enqueue began: a worker may start the message before the publish is confirmed.
      at: began ?? Date.now(),
      messageId: message.messageId,
      actorName: message.actorName,
      queueName: qName(message.queueName),
      state: retrying ? 'retrying' : typeof eta === 'number' ? 'delayed' : 'queued',
      args: fits ? message.args : undefined,
      kwargs: fits ? message.kwargs : undefined,
      argsTruncated: !fits,
      options: { ...message.options },
      eta: typeof eta === 'number' ? eta : undefined,
      body,
    })
  }

  beforeProcessMessage(broker: Broker, proxy: MessageProxy): void {
    // Cancelled (admin.cancel) before it ran: acked unrun, recorded by afterSkipMessage.
    if (this.#control.cancelOf(proxy.messageId)) throw new SkipMessage(`Message ${proxy.messageId} was cancelled`)
    this.#broker ??= broker
    const unique = heldUniqueKey(proxy)
    if (unique?.until === 'start') this.#release(broker, unique.claim)
    const retries = proxy.options.retries
    const startedAt = Date.now()
    const attempt: TrackedAttempt = {
      number: (typeof retries === 'number' && retries > 0 ? retries : 0) + 1,
      workerId: this.workerId,
      startedAt,
    }
    const pending: AttemptUpdate = {
      kind: 'attempt',
      at: startedAt,
      messageId: proxy.messageId,
      attempt,
      state: 'running',
    }
    this.#running.set(proxy.messageId, {
      proxy,
      attempt,
      pending,
      progress: undefined,
      batch: this.#batch,
      failed: false,
      retried: false,
      cancelled: false,
    })
    proxy.progressSink = this
    this.#push(broker, pending)
  }

  /** `setProgress()` inside a running actor (`ProgressSink`). */
  reportProgress(proxy: MessageProxy, progress: unknown): void {
    const broker = this.#broker
    const running = this.#running.get(proxy.messageId)
    if (!broker || !running) return
    const at = Date.now()
    if (running.progress && running.batch === this.#batch) {
      running.progress.progress = progress
      running.progress.at = at
      return
    }
    const update: ProgressUpdate = { kind: 'progress', at, messageId: proxy.messageId, progress }
    this.#sameBatch(running)
    running.progress = update
    this.#push(broker, update)
  }

  /**
   * The attempt's pending updates belong to the pending batch: from an older one (written, or
   * being written) they are the backend's now, and the next change is an update of its own.
   */
  #sameBatch(running: Running): void {
    if (running.batch === this.#batch) return
    running.batch = this.#batch
    running.pending = undefined
    running.progress = undefined
  }

  /** Fold a change of the running attempt into its pending update, or push it as an update of its own. */
  #attemptUpdate(
    broker: Broker,
    running: Running,
    at: number,
    attempt: TrackedAttempt | undefined,
    state: MessageState | undefined,
  ): void {
    this.#sameBatch(running)
    const messageId = running.proxy.messageId
    const pending = running.pending
    if (pending) {
      // In place: a pending update is this middleware's own until #write hands it over.
      if (attempt) pending.attempt = attempt
      if (state) pending.state = state
      pending.at = at
      return
    }
    if (attempt) {
      const update: AttemptUpdate = { kind: 'attempt', at, messageId, attempt }
      if (state) update.state = state
      running.pending = update
      this.#push(broker, update)
    } else if (state) {
      this.#push(broker, { kind: 'state', at, messageId, state })
    }
  }

  afterProcessMessage(broker: Broker, proxy: MessageProxy, outcome: ProcessOutcome): void {
    const messageId = proxy.messageId
    const finishedAt = Date.now()
    const failed = outcome.exception !== undefined
    this.#control.count(proxy.queueName, failed, finishedAt)
    const running = this.#running.get(messageId)
    if (!running) return
    proxy.progressSink = undefined
    const started = running.attempt
    const finished: TrackedAttempt = {
      number: started.number,
      workerId: started.workerId,
      startedAt: started.startedAt,
      finishedAt,
    }
    if (failed) {
      running.failed = true
      const error = outcome.exception
      if (error instanceof CancelledError) running.cancelled = true
      finished.error = { type: errorTypeName(error), message: errorMessage(error) }
      if (error instanceof Error && error.stack !== undefined) finished.error.stack = error.stack
    }
    running.attempt = finished
    this.#attemptUpdate(broker, running, finishedAt, finished, undefined)
  }

  afterSkipMessage(broker: Broker, proxy: MessageProxy): void {
    this.#running.delete(proxy.messageId)
    this.#releaseHeld(broker, proxy)
    const cancel = this.#control.cancelOf(proxy.messageId)
    // A deleted message (admin.delete) leaves no record behind.
    if (cancel === 'delete') return
    const state = cancel === 'cancel' ? 'cancelled' : 'skipped'
    this.#push(broker, { kind: 'state', at: Date.now(), messageId: proxy.messageId, state })
  }

  afterAck(broker: Broker, proxy: MessageProxy): void {
    const running = this.#running.get(proxy.messageId)
    // Not run here (a delayed message moved to its queue, a skipped one): nothing to record.
    if (!running) return
    this.#running.delete(proxy.messageId)
    if (running.retried) return
    this.#releaseHeld(broker, proxy)
    if (running.cancelled && this.#control.cancelOf(proxy.messageId) === 'delete') return
    const state = running.cancelled ? 'cancelled' : running.failed ? 'failed' : 'succeeded'
    this.#attemptUpdate(broker, running, Date.now(), undefined, state)
  }

  afterNack(broker: Broker, proxy: MessageProxy): void {
    const running = this.#running.get(proxy.messageId)
    this.#running.delete(proxy.messageId)
    this.#releaseHeld(broker, proxy)
    if (running) this.#attemptUpdate(broker, running, Date.now(), undefined, 'dead')
    else this.#push(broker, { kind: 'state', at: Date.now(), messageId: proxy.messageId, state: 'dead' })
  }

  async afterWorkerShutdown(_broker: Broker, worker: Worker): Promise<void> {
    await this.#control.workerStopped(worker)
    await this.flush()
  }

  async beforeProcessShutdown(): Promise<void> {
    await this.flush()
  }

  /** Write what is pending now and wait for every write started so far. */
  async flush(): Promise<void> {
    this.#write()
    await Promise.all([...this.#writing])
  }

  /** Release the unique key of a message that finished (or was skipped), if it holds one until then. */
  #releaseHeld(broker: Broker, proxy: MessageProxy): void {
    const unique = heldUniqueKey(proxy)
    if (unique?.until === 'finish') this.#release(broker, unique.claim)
  }

  #release(broker: Broker, claim: UniqueClaim): void {
    this.#releases.push(claim)
    this.#schedule(broker)
  }

  #push(broker: Broker, update: TrackingUpdate): void {
    this.#pending.push(update)
    if (this.#pending.length >= MAX_BATCH) return this.#write()
    this.#schedule(broker)
  }

  #schedule(broker: Broker): void {
    if (this.#scheduled) return
    this.#scheduled = true
    this.#outage ??= new OutageLog((this.#logger ?? broker.logger).child({ component: 'tracking' }))
    if (this.flushInterval === 0) setImmediate(() => this.#write())
    else {
      this.#timer = setTimeout(() => this.#write(), this.flushInterval)
      this.#timer.unref()
    }
  }

  #write(): void {
    this.#scheduled = false
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#releases.length > 0) this.#writeReleases()
    if (this.#pending.length === 0) return
    const batch = this.#pending
    this.#pending = []
    this.#batch++
    const outage = this.#outage
    const written: Promise<void> = this.backend
      .write(batch, this.retention)
      .then(
        () => outage?.recovered('Tracking writes go through again'),
        (error: unknown) =>
          outage?.failed(`Could not write ${batch.length} tracking update(s); they are dropped`, errorMeta(error)),
      )
      .finally(() => this.#writing.delete(written))
    this.#writing.add(written)
  }

  #writeReleases(): void {
    const releases = this.#releases
    this.#releases = []
    const outage = this.#outage
    const written: Promise<void> = this.backend
      .releaseUnique(releases)
      .catch((error: unknown) =>
        outage?.failed(
          `Could not release ${releases.length} unique key(s); they lapse after their uniqueFor`,
          errorMeta(error),
        ),
      )
      .finally(() => this.#writing.delete(written))
    this.#writing.add(written)
  }
}
