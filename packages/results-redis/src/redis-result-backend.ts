import { randomUUID } from 'node:crypto'
import {
  ConfigurationError,
  ConnectionClosedError,
  Missing,
  ResultBackendBase,
  errorMeta,
  noopLogger,
  type Logger,
  type ResultBackendOptions,
} from '@tq/core'
import { OutageLog, computeBackoff } from '@tq/core/adapter'
import { BlockingPool, RedisClientHandle, isReplyError, toBuffer, type AdapterRedisOptions } from '@tq/redis/shared'
import type { Redis } from 'ioredis'
import { classifyRedisError } from './classify-error.ts'

export interface RedisResultBackendOptions extends ResultBackendOptions {
  /**
   * `redis://[user:password@]host[:port][/db]` or `rediss://…` (default
   * `redis://127.0.0.1:6379`). Ignored with `client`.
   */
  url?: string
  /** Extra ioredis options for the connections this backend opens from `url`. Ignored with `client`. */
  redisOptions?: AdapterRedisOptions
  /**
   * An existing ioredis client for reads and writes. It is not closed by `close()`. Blocking
   * reads run on connections duplicated from it (`client.duplicate()`), which the backend
   * owns and closes. A client with a `keyPrefix` is refused: the keys must stay Dramatiq's.
   */
  client?: Redis
  /**
   * The most connections blocking reads may hold at once (default 16). Concurrent blocking
   * reads of one result share a single blocking command; reads of different results need one
   * connection each. Beyond the cap, further reads poll until a connection is free.
   */
  maxBlockingConnections?: number
  /** Milliseconds an unused blocking connection is kept open (default 30 000). */
  blockingIdleTimeout?: number
  /** Where connection problems are logged (entries tagged `component: "results-redis"`). */
  logger?: Logger
}

/** How long past its own timeout a blocking command may stay unanswered before its connection is dropped. */
const STALL_GRACE_MS = 1000
/** Marks a blocking command that never answered. */
const STALLED: unique symbol = Symbol('stalled')

/** One caller of a blocking read. */
interface Waiter {
  readonly deadline: number
  settled: boolean
  timer: NodeJS.Timeout | undefined
  readonly resolve: (value: Uint8Array | Missing) => void
  readonly reject: (error: Error) => void
}

/** All local callers waiting for one key, served by one blocking command at a time. */
interface KeyWait {
  readonly key: string
  readonly waiters: Set<Waiter>
}

/**
 * A result backend on Redis, compatible with Python Dramatiq's `RedisBackend`: the same keys
 * (the MD5 hex digest of `<namespace>:<queue>:<actor>:<messageId>`, or that string with
 * `usePrefixKeys`) and the same values (a one-element list holding the encoded result or
 * Dramatiq's failure wrapper, written with `DEL` + `LPUSH` + `PEXPIRE` in one transaction), so
 * results stored by a Python worker are read by tq and the other way round.
 *
 * A blocking read first looks (`LINDEX key 0`), then waits on the server with
 * `BLMOVE key key RIGHT LEFT <seconds>`, which hands the value back to the same list: every
 * other reader still finds it. Unlike Dramatiq, timeouts keep their milliseconds (Redis ≥ 6
 * takes fractional seconds), local callers waiting for the same result share one blocking
 * command, and each distinct wait gets its own connection from a small pool.
 *
 * ```ts
 * const backend = new RedisResultBackend({ url: 'redis://127.0.0.1:6379/0' })
 * broker.addMiddleware(new Results({ backend }))
 * const message = await add.send(1, 2)
 * await message.getResult({ block: true, timeout: 250 }) // 3
 * ```
 */
