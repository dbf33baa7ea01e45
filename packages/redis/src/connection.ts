import {
  BrokerClosedError,
  ConfigurationError,
  ConnectionClosedError,
  ConnectionFailedError,
  errorMessage,
  errorMeta,
  type Logger,
} from '@tq/core'
import { OutageLog } from '@tq/core/adapter'
import type { Redis } from 'ioredis'
import { classifyRedisError } from './classify-error.ts'
import type { AdapterRedisOptions, RedisClientHandle } from './shared/client.ts'

export interface RedisConnectionOptions {
  /** The command client, owned or borrowed. */
  readonly handle: RedisClientHandle
  /** Options of the broker's other connections (`client.duplicate(…)`): the wake-up subscriber. */
  readonly duplicateOptions: AdapterRedisOptions
  /** Milliseconds a command waits for the connection to be (re)established. */
  readonly connectTimeout: number
  readonly logger: Logger
  /** For log entries. */
  readonly brokerId: string
  /** The broker's class name (for `BrokerClosedError`) and whether it was closed. */
  readonly brokerName: string
  readonly isClosed: () => boolean
  /** The command connection closed: replies of commands in flight may be lost. */
  readonly onClose: () => void
}

/**
 * The broker's command connection: readiness (the first command connects and checks the server
 * and the database; later ones wait, bounded by `connectTimeout`, while ioredis reconnects),
 * enqueue batches bounded the same way, and one warning per outage for every connection of the
 * broker.
 */
export class RedisConnection {
  readonly client: Redis
  readonly handle: RedisClientHandle
  readonly connectTimeout: number
  readonly #options: RedisConnectionOptions
  readonly #outage: OutageLog
  /** The last connection error since the connection was last ready (the cause of a failed wait). */
  #lastError: unknown
  /** The first connect-and-check (PING, SELECT of the URL's database); later commands wait for it. */
  #verified: Promise<void> | undefined
  #isVerified = false
  #readyWait: Promise<void> | undefined
  /** Rejecters of commands in flight that fail when the connection stays down for `connectTimeout`. */
  readonly #bounded = new Set<(error: unknown) => void>()
  #outageTimer: NodeJS.Timeout | undefined

