import { Notifier, errorMeta, sleep, type Logger } from '@tq/core'
import { Backoff, OutageLog } from '@tq/core/adapter'
import { classifyPgError } from './classify-error.ts'
import type { PgPool, PgPoolClient } from './pg-types.ts'

interface Bell {
  readonly notifier: Notifier
  /** Bumped on every ring: a consumer that saw it change while claiming claims again at once. */
  rings: number
}

/**
 * The wake-up of idle consumers: one connection per broker LISTENs on the schema's channel, and
 * each notification (a queue name, sent by the enqueue statement, at commit inside a
 * transaction) wakes that queue's waiting consumers. It is only a doorbell: consumers still poll
 * (every `pollInterval`), so a lost notification, or the connection being down, costs latency,
 * never a message. After a reconnect every queue is rung, for what was missed meanwhile.
 */
export class Doorbell {
  readonly #pool: PgPool
  readonly #channel: string
  readonly #log: Logger
  readonly #bells = new Map<string, Bell>()
  readonly #closing = new AbortController()
  #client: PgPoolClient | undefined
  #loop: Promise<void> | undefined
  #listening = false
  /** Connections given back already (an error and an end both report one loss). */
  readonly #dropped = new WeakSet<PgPoolClient>()
  /** Wakes the connection loop when the connection failed. */
  readonly #lost = new Notifier()

  constructor(options: { pool: PgPool; channel: string; logger: Logger }) {
    this.#pool = options.pool
    this.#channel = options.channel
    this.#log = options.logger
  }

  /** Whether notifications are arriving now (false before the first LISTEN and while reconnecting). */
  get listening(): boolean {
    return this.#listening
  }

  /** Start listening (once; idempotent). */
  start(): void {
    if (this.#closing.signal.aborted) return
    this.#loop ??= this.#run()
  }

  #bell(queue: string): Bell {
    let bell = this.#bells.get(queue)
    if (!bell) {
      bell = { notifier: new Notifier(), rings: 0 }
      this.#bells.set(queue, bell)
    }
    return bell
  }

  /** How many times `queue` was rung so far. */
  rings(queue: string): number {
    return this.#bell(queue).rings
  }

  /** Wake the consumers of `queue`. */
  ring(queue: string): void {
    const bell = this.#bells.get(queue)
    if (!bell) return
    bell.rings++
    bell.notifier.notify()
  }

  ringAll(): void {
    for (const queue of this.#bells.keys()) this.ring(queue)
  }

  /** Wait up to `ms` for `queue` to be rung; true if it was. */
  wait(queue: string, ms: number, signal?: AbortSignal): Promise<boolean> {
    return this.#bell(queue).notifier.wait(ms, signal)
  }

  async #run(): Promise<void> {
    const backoff = new Backoff({ initial: 100, max: 5000 })
    const outage = new OutageLog(this.#log)
    const signal = this.#closing.signal
    while (!signal.aborted) {
      let client: PgPoolClient | undefined
      try {
        client = await this.#pool.connect()
        if (signal.aborted) {
          client.release()
          break
        }
        const connection = client
        connection.on('notification', (n) => {
          if (n.channel === this.#channel && n.payload) this.ring(n.payload)
        })
        connection.on('error', (error) => this.#drop(connection, error))
        connection.on('end', () => this.#drop(connection, new Error('connection ended')))
        await connection.query(`LISTEN "${this.#channel}"`)
        // Closed while LISTEN was on its way: close() found no connection to give back.
        if (signal.aborted) {
          this.#drop(connection, true)
          break
        }
        this.#client = connection
        this.#listening = true
        backoff.reset()
        outage.recovered('Listening for wake-ups again', { channel: this.#channel })
        // Whatever was enqueued while nobody listened.
        this.ringAll()
        await this.#lost.wait(undefined, signal)
      } catch (error) {
        if (client) this.#drop(client, error)
        if (signal.aborted) break
        const wait = backoff.next()
        outage.failed(`Could not LISTEN for wake-ups; consumers poll meanwhile, retrying in ${wait} ms`, {
          channel: this.#channel,
          ...errorMeta(classifyPgError(error)),
        })
        await sleep(wait, signal)
      }
    }
  }

  #drop(client: PgPoolClient, error: unknown): void {
    if (this.#dropped.has(client)) return
    this.#dropped.add(client)
    if (this.#client === client) {
      this.#client = undefined
      this.#listening = false
      if (!this.#closing.signal.aborted) {
        this.#log.warn('The wake-up connection was lost; reconnecting', {
          channel: this.#channel,
          ...errorMeta(classifyPgError(error)),
        })
      }
    }
    client.removeAllListeners?.('notification')
    // The pool destroys a connection released with an error instead of reusing it.
    try {
      client.release(error instanceof Error ? error : true)
    } catch {
      // Released already.
    }
    this.#lost.notify()
  }

  async close(): Promise<void> {
    this.#closing.abort()
    const client = this.#client
    this.#client = undefined
    this.#listening = false
    if (client) {
      await client.query(`UNLISTEN "${this.#channel}"`).catch(() => undefined)
      client.removeAllListeners?.('notification')
      client.removeAllListeners?.('error')
      client.removeAllListeners?.('end')
      client.on('error', () => undefined)
      try {
        client.release()
      } catch {
        // Released already.
      }
    }
    this.#lost.notify()
    await this.#loop
    for (const bell of this.#bells.values()) bell.notifier.notify()
  }
}