export class RedisResultBackend extends ResultBackendBase {
  /** Names this backend's connections in `CLIENT LIST`: `tq-results:<id>` and `tq-results:<id>:blocking`. */
  readonly backendId: string = randomUUID()
  /** The connection reads and writes go through. */
  readonly client: Redis
  readonly maxBlockingConnections: number
  readonly #handle: RedisClientHandle
  readonly #pool: BlockingPool
  readonly #waits = new Map<string, KeyWait>()
  readonly #logger: Logger
  readonly #outage: OutageLog
  #blockingCommand: 'BLMOVE' | 'BRPOPLPUSH' = 'BLMOVE'
  #closed = false
  /** The check that the URL's database exists (ioredis swallows a failed SELECT and stays on db 0). */
  /** Connection errors: one warning per outage, then debug entries until the client is ready again. */
  readonly #onError = (error: unknown): void => {
    this.#outage.failed('Redis connection error', errorMeta(error))
  }
  readonly #onReady = (): void => {
    this.#outage.recovered('Redis connection re-established')
  }

  constructor(options: RedisResultBackendOptions = {}) {
    super(options)
    this.maxBlockingConnections = options.maxBlockingConnections ?? 16
    if (!Number.isInteger(this.maxBlockingConnections) || this.maxBlockingConnections < 1) {
      throw new ConfigurationError(
        `maxBlockingConnections must be a positive integer, got ${this.maxBlockingConnections}`,
      )
    }
    this.#logger = (options.logger ?? noopLogger).child({ component: 'results-redis' })
    this.#outage = new OutageLog(this.#logger)
    // A given client is never closed here (there is no `closeClient`).
    this.#handle = new RedisClientHandle(
      { url: options.url, redisOptions: options.redisOptions, client: options.client },
      {
        owner: 'RedisResultBackend',
        keyPrefixAdvice: ' (Dramatiq peers would not find the results); set `namespace` instead',
        defaults: { lazyConnect: true, enableAutoPipelining: true, connectionName: `tq-results:${this.backendId}` },
      },
    )
    this.client = this.#handle.client
    if (this.#handle.owned) {
      this.client.on('error', this.#onError)
      this.client.on('ready', this.#onReady)
    }
    this.#pool = new BlockingPool(() => this.#openBlockingConnection(), {
      max: this.maxBlockingConnections,
      idleTimeout: options.blockingIdleTimeout ?? 30_000,
    })
  }

  /** Blocking connections open now (busy or idle). */
  get blockingConnections(): number {
    return this.#pool.size
  }

  /** Results being waited for by blocking reads in this process. */
  get pendingWaits(): number {
    return this.#waits.size
  }

  /**
   * Stop: pending blocking reads fail with `ConnectionClosedError`, the blocking connections
   * are closed, and so is the client when the backend opened it from `url` (a given `client`
   * stays open).
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const error = new ConnectionClosedError('The RedisResultBackend was closed while waiting for a result')
    for (const wait of this.#waits.values()) for (const waiter of [...wait.waiters]) waiter.reject(error)
    this.#waits.clear()
    this.#pool.close()
    if (this.#handle.owned) {
      await this.#handle.release()
      this.client.off('error', this.#onError)
      this.client.off('ready', this.#onReady)
    }
  }

  // -- primitives -------------------------------------------------------------------------------

  /** `LINDEX key 0`: the stored value, without waiting. */
  protected override async get(key: string): Promise<Uint8Array | Missing> {
    this.#assertOpen()
    await this.#handle.verifyDatabase(classifyRedisError)
    try {
      return (await this.client.lindexBuffer(key, 0)) ?? Missing
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  /** `MULTI; DEL key; LPUSH key value; PEXPIRE key ttl; EXEC`, as Dramatiq writes it. */
  protected override async store(key: string, value: Uint8Array, ttl: number): Promise<void> {
    this.#assertOpen()
    await this.#handle.verifyDatabase(classifyRedisError)
    let replies: Array<[Error | null, unknown]> | null
    try {
      replies = await this.client
        .multi()
        .del(key)
        .lpush(key, toBuffer(value))
        .pexpire(key, Math.max(0, Math.round(ttl)))
        .exec()
    } catch (error) {
      throw classifyRedisError(error)
    }
    for (const [error] of replies ?? []) if (error) throw classifyRedisError(error)
  }

  /**
   * Look once (`LINDEX`); if nothing is stored yet, join (or start) the shared blocking wait
   * for the key. Each caller leaves at its own deadline with one last look, so a value stored
   * right at the deadline is still seen and a caller is never held past its timeout.
   */
  protected override async waitFor(key: string, timeoutMs: number): Promise<Uint8Array | Missing> {
    const deadline = Date.now() + timeoutMs
    const now = await this.get(key)
    if (now !== Missing || deadline - Date.now() < 1) return now
    this.#assertOpen()
    return new Promise<Uint8Array | Missing>((resolve, reject) => {
      let wait = this.#waits.get(key)
      const start = wait === undefined
      if (wait === undefined) {
        wait = { key, waiters: new Set() }
        this.#waits.set(key, wait)
      }
      const shared = wait
      const waiter: Waiter = {
        deadline,
        settled: false,
        timer: undefined,
        resolve: (value) => {
          if (waiter.settled) return
          waiter.settled = true
          clearTimeout(waiter.timer)
          shared.waiters.delete(waiter)
          resolve(value)
        },
        reject: (error) => {
          if (waiter.settled) return
          waiter.settled = true
          clearTimeout(waiter.timer)
          shared.waiters.delete(waiter)
          reject(error)
        },
      }
      waiter.timer = setTimeout(
        () => {
          shared.waiters.delete(waiter)
          if (this.#closed) {
            waiter.reject(new ConnectionClosedError('The RedisResultBackend was closed while waiting for a result'))
            return
          }
          this.get(key).then(waiter.resolve, (error: unknown) => waiter.reject(classifyRedisError(error)))
        },
        Math.max(0, deadline - Date.now()),
      )
      shared.waiters.add(waiter)
      if (start) void this.#serve(shared)
    })
  }

  // -- blocking waits -------------------------------------------------------------------------

  /**
   * Run blocking commands for a key until its waiters have a value or have all left. Waiters
   * that join later with a later deadline extend the wait with another command.
   */
  async #serve(wait: KeyWait): Promise<void> {
    let attempt = 0
    try {
      for (;;) {
        if (wait.waiters.size === 0 || this.#closed) break
        let latest = 0
        for (const waiter of wait.waiters) latest = Math.max(latest, waiter.deadline)
        const remaining = latest - Date.now()
        if (remaining < 1) break
        const connection = this.#pool.acquire()
        if (connection === undefined) {
          // Every blocking connection is busy: look now and then until one is free.
          const value = await this.get(wait.key)
          if (value !== Missing) {
            settleAll(wait, value)
            break
          }
          await this.#pool.released.wait(
            Math.min(remaining, computeBackoff(attempt++, { factor: 25, maxBackoff: 500 })),
          )
          continue
        }
        let value: Buffer | null | typeof STALLED
        try {
          value = await this.#blockingMove(connection, wait.key, remaining)
        } catch (error) {
          if (isReplyError(error)) throw error
          if (this.#closed) break
          // The connection went away under the command: it was dropped; try again on another.
          this.#logger.warn('Blocking result read lost its connection; retrying', errorMeta(error))
          await this.#pool.released.wait(
            Math.min(remaining, computeBackoff(attempt++, { factor: 25, maxBackoff: 500 })),
          )
          continue
        }
        if (value !== null && value !== STALLED) {
          settleAll(wait, value)
          break
        }
      }
    } catch (error) {
      const classified = classifyRedisError(error)
      for (const waiter of [...wait.waiters]) waiter.reject(classified)
    } finally {
      // No await between the loop's last decision and here: a caller arriving later starts a new wait.
      if (this.#waits.get(wait.key) === wait) this.#waits.delete(wait.key)
    }
  }

  /**
   * `BLMOVE key key RIGHT LEFT <seconds>` on a pool connection: the value (left in the list for
   * other readers), `null` when the server's timeout passed, or `STALLED` when the server did
   * not answer in time (the connection is then dropped). A connection error drops the
   * connection and is thrown.
   */
  async #blockingMove(connection: Redis, key: string, timeoutMs: number): Promise<Buffer | null | typeof STALLED> {
    const seconds = (Math.ceil(timeoutMs) / 1000).toFixed(3)
    const command =
      this.#blockingCommand === 'BLMOVE'
        ? connection.blmoveBuffer(key, key, 'RIGHT', 'LEFT', seconds)
        : connection.brpoplpushBuffer(key, key, seconds)
    let timer: NodeJS.Timeout | undefined
    const stalled = new Promise<typeof STALLED>((resolve) => {
      timer = setTimeout(() => {
        this.#logger.warn('A blocking result read got no answer past its timeout; dropping its connection', { key })
        this.#pool.discard(connection)
        resolve(STALLED)
      }, timeoutMs + STALL_GRACE_MS)
    })
    try {
      const value = await Promise.race([command, stalled])
      if (value !== STALLED) this.#pool.release(connection)
      return value
    } catch (error) {
      if (isReplyError(error)) {
        this.#pool.release(connection)
        if (this.#blockingCommand === 'BLMOVE' && /unknown command/i.test((error as Error).message)) {
          // Redis before 6.2: the same move under its older name (fractional timeouts need 6.0).
          this.#blockingCommand = 'BRPOPLPUSH'
          return null
        }
      } else {
        this.#pool.discard(connection)
      }
      throw error
    } finally {
      clearTimeout(timer)
    }
  }

  #openBlockingConnection(): Redis {
    const connection = this.client.duplicate({
      lazyConnect: true,
      enableAutoPipelining: false,
      enableOfflineQueue: true,
      commandTimeout: undefined,
      blockingTimeout: undefined,
      connectionName: `tq-results:${this.backendId}:blocking`,
    })
    connection.on('error', this.#onError)
    connection.on('ready', this.#onReady)
    return connection
  }

  #assertOpen(): void {
    if (this.#closed) throw new ConfigurationError('This RedisResultBackend is closed')
  }
}

function settleAll(wait: KeyWait, value: Uint8Array): void {
  for (const waiter of [...wait.waiters]) waiter.resolve(value)
}
