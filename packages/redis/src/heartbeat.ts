import { errorMeta, xqName, type Logger } from '@tq/core'
import type { RedisKeys } from './keys.ts'
import type { RunScript } from './scripts.ts'

export interface HeartbeatOptions {
  readonly keys: RedisKeys
  readonly logger: Logger
  readonly run: RunScript
  /** Refresh the broker's heartbeat (a ZADD). */
  readonly beat: () => Promise<void>
  readonly heartbeatInterval: number
  readonly heartbeatTimeout: number
  readonly deadMessageTtl: number
  readonly maintenanceChance: number
  readonly maintenanceInterval: number
}

/** What one maintenance run of a queue did. */
export interface MaintenanceResult {
  /** Messages of dead workers put back on the queue. */
  requeued: number
  /** Dead letters older than `deadMessageTtl` deleted. */
  expired: number
}

/**
 * The broker's heartbeat and queue maintenance. While consumers are open a timer refreshes the
 * heartbeat (not only fetches, as in Dramatiq, so a worker busy with long messages is not taken
 * for dead) and runs timed maintenance of each consumed queue; fetches also run it by chance.
 * Maintenance requeues what dead workers held and deletes expired dead letters.
 */
export class Heartbeat {
  readonly #options: HeartbeatOptions
  /** When each consumed queue is next due for timed maintenance (Unix ms), with its consumer count. */
  readonly #due = new Map<string, { at: number; consumers: number }>()
  #timer: NodeJS.Timeout | undefined

  constructor(options: HeartbeatOptions) {
    this.#options = options
  }

  /** A consumer of `queueName` opened: heart-beat, and maintain the queue on the timer. */
  consumerOpened(queueName: string): void {
    const due = this.#due.get(queueName)
    if (due) due.consumers++
    // The first run of each queue is at a random point of the interval.
    else this.#due.set(queueName, { at: Date.now() + Math.random() * this.#options.maintenanceInterval, consumers: 1 })
    this.#start()
  }

  /** A consumer of `queueName` closed; with none left the timer stops. */
  consumerClosed(queueName: string): void {
    const due = this.#due.get(queueName)
    if (due && --due.consumers <= 0) this.#due.delete(queueName)
    if (this.#due.size === 0) this.stop()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Whether this fetch should also run maintenance (`maintenanceChance` per million). */
  roll(): boolean {
    const chance = this.#options.maintenanceChance
    return chance > 0 && Math.random() * 1_000_000 < chance
  }

  /** Requeue what dead workers held from `queueName` and delete expired dead letters. */
  async maintain(queueName: string): Promise<MaintenanceResult> {
    const { keys, logger } = this.#options
    const xq = xqName(queueName)
    const result = (await this.#options.run(
      'maintenance',
      [keys.key(queueName), keys.msgs(queueName), keys.key(xq), keys.msgs(xq)],
      [
        keys.namespace,
        queueName,
        this.#options.heartbeatTimeout,
        this.#options.deadMessageTtl,
        keys.channel(queueName),
      ],
    )) as [number, number]
    const [requeued, expired] = result
    if (requeued > 0) logger.warn(`Requeued ${requeued} message(s) of dead workers`, { queue: queueName })
    if (expired > 0) logger.info(`Deleted ${expired} expired dead letter(s)`, { queue: queueName })
    return { requeued, expired }
  }

  /** `maintain()` in the background: a failure is logged. */
  maintainQuietly(queueName: string): Promise<void> {
    return this.maintain(queueName).then(
      () => undefined,
      (error: unknown) => {
        this.#options.logger.warn('Redis maintenance failed', { queue: queueName, ...errorMeta(error) })
      },
    )
  }

  #start(): void {
    if (this.#timer) return
    this.#timer = setInterval(() => {
      this.#options.beat().catch((error: unknown) => {
        this.#options.logger.warn('Redis heartbeat failed', {
          brokerId: this.#options.keys.brokerId,
          ...errorMeta(error),
        })
      })
      if (this.#options.maintenanceInterval > 0) this.#timedMaintenance()
    }, this.#options.heartbeatInterval)
    this.#timer.unref()
  }

  #timedMaintenance(): void {
    const now = Date.now()
    for (const [queueName, due] of this.#due) {
      if (due.at > now) continue
      due.at = now + this.#options.maintenanceInterval
      void this.maintainQuietly(queueName)
    }
  }
}
