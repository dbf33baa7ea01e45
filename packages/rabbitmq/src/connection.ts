import {
  BrokerClosedError,
  ConnectionClosedError,
  errorMeta,
  redactUrl,
  sleep,
  type Logger,
  type TqError,
} from '@tq/core'
import { Backoff, OutageLog } from '@tq/core/adapter'
import type { ChannelModel } from 'amqplib'
import { classifyAmqpError } from './classify-error.ts'

/** Opens one AMQP connection to `url` (amqplib's `connect`, or the user's own factory). */
export type ConnectFunction = (url: string) => Promise<ChannelModel>

export interface ManagedConnectionOptions {
  /** Tried in order on every (re)connect; the first that opens wins. */
  urls: readonly string[]
  connect: ConnectFunction
  /** What this connection is for, in logs ("publish", "consume"). */
  role: string
  /** The broker's class name, for the `BrokerClosedError` once it is closed. */
  brokerName: string
  logger: Logger
  /** Milliseconds before the first retry after a failed round over every URL (doubles up to `maxDelay`). */
  minDelay: number
  maxDelay: number
}

/** A reconnect delay spread over ±20 %, so many clients do not retry in step. */
const spread = (delay: number): number => delay * (0.8 + Math.random() * 0.4)

/**
 * One AMQP connection that comes back: `get()` returns the open connection or opens one,
 * trying each URL in order (failover). After a round in which every URL failed, the next round
 * waits an exponential backoff with jitter. Listeners registered with `onClose` learn that the
 * connection (and with it every channel on it) is gone; `generation` counts connections opened.
 * An outage (the connection lost, or no URL opening) logs one warning, not one per attempt.
 */
export class ManagedConnection {
  readonly role: string
  #model: ChannelModel | undefined
  #connecting: Promise<ChannelModel> | undefined
  readonly #backoff: Backoff
  #retryAt = 0
  #generation = 0
  #closed = false
  readonly #closing = new AbortController()
  readonly #listeners = new Set<(error: unknown) => void>()
  readonly #options: ManagedConnectionOptions
  readonly #logger: Logger
  readonly #outage: OutageLog

  constructor(options: ManagedConnectionOptions) {
    this.#options = options
    this.role = options.role
    this.#logger = options.logger
    this.#backoff = new Backoff({ initial: options.minDelay, max: options.maxDelay })
    this.#outage = new OutageLog(options.logger)
  }

  /** Connections opened so far (1 after the first connect, 2 after a reconnect, …). */
  get generation(): number {
    return this.#generation
  }

  get isOpen(): boolean {
    return this.#model !== undefined
  }

  get closed(): boolean {
    return this.#closed
  }

