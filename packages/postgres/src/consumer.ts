import {
  Notifier,
  errorMessage,
  errorMeta,
  qName,
  sleep,
  type Consumer,
  type Encoder,
  type Logger,
  type MessageProxy,
  type ReceiveOptions,
} from '@tq/core'
import { Backoff, OutageLog, SignalCombiner, decodeOrReport, dueMessage, foreignMessageError } from '@tq/core/adapter'
import type { AckBatcher } from './settle-batcher.ts'
import { classifyPgError } from './classify-error.ts'
import type { Doorbell } from './doorbell.ts'
import { Delivery } from './message-proxy.ts'

/** A claimed row as the claim statement returns it. */
export interface ClaimedRow {
  id: string | null
  /** The message id the row was inserted with (what a foreign producer gave, for logs). */
  message_id: string | null
  body: Buffer | null
  deliveries: number | null
  available_at: Date | null
  next_in: number | null
}

/** What a consumer needs from its broker (kept off the broker's public surface). */
export interface PostgresConsumerHost {
  readonly logger: Logger
  readonly encoder: Encoder
  readonly doorbell: Doorbell
  readonly acks: AckBatcher
  /** Ms between claims of an idle consumer when no doorbell rings. */
  readonly pollInterval: number
  /** Claim up to `max` due rows of `queue` (the first call registers the worker). */
  claim(queue: string, max: number): Promise<ClaimedRow[]>
  /** Move rows to the dead letters with their reasons. */
  deadLetter(rows: ReadonlyArray<{ id: string; reason: string }>): Promise<void>
  /** Give rows back to their queue. */
  release(ids: readonly string[]): Promise<void>
  /** A message of this process was settled (wakes `join`). */
  settled(): void
  opened(consumer: PostgresConsumer): void
  closed(consumer: PostgresConsumer): void
}

/** Compare row ids (bigints as decimal strings). */
const byRowOrder = (a: ClaimedRow, b: ClaimedRow): number => {
  const at = (a.available_at?.getTime() ?? 0) - (b.available_at?.getTime() ?? 0)
  if (at !== 0) return at
  const x = a.id ?? ''
  const y = b.id ?? ''
  return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0)
}

/**
 * Consumes one queue for one worker. `receive()` claims up to the free prefetch of due rows in
 * one statement (`FOR UPDATE SKIP LOCKED`, so consumers never wait on each other); with nothing
 * due it waits for the queue's doorbell, for the next delayed message to fall due (the claim
 * says when), or for `pollInterval`, whichever comes first. Claimed rows stay in the table,
 * claimed by this worker, until acked (deleted), nacked (moved to the dead letters) or requeued
 * (unclaimed); if the process dies, the heartbeat stops and another worker gives them back.
 */
export class PostgresConsumer implements Consumer {
  readonly queueName: string
  readonly prefetch: number
  readonly timeout: number
  readonly #canonical: string
  readonly #host: PostgresConsumerHost
  readonly #outstanding = new Set<Delivery>()
  readonly #slotFreed = new Notifier()
  readonly #closing = new AbortController()
  readonly #signals = new SignalCombiner(this.#closing.signal)
  readonly #backoff = new Backoff({ initial: 100, max: 2000 })
  readonly #outage: OutageLog
  #closed = false

  constructor(host: PostgresConsumerHost, queueName: string, prefetch: number, timeout: number) {
    this.#host = host
    this.queueName = queueName
    this.#canonical = qName(queueName)
    this.prefetch = Math.max(1, prefetch)
    this.timeout = timeout
    this.#outage = new OutageLog(host.logger)
    host.opened(this)
  }

  /** Messages received and not yet acked, nacked or requeued. */
  get outstanding(): number {
    return this.#outstanding.size
  }

  get closed(): boolean {
    return this.#closed
  }

