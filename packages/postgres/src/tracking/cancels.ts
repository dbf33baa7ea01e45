import {
  ConnectionClosedError,
  errorMeta,
  sleep,
  type CancelMode,
  type CancelNotice,
  type CancelSubscription,
  type Logger,
} from '@tq/core'
import { Backoff, OutageLog } from '@tq/core/adapter'
import { channelName } from '../identifiers.ts'
import { classifyPgError } from '../classify-error.ts'
import type { PgNotification, PgPool, PgPoolClient } from '../pg-types.ts'

/**
 * The NOTIFY channel of a schema's cancels: `tq:<schema>:cancels`, with an MD5 of the schema in
 * its place when that is too long (as the result and rate-limit backends name theirs).
 */
export function cancelChannel(schema: string): string {
  return channelName(schema, 'cancels')
}

/** The statements of `<schema>.tracking_cancels`; each notifies at its commit. */
export function cancelStatements(schema: string): { request: string; clear: string; pending: string } {
  const table = `${schema}.tracking_cancels`
  return {
    // $1 id, $2 mode, $3 ttl (ms), $4 channel, $5 payload.
    request: `WITH c AS (
  INSERT INTO ${table} (message_id, mode, expires_at) VALUES ($1, $2, clock_timestamp() + $3::float8 * interval '1 ms')
  ON CONFLICT (message_id) DO UPDATE SET mode = EXCLUDED.mode, expires_at = EXCLUDED.expires_at
) SELECT pg_notify($4, $5)`,
    clear: `WITH c AS (DELETE FROM ${table} WHERE message_id = $1) SELECT pg_notify($2, $3)`,
    pending: `WITH lapsed AS (DELETE FROM ${table} WHERE expires_at <= clock_timestamp())
SELECT message_id, mode FROM ${table} WHERE expires_at > clock_timestamp() ORDER BY message_id`,
  }
}

/** A notice's payload: `<mode>:<message id>`. */
export const cancelPayload = (notice: CancelNotice): string => `${notice.mode}:${notice.messageId}`

function parsePayload(payload: string | undefined): CancelNotice | undefined {
  if (payload === undefined) return undefined
  const colon = payload.indexOf(':')
  const mode = payload.slice(0, colon)
  if (colon < 0 || (mode !== 'cancel' && mode !== 'delete' && mode !== 'clear')) return undefined
  return { messageId: payload.slice(colon + 1), mode }
}

interface Subscriber {
  readonly listener: (notice: CancelNotice) => void
}

/**
 * The cancel channel of one backend: one connection of the pool LISTENs while anyone is
 * subscribed, and hands every notice to each subscriber. When that connection fails it
 * reconnects (with a backoff) and then re-reads the cancels in force, passing each to every
 * subscriber: a cancel requested while nobody listened still arrives. (A clear sent meanwhile
 * does not; the next retry of that message is skipped, as with the Redis backend.)
 */
export class CancelChannel {
  readonly #pool: PgPool
  readonly #channel: string
  readonly #log: Logger
  readonly #pending: () => Promise<Map<string, CancelMode>>
  readonly #subscribers = new Set<Subscriber>()
  readonly #stop = new AbortController()
  #client: PgPoolClient | undefined
  #opening: Promise<void> | undefined
  /** The connection was lost since the cancels in force were last read. */
  #lost = false
  #reconnecting = false

  constructor(options: {
    pool: PgPool
    channel: string
    logger: Logger
    pending: () => Promise<Map<string, CancelMode>>
  }) {
    this.#pool = options.pool
    this.#channel = options.channel
    this.#log = options.logger
    this.#pending = options.pending
  }

  /** Whether a connection LISTENs now. */
  get listening(): boolean {
    return this.#client !== undefined
  }

