import { hostname } from 'node:os'
import { errorMeta, sleep, type Logger } from '@tq/core'
import { OutageLog } from '@tq/core/adapter'
import { classifyPgError } from './classify-error.ts'
import type { PgPool } from './pg-types.ts'
import type { BrokerQueries } from './queries.ts'

export interface MaintenanceOptions {
  pool: PgPool
  queries: BrokerQueries
  workerId: string
  channel: string
  heartbeatInterval: number
  heartbeatTimeout: number
  deadLetterTtl: number
  logger: Logger
  /** Called with the queues whose messages came back from dead workers. */
  released(queues: readonly string[]): void
}

/** Dead letters are expired every this many heartbeats (not on every one). */
const EXPIRE_EVERY = 12

/**
 * A consuming broker's heartbeat, and the chores every such broker shares (each one idempotent,
 * so no leader is needed): give the claims of workers whose heartbeat stopped back to their
 * queues, and drop dead letters past their ttl. The first heartbeat is written before the
 * first claim, so a claim always has a heartbeat behind it.
 */
export class Maintenance {
  readonly #o: MaintenanceOptions
  readonly #stop = new AbortController()
  readonly #outage: OutageLog
  #registered: Promise<void> | undefined
  #loop: Promise<void> | undefined
  #ticks = 0

  constructor(options: MaintenanceOptions) {
    this.#o = options
    this.#outage = new OutageLog(options.logger)
  }

  /** Register this worker (once) and start the heartbeat; resolves once the first heartbeat is written. */
  start(): Promise<void> {
    this.#registered ??= this.#beat().then(() => {
      this.#loop ??= this.#run()
    })
    // A failed registration is tried again by the next claim.
    this.#registered.catch(() => {
      this.#registered = undefined
    })
    return this.#registered
  }

  async #beat(): Promise<void> {
    const { pool, queries, workerId } = this.#o
    const info = JSON.stringify({ hostname: hostname(), pid: process.pid })
    await pool.query(queries.heartbeat, [workerId, info])
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal
    while (!signal.aborted) {
      await sleep(this.#o.heartbeatInterval, signal)
      if (signal.aborted) break
      await this.tick()
    }
  }

  /** One round: heartbeat, reap, and now and then expire dead letters. */
  async tick(): Promise<void> {
    const { pool, queries, heartbeatTimeout, channel, logger } = this.#o
    try {
      await this.#beat()
      const { rows } = await pool.query<{ queue: string }>(queries.reap, [heartbeatTimeout, channel])
      if (rows.length > 0) {
        const queues = rows.map((r) => r.queue)
        logger.warn('Gave the messages of workers whose heartbeat stopped back to their queues', { queues })
        this.#o.released(queues)
      }
      if (this.#ticks++ % EXPIRE_EVERY === 0) await pool.query(queries.expireDeadLetters, [this.#o.deadLetterTtl])
      this.#outage.recovered('Heartbeats are written again', {})
    } catch (error) {
      this.#outage.failed('Could not write the heartbeat; trying again at the next interval', {
        ...errorMeta(classifyPgError(error)),
      })
    }
  }

  /** Stop the heartbeat and, if it can, forget this worker at once. */
  async stop(): Promise<void> {
    this.#stop.abort()
    await this.#loop
    if (this.#registered) {
      await this.#o.pool.query(this.#o.queries.forgetWorker, [this.#o.workerId]).catch(() => undefined)
    }
  }
}