  readonly #onClose = (): void => {
    this.#options.onClose()
    if (this.#outageTimer === undefined && this.#bounded.size > 0) {
      this.#outageTimer = setTimeout(() => {
        this.#outageTimer = undefined
        const error = this.connectionFailed(this.#lastError, ` within ${this.connectTimeout} ms`)
        const rejecters = [...this.#bounded]
        this.#bounded.clear()
        for (const reject of rejecters) reject(error)
      }, this.connectTimeout)
      this.#outageTimer.unref()
    }
  }
  readonly #onError = (error: unknown): void => {
    this.#lastError = error
    this.logError('commands', error)
  }
  readonly #onReady = (): void => {
    clearTimeout(this.#outageTimer)
    this.#outageTimer = undefined
    this.#lastError = undefined
    this.#outage.recovered('Redis connection re-established', { brokerId: this.#options.brokerId })
  }

  constructor(options: RedisConnectionOptions) {
    this.#options = options
    this.handle = options.handle
    this.client = options.handle.client
    this.connectTimeout = options.connectTimeout
    this.#outage = new OutageLog(options.logger)
    this.client.on('close', this.#onClose)
    this.client.on('error', this.#onError)
    this.client.on('ready', this.#onReady)
  }

  /** Another connection to the same server (the wake-up subscriber), named `name`. */
  duplicate(connectionName: string): Redis {
    return this.client.duplicate({ ...this.#options.duplicateOptions, connectionName })
  }

  /** A connection error, logged once per outage (a warning), the reconnect attempts after it as debug. */
  logError(connection: string, error: unknown): void {
    this.#outage.failed('Redis connection error; reconnecting', {
      connection,
      brokerId: this.#options.brokerId,
      ...errorMeta(error),
    })
  }

  /**
   * Before a command: the first one connects and checks; later ones wait (bounded) for a
   * reconnect. `undefined` when the connection is ready: every fetch, ack and enqueue batch
   * calls it, and awaiting nothing would still cost a turn.
   */
  ready(): Promise<void> | undefined {
    if (this.#isVerified) {
      if (this.client.status === 'ready') return undefined
      return this.waitReady()
    }
    return this.connect()
  }

  /** Open the connection and check it once (PING, SELECT); see `RedisBroker.connect()`. */
  connect(): Promise<void> {
    if (this.#options.isClosed()) return Promise.reject(new BrokerClosedError(this.#options.brokerName))
    if (!this.#verified) {
      const verifying = this.#verify()
      this.#verified = verifying
      verifying.then(
        () => {
          this.#isVerified = true
        },
        (error: unknown) => {
          // Unreachable: try again next time. A missing database stays an error.
          if (!(error instanceof ConfigurationError) && this.#verified === verifying) this.#verified = undefined
        },
      )
    }
    return this.#verified
  }

  async #verify(): Promise<void> {
    await this.waitReady()
    try {
      await this.client.ping()
    } catch (error) {
      throw this.connectionFailed(this.#lastError ?? error)
    }
    await this.handle.selectDatabase(classifyRedisError)
  }

  /**
   * Resolve once the command connection is ready; reject with `ConnectionFailedError` when the
   * first connection attempt this call starts fails, or when it is not ready within
   * `connectTimeout`. ioredis keeps reconnecting in the background either way.
   */
  waitReady(): Promise<void> {
    const client = this.client
    if (client.status === 'ready') return Promise.resolve()
    if (this.#options.isClosed()) return Promise.reject(new BrokerClosedError(this.#options.brokerName))
    if (client.status === 'end' && !this.handle.owned) {
      return Promise.reject(new ConnectionClosedError(`The Redis connection to ${this.handle.address} is closed`))
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(this.connectionFailed(this.#lastError, ` within ${this.connectTimeout} ms`)),
        this.connectTimeout,
      )
      void this.#nextReady().then(() => {
        clearTimeout(timer)
        resolve()
      })
      if (client.status === 'wait' || client.status === 'end') {
        // ioredis rejects connect() with a bare "Connection is closed."; the cause came as an event.
        client.connect().catch((error: unknown) => {
          if ((client.status as string) === 'ready') return
          clearTimeout(timer)
          reject(this.connectionFailed(this.#lastError ?? error))
        })
      }
    })
  }

  /** Resolves on the command connection's next 'ready' (one listener, however many commands wait). */
  #nextReady(): Promise<void> {
    this.#readyWait ??= new Promise<void>((resolve) => {
      this.client.once('ready', () => {
        this.#readyWait = undefined
        resolve()
      })
    })
    return this.#readyWait
  }

  connectionFailed(cause: unknown, suffix = ''): ConnectionFailedError {
    const reason = cause === undefined ? 'no answer' : errorMessage(cause)
    return new ConnectionFailedError(`Could not connect to Redis at ${this.handle.address}${suffix}: ${reason}`, {
      cause,
    })
  }

  /**
   * `promise`, or a `ConnectionFailedError` once the connection has been down for
   * `connectTimeout` while it is pending (ioredis would keep it queued through up to
   * `maxRetriesPerRequest` reconnects, over a minute). The command itself stays queued in
   * ioredis and may still run after a reconnect, as with any lost reply.
   */
  bounded<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (): void => {
        this.#bounded.delete(reject)
      }
      this.#bounded.add(reject)
      promise.then(
        (value) => {
          settle()
          resolve(value)
        },
        (error: unknown) => {
          settle()
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passed through as it came
          reject(error)
        },
      )
    })
  }

  /** Stop listening and close the client if the broker owns it. */
  async close(): Promise<void> {
    clearTimeout(this.#outageTimer)
    this.client.off('close', this.#onClose)
    this.client.off('error', this.#onError)
    this.client.off('ready', this.#onReady)
    await this.handle.release()
  }
}
