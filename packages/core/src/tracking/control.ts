import { hostname } from 'node:os'
import { OutageLog } from '../adapter/outage-log.ts'
import type { Broker } from '../broker.ts'
import { CancelledError, InvalidArgumentError } from '../errors.ts'
import { errorMeta, type Logger } from '../logger.ts'
import type { Message } from '../message.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { Worker } from '../worker.ts'
import type {
  CancelMode,
  CancelNotice,
  CancelSubscription,
  ThroughputCount,
  TrackingBackend,
  UniqueClaim,
} from './backend.ts'

const MINUTE = 60_000

/** The message options of deduplication. */
export const UNIQUE_OPTIONS = ['uniqueKey', 'uniqueFor', 'uniqueUntil'] as const

export type UniqueUntil = 'start' | 'finish'

/** A message's unique key as the backend keeps it, with how long and until when. */
export interface UniqueSpec extends UniqueClaim {
  ttl: number
  until: UniqueUntil
}

/** A unique key as backends keep it: scoped by actor (two actors may use the same key). */
export function uniqueKeyName(actorName: string, uniqueKey: string): string {
  return `${actorName}:${uniqueKey}`
}

/**
 * The unique key of a message (`uniqueKey`, scoped by actor: two actors may use the same key),
 * checked: `uniqueFor` (message, else actor option) is required with a key. `undefined` for a
 * message without a key.
 */
export function uniqueSpecOf(broker: Broker, message: Message): UniqueSpec | undefined {
  const options = message.options
  const key = options['uniqueKey']
  if (key === undefined || key === null) return undefined
  const actorOptions = broker.actors.get(message.actorName)?.options as Record<string, unknown> | undefined
  const name = `${message.actorName}: `
  if (typeof key !== 'string' || key === '') {
    throw new InvalidArgumentError(`${name}uniqueKey must be a non-empty string, got ${JSON.stringify(key)}`)
  }
  const ttl = options['uniqueFor'] ?? actorOptions?.['uniqueFor']
  if (ttl === undefined || ttl === null) {
    throw new InvalidArgumentError(
      `${name}uniqueKey needs uniqueFor (the longest the key is held, in ms): a key that is never released would block the actor for good`,
    )
  }
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 1) {
    throw new InvalidArgumentError(`${name}uniqueFor must be a positive number of ms, got ${JSON.stringify(ttl)}`)
  }
  const until = options['uniqueUntil'] ?? actorOptions?.['uniqueUntil'] ?? 'finish'
  if (until !== 'start' && until !== 'finish') {
    throw new InvalidArgumentError(`${name}uniqueUntil must be 'start' or 'finish', got ${JSON.stringify(until)}`)
  }
  return { key: uniqueKeyName(message.actorName, key), messageId: message.messageId, ttl: Math.ceil(ttl), until }
}

/** The unique key a message received by a worker holds, if any (options as sent, not re-checked). */
export function heldUniqueKey(proxy: MessageProxy): { claim: UniqueClaim; until: UniqueUntil } | undefined {
  const key = proxy.options['uniqueKey']
  if (typeof key !== 'string' || key === '') return undefined
  const until = proxy.options['uniqueUntil'] === 'start' ? 'start' : 'finish'
  return { claim: { key: uniqueKeyName(proxy.actorName, key), messageId: proxy.messageId }, until }
}

interface WorkerEntry {
  id: string
  startedAt: number
}

export interface WorkerControlOptions {
  backend: TrackingBackend
  /** How long a cancel is kept (the tracking retention). */
  retention: number
  /** `<host>:<pid>`: the heartbeat id of the first worker of this process. */
  workerId: string
  heartbeatInterval: number
  logger: () => Logger
  /** The delivery of a message whose actor runs in this process now, to abort on a cancel. */
  running: (messageId: string) => MessageProxy | undefined
}

/**
 * The worker side of cancellation and heartbeats, for `Tracking`: listens on the backend's
 * cancel channel while a worker runs (skipping cancelled messages when they are delivered and
 * aborting running ones with `CancelledError`), and sends each worker's heartbeat.
 */
export class WorkerControl {
  readonly #options: WorkerControlOptions
  /** Cancels in force (message id → mode and when it was heard of). */
  readonly #cancels = new Map<string, { mode: CancelMode; at: number }>()
  readonly #workers = new Map<Worker, WorkerEntry>()
  #subscription: CancelSubscription | undefined
  #subscribing: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #seq = 0
  /** Heartbeat failures: one warning per outage, not one per beat. */
  #beats: OutageLog | undefined
  /** Attempts finished since the last heartbeat: this minute's by queue, and earlier minutes'. */
  #minute = 0
  #current = new Map<string, ThroughputCount>()
  #done: ThroughputCount[] = []

  constructor(options: WorkerControlOptions) {
    this.#options = options
  }

  /** The cancel in force for a message, if any. */
  cancelOf(messageId: string): CancelMode | undefined {
    return this.#cancels.get(messageId)?.mode
  }

