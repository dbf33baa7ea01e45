import { Notifier, type Logger } from '@tq/core'
import { Doorbell } from './doorbell.ts'
import type { PgPool, PgPoolClient } from './pg-types.ts'

/** A key being watched: its notifier and how often it was rung. */
export interface Watched {
  readonly notifier: Notifier
  /** Bumped on every ring: a waiter that sees it change while it looks, looks again. */
  rings: number
  holders: number
}

/**
 * A {@link Doorbell} for unbounded key sets: a key's bell exists only while someone watches it
 * (the plain doorbell keeps every bell it ever made, fine for queue names, not for results).
 *
 * It also keeps track of the connection it checks out, so that `close()` while the LISTEN is
 * still being sent cannot leave that connection checked out (which would hold up `pool.end()`).
 */
export class KeyDoorbell extends Doorbell {
  readonly #watched = new Map<string, Watched>()
  readonly #out: Set<PgPoolClient>

  constructor(options: { pool: PgPool; channel: string; logger: Logger }) {
    const out = new Set<PgPoolClient>()
    const { pool } = options
    const tracked: PgPool = {
      query: pool.query.bind(pool),
      end: () => pool.end(),
      on: (event, listener) => pool.on(event, listener),
      connect: async () => {
        const client = await pool.connect()
        const release = client.release.bind(client)
        out.add(client)
        client.release = (destroy) => {
          out.delete(client)
          release(destroy)
        }
        return client
      },
    }
    super({ ...options, pool: tracked })
    this.#out = out
  }

  override ring(key: string): void {
    const watched = this.#watched.get(key)
    if (!watched) return
    watched.rings++
    watched.notifier.notify()
  }

  override ringAll(): void {
    for (const key of this.#watched.keys()) this.ring(key)
  }

  override rings(key: string): number {
    return this.#watched.get(key)?.rings ?? 0
  }

  override async wait(key: string, ms: number, signal?: AbortSignal): Promise<boolean> {
    const watched = this.watch(key)
    try {
      return await watched.notifier.wait(ms, signal)
    } finally {
      this.unwatch(key, watched)
    }
  }

  /** Keep `key`'s bell (counting its rings) until {@link unwatch}. */
  watch(key: string): Watched {
    let watched = this.#watched.get(key)
    if (!watched) this.#watched.set(key, (watched = { notifier: new Notifier(), rings: 0, holders: 0 }))
    watched.holders++
    return watched
  }

  /** Stop watching; the bell goes when its last watcher leaves. */
  unwatch(key: string, watched: Watched): void {
    if (--watched.holders === 0 && this.#watched.get(key) === watched) this.#watched.delete(key)
  }

  override async close(): Promise<void> {
    await super.close()
    for (const client of [...this.#out]) {
      // Still listening: destroyed rather than given back to the pool.
      client.removeAllListeners?.('notification')
      client.on('error', () => undefined)
      client.release(true)
    }
    for (const watched of this.#watched.values()) watched.notifier.notify()
  }
}
