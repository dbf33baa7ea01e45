import { errorMeta, sleep, type Broker, type Encoder, type Logger, type Message } from '@tq/core'
import { Backoff, OutageLog, decodeOrReport, dueMessage } from '@tq/core/adapter'
import { inTransaction } from '../transact.ts'
import type { Doorbell } from '../doorbell.ts'
import type { PgPool, PgPoolClient } from '../pg-types.ts'
import type { OutboxQueries } from './schema.ts'

export interface RelayOptions {
  pool: PgPool
  queries: OutboxQueries
  /** The advisory lock's key text (one relay per schema at a time). */
  lockKey: string
  target: Broker
  encoder: () => Encoder
  doorbell: Doorbell
  /** The doorbell key the insert statement rings. */
  bell: string
  batchSize: number
  pollInterval: number
  logger: Logger
  /** Called after each forwarded batch (wakes `join`). */
  forwarded(): void
}

interface Row {
  id: string
  queue: string
  body: Buffer
  due_in: number
}

/**
 * Forwards committed outbox rows to the target broker. Every process may run one; they take
 * turns by a transaction-scoped advisory lock, so one batch is in flight at a time per schema
 * and rows go in their order. A batch is read and locked, sent with the target's
 * `enqueueMany` (messages still delayed keep what is left of their delay), then deleted in the
 * same transaction: a relay that dies mid-batch leaves the rows for the next one, which sends
 * them again (at most one batch of duplicates, never a loss).
 */
export class Relay {
  readonly #o: RelayOptions
  readonly #stop = new AbortController()
  readonly #outage: OutageLog
  #loop: Promise<void> | undefined

  constructor(options: RelayOptions) {
    this.#o = options
    this.#outage = new OutageLog(options.logger)
  }

  get running(): boolean {
    return this.#loop !== undefined && !this.#stop.signal.aborted
  }

  start(): void {
    if (this.#stop.signal.aborted) return
    this.#o.doorbell.start()
    this.#loop ??= this.#run()
  }

  async #run(): Promise<void> {
    const { doorbell, bell, pollInterval } = this.#o
    const signal = this.#stop.signal
    const backoff = new Backoff({ initial: 100, max: 5000 })
    while (!signal.aborted) {
      const rings = doorbell.rings(bell)
      let outcome: 'more' | 'idle' | 'busy'
      try {
        outcome = await this.relayOnce()
        backoff.reset()
        this.#outage.recovered('The outbox relay forwards again', {})
      } catch (error) {
        if (signal.aborted) break
        const wait = backoff.next()
        this.#outage.failed(`The outbox relay failed; retrying in ${wait} ms`, { ...errorMeta(error) })
        await sleep(wait, signal)
        continue
      }
      if (outcome === 'more') continue
      if (doorbell.rings(bell) !== rings) continue
      await doorbell.wait(bell, pollInterval, signal)
    }
  }

  /**
   * Forward one batch if this relay gets the turn: `more` (a full batch went, look again),
   * `idle` (nothing waiting), `busy` (another relay has the turn).
   */
  async relayOnce(): Promise<'more' | 'idle' | 'busy'> {
    const { pool, queries, lockKey, batchSize } = this.#o
    const outcome = await inTransaction(pool, async (client) => {
      const lead = await client.query<{ leader: boolean }>(queries.lead, [lockKey])
      if (lead.rows[0]?.leader !== true) return 'busy'
      const { rows } = await client.query<Row>(queries.take, [batchSize])
      if (rows.length === 0) return 'idle'
      await this.#forward(client, rows)
      return rows.length === batchSize ? 'more' : 'forwarded'
    })
    if (outcome === 'busy' || outcome === 'idle') return outcome
    this.#o.forwarded()
    return outcome === 'more' ? 'more' : 'idle'
  }

  async #forward(client: PgPoolClient, rows: readonly Row[]): Promise<void> {
    const { target, queries, logger } = this.#o
    const encoder = this.#o.encoder()
    const rejected: Array<{ id: string; reason: string }> = []
    // Consecutive rows with the same delay go in one enqueueMany, so the order holds.
    let group: Message[] = []
    let groupDelay = 0
    const flush = async (): Promise<void> => {
      if (group.length === 0) return
      await target.enqueueMany(group, groupDelay > 0 ? { delay: groupDelay } : {})
      group = []
    }
    for (const row of rows) {
      const decoded = decodeOrReport(row.body, encoder, logger, { outboxId: row.id, queue: row.queue })
      if (!decoded.ok) {
        rejected.push({ id: row.id, reason: decoded.reason })
        continue
      }
      const message = 'eta' in decoded.message.options ? dueMessage(decoded.message) : decoded.message
      const delay = Math.ceil(Number(row.due_in))
      if (group.length > 0 && delay !== groupDelay) await flush()
      groupDelay = delay
      group.push(message)
    }
    await flush()
    const sent = rows.filter((r) => !rejected.some((x) => x.id === r.id)).map((r) => r.id)
    if (sent.length > 0) await client.query(queries.done, [sent])
    if (rejected.length > 0) {
      await client.query(queries.reject, [rejected.map((r) => r.id), rejected.map((r) => r.reason)])
    }
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    await this.#loop
  }
}
