/**
 * The tracking contract: an index of message states, fed by the `Tracking` middleware, that
 * lists and searches messages on every broker — RabbitMQ and SQS included, which cannot list a
 * queue without taking its messages.
 */

/** Where a message is in its life. */
export type MessageState =
  'queued' | 'delayed' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'dead' | 'cancelled' | 'skipped'

export const MESSAGE_STATES: readonly MessageState[] = [
  'queued',
  'delayed',
  'running',
  'retrying',
  'succeeded',
  'failed',
  'dead',
  'cancelled',
  'skipped',
]

/** States a message does not leave by itself. */
export const FINAL_STATES: ReadonlySet<MessageState> = new Set(['succeeded', 'failed', 'dead', 'cancelled', 'skipped'])

/** An error as tracking keeps it. */
export interface TrackedError {
  /** The error's class name (`TypeError`, `TimeLimitExceededError`, …). */
  type: string
  message: string
  stack?: string
}

/** One run of a message's actor. */
export interface TrackedAttempt {
  /** 1 for the first run, 2 for the first retry, … */
  number: number
  /** The id of the worker process that ran it (`<host>:<pid>:<n>`). */
  workerId: string
  startedAt: number
  finishedAt?: number
  /** Set when the run failed. */
  error?: TrackedError
}

/** What tracking knows about one message. */
export interface TrackedMessage {
  messageId: string
  actorName: string
  /** The canonical queue (`q`, also while the message waits in `q.DQ`). */
  queueName: string
  state: MessageState
  /** The arguments as sent, or `undefined` when their JSON was over `maxArgsBytes`. */
  args: unknown[] | undefined
  kwargs: Record<string, unknown> | undefined
  /** True when args and kwargs were left out for their size. */
  argsTruncated: boolean
  /** The message options as last enqueued (camelCase). */
  options: Record<string, unknown>
  /** When the message was first enqueued (Unix ms): the order of listings, newest first. */
  enqueuedAt: number
  /** When the state last changed. */
  updatedAt: number
  /** When a delayed or retrying message is due. */
  eta?: number
  attempts: TrackedAttempt[]
  /** The worker running it, while `running`. */
  workerId?: string
  /** The last value the actor gave `setProgress()` (a JSON value). */
  progress?: unknown
  /** The message as last enqueued, encoded (so a dead or failed one can be sent again). */
  body?: Uint8Array
}

/**
 * A change to one message's record. The middleware computes states; a backend stores what it is
 * told, in order, creating the record on the first `enqueued` update.
 */
export type TrackingUpdate =
  | {
      kind: 'enqueued'
      at: number
      messageId: string
      actorName: string
      queueName: string
      state: 'queued' | 'delayed' | 'retrying'
      args: unknown[] | undefined
      kwargs: Record<string, unknown> | undefined
      argsTruncated: boolean
      options: Record<string, unknown>
      eta: number | undefined
      body: Uint8Array
    }
  /** An attempt started (`state: 'running'`) or finished (with its end and error, if any). */
  | { kind: 'attempt'; at: number; messageId: string; attempt: TrackedAttempt; state?: MessageState }
  /** A new state without other changes (`succeeded`, `failed`, `dead`, `skipped`, `cancelled`). */
  | { kind: 'state'; at: number; messageId: string; state: MessageState }
  | { kind: 'progress'; at: number; messageId: string; progress: unknown }

export interface TrackingQuery {
  queue?: string
  state?: MessageState
  actor?: string
  /** Text to find in the message id, the actor name or the arguments. */
  search?: string
  /** Most records per page (default 50, at most 500). */
  limit?: number
  /** Where the previous page stopped (its `cursor`). */
  cursor?: string
}

export interface TrackingPage {
  /** At most `limit` records; a page that hit its backend's work bound may hold fewer, even none. */
  items: TrackedMessage[]
  /** Pass it back as `cursor` for the next page; absent on the last page. A short page with a cursor means more may follow. */
  cursor?: string
}

/** What a cancel asks of the workers: `cancel` skips or aborts the message; `delete` does too and writes no record of it. */
export type CancelMode = 'cancel' | 'delete'

/** A notice on a backend's cancel channel: a cancel requested, or one withdrawn (`clear`, before a retry). */
export interface CancelNotice {
  messageId: string
  mode: CancelMode | 'clear'
}

/** A worker's subscription to the cancel channel. */
export interface CancelSubscription {
  /** The cancels in force when the subscription started (message id → mode). */
  readonly pending: ReadonlyMap<string, CancelMode>
  close(): Promise<void>
}

/** A worker as its heartbeats describe it (`Admin.workers()`). */
export interface WorkerHeartbeat {
  /** `<host>:<pid>` (with `#<n>` for a second worker in one process). */
  id: string
  host: string
  pid: number
  /** The queues it consumes (canonical names). */
  queues: string[]
  concurrency: number
  /** Messages it is running now. */
  inFlight: number
  processed: number
  failed: number
  startedAt: number
  /** The time of its last heartbeat. */
  lastSeen: number
}