  async subscribe(listener: (notice: CancelNotice) => void): Promise<CancelSubscription> {
    if (this.#stop.signal.aborted) throw new ConnectionClosedError('The tracking backend is closed')
    await this.#listen()
    // Subscribed before the read: a cancel committed in between reaches it (perhaps twice).
    const subscriber: Subscriber = { listener }
    this.#subscribers.add(subscriber)
    let pending: Map<string, CancelMode>
    try {
      pending = await this.#pending()
    } catch (error) {
      await this.#unsubscribe(subscriber)
      throw classifyPgError(error)
    }
    return {
      pending,
      close: () => this.#unsubscribe(subscriber),
    }
  }

  /** Stop listening for good; resolves once the connection is back in the pool. */
  async close(): Promise<void> {
    this.#stop.abort()
    this.#subscribers.clear()
    await this.#opening?.catch(() => undefined)
    await this.#idle()
  }

  #listen(): Promise<void> {
    if (this.#client) return Promise.resolve()
    this.#opening ??= this.#open().finally(() => (this.#opening = undefined))
    return this.#opening
  }

  async #open(): Promise<void> {
    let client: PgPoolClient
    try {
      client = await this.#pool.connect()
    } catch (error) {
      throw classifyPgError(error)
    }
    const connection = client
    connection.on('notification', (n: PgNotification) => this.#heard(n))
    connection.on('error', (error: Error) => this.#drop(connection, error))
    connection.on('end', () => this.#drop(connection, new Error('connection ended')))
    try {
      await connection.query(`LISTEN "${this.#channel}"`)
    } catch (error) {
      this.#drop(connection, error)
      throw classifyPgError(error)
    }
    if (this.#stop.signal.aborted) {
      await this.#release(connection)
      throw new ConnectionClosedError('The tracking backend is closed')
    }
    this.#client = connection
  }

  #heard(notification: PgNotification): void {
    if (notification.channel !== this.#channel) return
    const notice = parsePayload(notification.payload)
    if (notice) this.#deliver(notice)
  }

  #deliver(notice: CancelNotice): void {
    for (const subscriber of this.#subscribers) {
      try {
        subscriber.listener({ ...notice })
      } catch (error) {
        this.#log.warn('A cancel listener threw', { messageId: notice.messageId, ...errorMeta(error) })
      }
    }
  }

  #drop(client: PgPoolClient, error: unknown): void {
    const current = this.#client === client
    if (current) this.#client = undefined
    client.removeAllListeners?.('notification')
    try {
      // Released with an error, the pool destroys the connection instead of reusing it.
      client.release(error instanceof Error ? error : true)
    } catch {
      // Released already.
    }
    if (!current || this.#stop.signal.aborted || this.#subscribers.size === 0) return
    this.#log.warn('The cancel channel connection was lost; reconnecting', {
      channel: this.#channel,
      ...errorMeta(classifyPgError(error)),
    })
    this.#lost = true
    void this.#reconnect()
  }

  /** Listen again, then pass the cancels in force to every subscriber (again while the connection keeps failing). */
  async #reconnect(): Promise<void> {
    if (this.#reconnecting) return
    this.#reconnecting = true
    const backoff = new Backoff({ initial: 100, max: 5000 })
    const outage = new OutageLog(this.#log)
    const signal = this.#stop.signal
    while (this.#lost && !signal.aborted && this.#subscribers.size > 0) {
      try {
        await this.#listen()
        this.#lost = false
        const pending = await this.#pending()
        for (const [messageId, mode] of pending) this.#deliver({ messageId, mode })
        outage.recovered('Listening for cancels again', { channel: this.#channel })
      } catch (error) {
        this.#lost = true
        const wait = backoff.next()
        outage.failed(`Could not listen for cancels, retrying in ${wait} ms`, {
          channel: this.#channel,
          ...errorMeta(classifyPgError(error)),
        })
        await sleep(wait, signal)
      }
    }
    this.#reconnecting = false
  }

  async #unsubscribe(subscriber: Subscriber): Promise<void> {
    if (this.#subscribers.delete(subscriber) && this.#subscribers.size === 0) await this.#idle()
  }

  /** With nobody subscribed, the connection goes back to the pool. */
  async #idle(): Promise<void> {
    const client = this.#client
    if (!client) return
    this.#client = undefined
    await this.#release(client)
  }

  /** UNLISTEN, then back to the pool (destroyed if that failed). */
  async #release(client: PgPoolClient): Promise<void> {
    client.removeAllListeners?.('notification')
    client.removeAllListeners?.('error')
    client.removeAllListeners?.('end')
    client.on('error', () => undefined)
    let failed: unknown
    await client.query(`UNLISTEN "${this.#channel}"`).catch((error: unknown) => (failed = error ?? true))
    try {
      client.release(failed === undefined ? undefined : failed instanceof Error ? failed : true)
    } catch {
      // Released already.
    }
  }
}