  /** Count a finished attempt, for the throughput sent with the next heartbeat. */
  count(queue: string, failed: boolean, now = Date.now()): void {
    if (now - this.#minute >= MINUTE) {
      // A new minute: the last one's counts wait for the next heartbeat.
      for (const count of this.#current.values()) this.#done.push(count)
      this.#current = new Map()
      this.#minute = now - (now % MINUTE)
    }
    let count = this.#current.get(queue)
    if (!count) this.#current.set(queue, (count = { minute: this.#minute, queue, processed: 0, failed: 0 }))
    count.processed++
    if (failed) count.failed++
  }

  /** Send the counts gathered so far (a failed send keeps them for the next one). */
  async flushCounts(): Promise<void> {
    const counts = [...this.#done, ...this.#current.values()]
    if (counts.length === 0) return
    this.#done = []
    this.#current = new Map()
    try {
      await this.#options.backend.addThroughput(counts)
    } catch (error) {
      // Kept (with whatever came since) for the next heartbeat; the backend adds them up.
      const kept = Date.now() - 2 * 3_600_000
      this.#done.push(...counts.filter((count) => count.minute > kept))
      this.#beats ??= new OutageLog(this.#options.logger())
      this.#beats.failed(
        'Tracking could not send its throughput counts (trying again with the next heartbeat)',
        errorMeta(error),
      )
    }
  }

  /** Before a worker consumes: listen for cancels (so the ones in force are known before the first delivery). */
  async workerStarting(worker: Worker): Promise<void> {
    this.#seq += 1
    const id = this.#seq === 1 ? this.#options.workerId : `${this.#options.workerId}#${this.#seq}`
    this.#workers.set(worker, { id, startedAt: Date.now() })
    await this.#subscribe()
  }

  /** Once it consumes (its queues are known): its heartbeats. */
  async workerStarted(worker: Worker): Promise<void> {
    if (!this.#workers.has(worker)) return
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.#tick(), this.#options.heartbeatInterval)
      this.#timer.unref()
    }
    await this.#beat(worker)
  }

  async workerStopped(worker: Worker): Promise<void> {
    const entry = this.#workers.get(worker)
    if (!entry) return
    this.#workers.delete(worker)
    const tasks: Promise<unknown>[] = [
      this.#options.backend.removeWorker(entry.id).catch((error: unknown) => this.#warn('remove a heartbeat', error)),
      this.flushCounts(),
    ]
    if (this.#workers.size === 0) {
      if (this.#timer) clearInterval(this.#timer)
      this.#timer = undefined
      const subscription = this.#subscription
      this.#subscription = undefined
      this.#cancels.clear()
      if (subscription) tasks.push(subscription.close().catch((error: unknown) => this.#warn('unsubscribe', error)))
    }
    await Promise.all(tasks)
  }

  #subscribe(): Promise<void> {
    if (this.#subscription) return Promise.resolve()
    this.#subscribing ??= this.#options.backend
      .subscribeCancels((notice) => this.#heard(notice))
      .then(
        (subscription) => {
          if (this.#workers.size === 0) return void subscription.close().catch(() => undefined)
          this.#subscription = subscription
          const at = Date.now()
          for (const [messageId, mode] of subscription.pending) this.#cancels.set(messageId, { mode, at })
        },
        // Tried again at the next heartbeat: until then cancels do not reach this process.
        (error: unknown) => this.#warn('listen for cancels (retrying with the next heartbeat)', error),
      )
      .finally(() => (this.#subscribing = undefined))
    return this.#subscribing
  }

  #heard(notice: CancelNotice): void {
    if (this.#workers.size === 0) return
    if (notice.mode === 'clear') {
      this.#cancels.delete(notice.messageId)
      return
    }
    this.#cancels.set(notice.messageId, { mode: notice.mode, at: Date.now() })
    this.#options.running(notice.messageId)?.abort(new CancelledError(notice.messageId))
  }

  async #tick(): Promise<void> {
    const cutoff = Date.now() - this.#options.retention
    for (const [id, entry] of this.#cancels) if (entry.at < cutoff) this.#cancels.delete(id)
    await Promise.all([
      this.#subscribe(),
      this.flushCounts(),
      ...[...this.#workers.keys()].map((worker) => this.#beat(worker)),
    ])
  }

  async #beat(worker: Worker): Promise<void> {
    const entry = this.#workers.get(worker)
    if (!entry) return
    const stats = worker.stats
    const queues = [...new Set(worker.consumedQueues.map((q) => q.replace(/\.(DQ|XQ)$/, '')))].sort()
    try {
      await this.#options.backend.heartbeat(
        {
          id: entry.id,
          host: hostname(),
          pid: process.pid,
          queues,
          concurrency: worker.concurrency,
          inFlight: stats.inFlight,
          processed: stats.processed,
          failed: stats.failed,
          startedAt: entry.startedAt,
          lastSeen: Date.now(),
        },
        this.#options.heartbeatInterval * 3,
      )
      this.#beats?.recovered('Tracking sends heartbeats again')
    } catch (error) {
      this.#beats ??= new OutageLog(this.#options.logger())
      this.#beats.failed('Tracking could not send a heartbeat (trying again with the next one)', errorMeta(error))
    }
  }

  #warn(what: string, error: unknown): void {
    this.#options.logger().warn(`Tracking could not ${what}`, errorMeta(error))
  }
}