  /** What operations on the connection throw once it was closed for good. */
  closedError(): BrokerClosedError {
    return new BrokerClosedError(this.#options.brokerName)
  }

  /** Called with the close error (if any) whenever an open connection goes away. */
  onClose(listener: (error: unknown) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /**
   * The open connection, or a new one. One round over the URLs per call; throws the
   * classified error of the last URL when all fail (call again to retry after the backoff).
   */
  async get(signal?: AbortSignal): Promise<ChannelModel> {
    if (this.#closed) throw this.closedError()
    if (this.#model) return this.#model
    if (!this.#connecting) {
      const attempt = this.#connect(signal)
      this.#connecting = attempt
      void attempt.then(
        () => (this.#connecting = undefined),
        () => (this.#connecting = undefined),
      )
    }
    return this.#connecting
  }

  async #connect(signal?: AbortSignal): Promise<ChannelModel> {
    const wait = this.#retryAt - Date.now()
    if (wait > 0) {
      await sleep(wait, [signal, this.#closing.signal])
    }
    if (this.#closed) throw this.closedError()
    let last: TqError | undefined
    for (const url of this.#options.urls) {
      try {
        const model = await this.#options.connect(url)
        if (this.#closed) {
          await model.close().catch(() => undefined)
          throw this.closedError()
        }
        this.#adopt(model, url)
        return model
      } catch (error) {
        last = classifyAmqpError(error)
        // Name the server (redacted) in the message: the socket error alone may not (AggregateError, DNS).
        if (last !== error && !last.message.includes(redactUrl(url))) last.message += ` (${redactUrl(url)})`
        if (this.#closed) throw last
        this.#outage.failed(`Could not open the RabbitMQ ${this.role} connection to ${redactUrl(url)}`, errorMeta(last))
        if (!last.retryable) break
      }
    }
    this.#retryAt = Date.now() + spread(this.#backoff.next())
    throw last ?? new ConnectionClosedError('No RabbitMQ URL to connect to')
  }

  #adopt(model: ChannelModel, url: string): void {
    coalesceWrites(model)
    this.#model = model
    this.#backoff.reset()
    this.#retryAt = 0
    this.#generation++
    const again = this.#generation > 1 ? 're-established' : 'established'
    this.#outage.recovered(`RabbitMQ ${this.role} connection ${again}`, { url: redactUrl(url) })
    let closeError: unknown
    model.on('error', (error: unknown) => {
      closeError = error
      this.#logger.debug(`RabbitMQ ${this.role} connection error`, errorMeta(error))
    })
    model.on('blocked', (reason: string) =>
      this.#logger.warn(`RabbitMQ blocked the ${this.role} connection`, { reason }),
    )
    model.on('unblocked', () => this.#logger.info(`RabbitMQ unblocked the ${this.role} connection`))
    model.on('close', (error?: unknown) => {
      if (this.#model !== model) return
      this.#model = undefined
      const cause = error ?? closeError
      if (!this.#closed) this.#outage.failed(`RabbitMQ ${this.role} connection lost`, cause ? errorMeta(cause) : {})
      for (const listener of [...this.#listeners]) {
        try {
          listener(cause)
        } catch (listenerError) {
          this.#logger.error('Unhandled error in a connection-close listener', errorMeta(listenerError))
        }
      }
    })
  }

  /** Close the connection for good; later `get()` calls fail with `BrokerClosedError`. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#closing.abort()
    const pending = this.#connecting
    if (pending) await pending.catch(() => undefined)
    const model = this.#model
    if (!model) return
    try {
      await model.close()
    } catch (error) {
      this.#logger.debug(`Closing the RabbitMQ ${this.role} connection failed (already closed?)`, errorMeta(error))
    }
    // The 'close' event normally clears it; make sure it is gone even if the event never came.
    if (this.#model === model) {
      this.#model = undefined
      for (const listener of [...this.#listeners]) listener(undefined)
    }
  }
}

interface ConnectionInternals {
  stream?: { cork?: () => void; uncork?: () => void }
  muxer?: { _readIncoming?: () => void }
}

/**
 * amqplib writes every frame with its own `socket.write`, so each ack and each publish is a
 * syscall and a TCP segment. Its multiplexer flushes the channels' frames in one pass per
 * event-loop turn; corking the socket around that pass turns the pass into one `writev`. The
 * frames, their order and flow control ('drain') are unchanged. Relies on amqplib internals
 * (`connection.muxer._readIncoming`, `connection.stream`) and does nothing if they change.
 */
function coalesceWrites(model: ChannelModel): void {
  const internals = model.connection as unknown as ConnectionInternals
  const stream = internals.stream
  const muxer = internals.muxer
  const flush = muxer?._readIncoming
  if (
    !stream ||
    !muxer ||
    typeof flush !== 'function' ||
    typeof stream.cork !== 'function' ||
    typeof stream.uncork !== 'function'
  ) {
    return
  }
  const cork = stream.cork.bind(stream)
  const uncork = stream.uncork.bind(stream)
  muxer._readIncoming = function (this: unknown): void {
    cork()
    try {
      flush.call(this)
    } finally {
      uncork()
    }
  }
}