/** Attempts that finished in one minute on one queue (`Admin.throughput()`). */
export interface ThroughputCount {
  /** The start of the minute (Unix ms, a multiple of 60 000). */
  minute: number
  /** The canonical queue. */
  queue: string
  /** Attempts that finished, failed ones included. */
  processed: number
  /** Attempts that failed (retried or not). */
  failed: number
}

/** How far a schedule of the `Scheduler` got, as its backend keeps it. */
export interface ScheduleMark {
  /** Every due time up to this one (Unix ms) is done with: sent, or passed over by the `missed` or `overlap` policy. */
  through: number
  /** The last due time a message was sent for (Unix ms). */
  lastDue?: number
  /** That message's id. */
  lastMessageId?: string
  /** When it was sent (Unix ms). */
  lastSentAt?: number
}

/** A unique key a message holds (`uniqueKey`, scoped by actor), to release. */
export interface UniqueClaim {
  key: string
  messageId: string
}

/**
 * Stores tracking updates and answers queries. Implementations: `StubTrackingBackend` (in
 * memory, @tq/core), `RedisTrackingBackend` (@tq/redis). One `write()` call carries a batch of
 * updates (the middleware sends one per event-loop turn): a backend applies it in as few round
 * trips as it can, in order. Records older than `retention` ms (since their last update) may be
 * dropped.
 */
export interface TrackingBackend {
  /** Apply updates in order; `retention` is a finite number of ms. Values (args, options, progress) are JSON values. */
  write(updates: readonly TrackingUpdate[], retention: number): Promise<void>
  /** The record of a message, or `undefined` if tracking does not know it (or it expired); a corrupt record may throw `DecodeError`. */
  get(messageId: string): Promise<TrackedMessage | undefined>
  /** Records newest first (by `enqueuedAt`), filtered; a page does bounded work. */
  list(query?: TrackingQuery): Promise<TrackingPage>
  /** Forget a message. */
  delete(messageId: string): Promise<void>

  /**
   * Record a cancel for `ttl` ms and tell every subscribed worker (Redis: pub/sub; the Stub: in
   * memory). A worker skips the message when it is delivered and aborts it if it is running.
   */
  requestCancel(messageId: string, mode: CancelMode, ttl: number): Promise<void>
  /** Withdraw a cancel (and tell the workers): the message may run again. */
  clearCancel(messageId: string): Promise<void>
  /**
   * Listen for cancels; resolves once listening, with the cancels already in force. A backend
   * that reconnects re-reads them and calls `listener` for each, so none is missed.
   */
  subscribeCancels(listener: (notice: CancelNotice) => void): Promise<CancelSubscription>

  /**
   * Claim a unique key for a message, for at most `ttl` ms, atomically: resolves `undefined`
   * when the message holds it (now or already), else the id of the message holding it.
   */
  claimUnique(key: string, messageId: string, ttl: number): Promise<string | undefined>
  /** Release keys, each only if the given message still holds it. */
  releaseUnique(claims: readonly UniqueClaim[]): Promise<void>

  /** Record a worker's heartbeat; it is listed until `ttl` ms pass without another. */
  heartbeat(worker: WorkerHeartbeat, ttl: number): Promise<void>
  /** Forget a worker (it stopped). */
  removeWorker(workerId: string): Promise<void>
  /** The workers whose last heartbeat is still within its ttl, by id. */
  workers(): Promise<WorkerHeartbeat[]>

  /** Add to the per-minute counts of finished attempts (workers send theirs with each heartbeat). */
  addThroughput(counts: readonly ThroughputCount[]): Promise<void>
  /** The counts of the minutes since `since` (Unix ms), kept for at least 2 hours; no entry for a minute with none. */
  throughput(since: number): Promise<ThroughputCount[]>

  /**
   * Take the lease `name` for `owner` for `ttl` ms, or extend it when `owner` holds it already,
   * atomically: resolves `true` when `owner` holds it now (the `Scheduler` elects its leader so).
   */
  acquireLease(name: string, owner: string, ttl: number): Promise<boolean>
  /** Give the lease up, if `owner` holds it. */
  releaseLease(name: string, owner: string): Promise<void>
  /** The marks of the given schedules, by id (a schedule without one is absent). */
  scheduleMarks(ids: readonly string[]): Promise<Map<string, ScheduleMark>>
  /**
   * Store a schedule's mark unless the stored one is as far along already (its `through` at or
   * past this one's), atomically: resolves `true` when stored.
   */
  advanceSchedule(id: string, mark: ScheduleMark): Promise<boolean>

  close?(): Promise<void>
}

/** Default and most records of a page. */
export const DEFAULT_PAGE_SIZE = 50
export const MAX_PAGE_SIZE = 500
