import { Notifier } from '@tq/core'
import type { Redis } from 'ioredis'

export interface BlockingPoolOptions {
  /** The most connections open at once (busy and idle; default unlimited). */
  max?: number
  /** The most idle connections kept; one handed back beyond it is closed (default unlimited). */
  maxIdle?: number
  /** Milliseconds an idle connection is kept before it is closed (default: kept until `close()`). */
  idleTimeout?: number
}

/**
 * The connections blocking commands run on (BLMOVE, BRPOPLPUSH). A blocking command holds its
 * connection until the server answers, so each concurrent wait needs a connection of its own:
 * they are opened on demand up to `max`, reused while idle (at most `maxIdle` of them, each for
 * `idleTimeout` ms), and all closed by `close()`.
 */
export class BlockingPool {
  readonly max: number
  readonly maxIdle: number
  readonly idleTimeout: number | undefined
  /** Notified whenever a connection is handed back or dropped (a waiter may take its place). */
  readonly released = new Notifier()
  readonly #create: () => Redis
  readonly #idle: Redis[] = []
  readonly #all = new Set<Redis>()
  readonly #idleTimers = new Map<Redis, NodeJS.Timeout>()

  constructor(create: () => Redis, options: BlockingPoolOptions = {}) {
    this.#create = create
    this.max = options.max ?? Infinity
    this.maxIdle = options.maxIdle ?? Infinity
    this.idleTimeout = options.idleTimeout
  }

  /** Open connections (busy and idle). */
  get size(): number {
    return this.#all.size
  }

  /** Connections running a blocking command now. */
  get busy(): number {
    return this.#all.size - this.#idle.length
  }

  /** An idle connection, a new one while under `max`, or `undefined` when all are busy. */
  acquire(): Redis | undefined {
    const idle = this.#idle.pop()
    if (idle !== undefined) {
      clearTimeout(this.#idleTimers.get(idle))
      this.#idleTimers.delete(idle)
      return idle
    }
    if (this.#all.size >= this.max) return undefined
    const connection = this.#create()
    this.#all.add(connection)
    return connection
  }

  /** Hand a connection back for reuse. Ignored for one that was dropped meanwhile. */
  release(connection: Redis): void {
    if (!this.#all.has(connection)) return
    if (connection.status === 'end' || this.#idle.length >= this.maxIdle) {
      this.discard(connection)
      return
    }
    this.#idle.push(connection)
    if (this.idleTimeout !== undefined) {
      const timer = setTimeout(() => this.#reap(connection), this.idleTimeout)
      timer.unref()
      this.#idleTimers.set(connection, timer)
    }
    this.released.notify()
  }

  /** Drop a connection whose state is unknown (lost, stalled): it is disconnected at once. */
  discard(connection: Redis): void {
    if (!this.#all.delete(connection)) return
    const at = this.#idle.indexOf(connection)
    if (at !== -1) this.#idle.splice(at, 1)
    clearTimeout(this.#idleTimers.get(connection))
    this.#idleTimers.delete(connection)
    connection.disconnect()
    this.released.notify()
  }

  /** Close every connection. Blocked commands on them fail with a closed-connection error. */
  close(): void {
    for (const connection of [...this.#all]) this.discard(connection)
  }

  #reap(connection: Redis): void {
    this.#idleTimers.delete(connection)
    const at = this.#idle.indexOf(connection)
    if (at === -1) return
    this.#idle.splice(at, 1)
    this.#all.delete(connection)
    connection.quit().catch(() => connection.disconnect())
  }
}