  async receive(options: ReceiveOptions = {}): Promise<MessageProxy[]> {
    const host = this.#host
    const deadline = Date.now() + this.timeout
    const signal = this.#signals.with(options.signal)
    for (;;) {
      if (this.#closed || signal.aborted) return []
      const remaining = deadline - Date.now()
      const free = this.prefetch - this.#outstanding.size
      if (free <= 0) {
        if (remaining <= 0) return []
        await this.#slotFreed.wait(remaining, signal)
        continue
      }
      const rings = host.doorbell.rings(this.#canonical)
      let rows: ClaimedRow[]
      try {
        rows = await host.claim(this.#canonical, free)
      } catch (caught) {
        if (this.#closed) return []
        const wait = this.#backoff.next()
        this.#outage.failed(`Claiming from ${this.queueName} failed; retrying in ${wait} ms`, {
          queue: this.queueName,
          ...errorMeta(classifyPgError(caught)),
        })
        await sleep(Math.max(0, Math.min(wait, deadline - Date.now())), signal)
        if (Date.now() >= deadline) return []
        continue
      }
      this.#outage.recovered(`Claiming from ${this.queueName} again`, { queue: this.queueName })
      this.#backoff.reset()
      let nextIn: number | null = null
      const claimed: ClaimedRow[] = []
      for (const row of rows) {
        if (row.id === null) nextIn = row.next_in === null ? null : Number(row.next_in)
        else claimed.push(row)
      }
      if (claimed.length > 0) {
        const deliveries = await this.#accept(claimed)
        if (this.#closed) {
          await this.#giveBack(deliveries)
          return []
        }
        if (deliveries.length > 0) return deliveries
        continue
      }
      if (remaining <= 0) return []
      // Rung while claiming: something came in after the claim's snapshot.
      if (host.doorbell.rings(this.#canonical) !== rings) continue
      let wait = Math.min(remaining, host.pollInterval)
      if (nextIn !== null) wait = Math.min(wait, Math.max(0, Math.ceil(nextIn)))
      await host.doorbell.wait(this.#canonical, wait, signal)
    }
  }

  /** Decode claimed rows; undecodable ones go to the dead letters and are not returned. */
  async #accept(rows: ClaimedRow[]): Promise<Delivery[]> {
    const host = this.#host
    if (rows.length > 1) rows.sort(byRowOrder)
    const deliveries: Delivery[] = []
    const rejected: Array<{ id: string; reason: string }> = []
    for (const row of rows) {
      const id = row.id as string
      const decoded = decodeOrReport(row.body ?? Buffer.alloc(0), host.encoder, host.logger, {
        queue: this.queueName,
        rowId: id,
        messageId: row.message_id,
      })
      if (!decoded.ok) {
        rejected.push({ id, reason: decoded.reason })
        continue
      }
      let message = decoded.message
      // A delayed message (or a retry) waited in its row: it runs as the due message it now is.
      if (message.queueName !== this.#canonical || 'eta' in message.options) message = dueMessage(message)
      const delivery = new Delivery(message, id, Number(row.deliveries ?? 1), this)
      this.#outstanding.add(delivery)
      deliveries.push(delivery)
    }
    if (rejected.length > 0) {
      await host.deadLetter(rejected).catch((error: unknown) => {
        // Left claimed: when this worker's claims are given back, it is claimed (and rejected) again.
        host.logger.error('Failed to dead-letter undecodable messages', {
          queue: this.queueName,
          ...errorMeta(classifyPgError(error)),
        })
      })
    }
    return deliveries
  }

  async #giveBack(deliveries: readonly Delivery[]): Promise<void> {
    if (deliveries.length === 0) return
    for (const d of deliveries) this.#outstanding.delete(d)
    await this.#host.release(deliveries.map((d) => d.rowId)).catch((error: unknown) => {
      this.#host.logger.warn('Failed to give messages back to their queue; they come back when this worker is reaped', {
        queue: this.queueName,
        ...errorMeta(classifyPgError(error)),
      })
    })
  }

  #own(message: MessageProxy): Delivery {
    if (message instanceof Delivery && message.receivedBy === this) return message
    throw foreignMessageError('PostgresConsumer', this.queueName, message)
  }

  #settle(delivery: Delivery): void {
    if (this.#outstanding.delete(delivery)) this.#slotFreed.notify()
  }

  async ack(message: MessageProxy): Promise<void> {
    const delivery = this.#own(message)
    this.#settle(delivery)
    try {
      await this.#host.acks.ack(delivery.rowId)
    } catch (error) {
      throw classifyPgError(error)
    } finally {
      this.#host.settled()
    }
  }

  async nack(message: MessageProxy): Promise<void> {
    const delivery = this.#own(message)
    this.#settle(delivery)
    const reason = delivery.exception === undefined ? 'nacked' : errorMessage(delivery.exception)
    try {
      await this.#host.deadLetter([{ id: delivery.rowId, reason }])
    } catch (error) {
      throw classifyPgError(error)
    } finally {
      this.#host.settled()
    }
  }

  async requeue(messages: readonly MessageProxy[]): Promise<void> {
    const deliveries = messages.map((m) => this.#own(m))
    for (const d of deliveries) this.#settle(d)
    if (deliveries.length === 0) return
    try {
      await this.#host.release(deliveries.map((d) => d.rowId))
    } catch (error) {
      throw classifyPgError(error)
    }
  }

  /** Stop claiming. Messages already received can still be settled. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#closing.abort()
    this.#slotFreed.notify()
    this.#host.closed(this)
  }
}

/**
 * The consumer of a delay queue (`q.DQ`): delayed messages wait in their rows on `q` until due and
 * `q`'s consumer claims them, so this one never delivers anything. It exists because a worker
 * opens one for every delay queue.
 */
export class DelayQueueConsumer implements Consumer {
  readonly queueName: string
  readonly timeout: number
  readonly #closing = new AbortController()
  readonly #signals = new SignalCombiner(this.#closing.signal)

  constructor(queueName: string, timeout: number) {
    this.queueName = queueName
    this.timeout = timeout
  }

  async receive(options: ReceiveOptions = {}): Promise<MessageProxy[]> {
    await sleep(this.timeout, this.#signals.with(options.signal))
    return []
  }

  ack(message: MessageProxy): Promise<void> {
    return Promise.reject(foreignMessageError('PostgresBroker delay-queue consumer', this.queueName, message))
  }

  nack(message: MessageProxy): Promise<void> {
    return Promise.reject(foreignMessageError('PostgresBroker delay-queue consumer', this.queueName, message))
  }

  requeue(messages: readonly MessageProxy[]): Promise<void> {
    const [first] = messages
    if (!first) return Promise.resolve()
    return Promise.reject(foreignMessageError('PostgresBroker delay-queue consumer', this.queueName, first))
  }

  async close(): Promise<void> {
    this.#closing.abort()
  }
}
