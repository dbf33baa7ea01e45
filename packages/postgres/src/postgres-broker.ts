import { createHash, randomUUID } from 'node:crypto'
import type {
  Message} from '@tq/core';
import {
  Broker,
  BrokerConnectionError,
  ErrorCode,
  Notifier,
  QueueNotFoundError,
  errorMeta,
  qName,
  type BrokerPlugin,
  type ConsumeOptions,
  type EnqueueOptions,
  type OutgoingMessage,
  type QueueCounts,
  type TqError,
  type TransactionExecutor,
  type TransmitOptions,
} from '@tq/core'
import { pollUntilEmpty, type JoinPollOptions } from '@tq/core/adapter'
import { AmbientTransaction } from './ambient.ts'
import { brokerSchema } from './broker-schema.ts'
import { classifyPgError } from './classify-error.ts'
import { DelayQueueConsumer, PostgresConsumer, type ClaimedRow, type PostgresConsumerHost } from './consumer.ts'
import { Doorbell } from './doorbell.ts'
import { channelName } from './identifiers.ts'
import { Maintenance } from './maintenance.ts'
import { openPool } from './pool.ts'
import { resolveSettings, type PostgresBrokerOptions, type PostgresSettings } from './options.ts'
import type { PgPool } from './pg-types.ts'
import { brokerQueries, type BrokerQueries } from './queries.ts'
import { SchemaGate, migrate } from './schema.ts'
import { insertValues } from './insert-values.ts'
import { redrive, type RedriveHost } from './redrive.ts'
import { AckBatcher } from './settle-batcher.ts'

/** Most messages in one insert statement (bigger batches take several, in order). */
const INSERT_CHUNK = 5000

/**
 * The names of the prepared statements of a schema. Names longer than PostgreSQL's 63 bytes are
 * cut by the server, so two long schema names could share one: those use a digest instead.
 */
function statementNames(schema: string): { enqueue: string; claim: string; ack: string } {
  const stem = schema.length <= 48 ? schema : createHash('md5').update(schema).digest('hex')
  return { enqueue: `tq_${stem}_enqueue`, claim: `tq_${stem}_claim`, ack: `tq_${stem}_ack` }
}

/** A dead letter as `deadLetters()` lists it. */
export interface PostgresDeadLetter {
  messageId: string
  body: Uint8Array
  reason: string | null
  deadAt: Date
}

/**
 * A broker on PostgreSQL (node-postgres). Messages are rows of `<schema>.messages`: an enqueue is
 * one INSERT (any number of messages), a consumer claims a batch of due rows in one statement
 * with `FOR UPDATE SKIP LOCKED`, an ack deletes the row (batched), a nack moves it to
 * `<schema>.dead_letters` (kept 7 days). Delays and retries are rows with a later
 * `available_at`: nothing moves them when they fall due, and no worker holds them in memory.
 * Idle consumers wake on LISTEN/NOTIFY (a doorbell; they still poll), and a worker whose
 * heartbeat stops gets its claimed messages given back to their queues.
 *
 * Enqueue inside your own transaction with `sendWithOptions({ args, transaction })`,
 * `run({ transaction })` or `broker.withTransaction(tx, fn)`: the rows commit or roll back with
 * it. Not wire-compatible with a Python Dramatiq (no Dramatiq broker uses these tables).
 */
export class PostgresBroker extends Broker<PostgresConsumer | DelayQueueConsumer> {
  readonly pool: PgPool
  readonly schema: string
  /** This broker's id in `<schema>.workers` and in `claimed_by`. */
  readonly workerId: string = randomUUID()
  readonly settings: Readonly<PostgresSettings>
  readonly #ownsPool: boolean
  readonly #where: Record<string, string>
  readonly #log = this.logger.child({ component: 'postgres' })
  readonly #queries: BrokerQueries
  readonly #names: { enqueue: string; claim: string; ack: string }
  readonly #channel: string
  readonly #gate: SchemaGate
  readonly #doorbell: Doorbell
  readonly #maintenance: Maintenance
  readonly #acks: AckBatcher
  readonly #consumers = new Set<PostgresConsumer>()
  readonly #idle = new Set<DelayQueueConsumer>()
  readonly #ambient = new AmbientTransaction()
  readonly #settled = new Notifier()
  readonly #host: PostgresConsumerHost
  readonly #redriveHost: RedriveHost
  #consuming: Promise<void> | undefined
  #consumingReady = false

  constructor(options: PostgresBrokerOptions = {}) {
    super(options)
    const settings = resolveSettings(options)
    this.settings = settings
    this.schema = settings.schema
    const opened = openPool(options, this.#log)
    this.pool = opened.pool
    this.#ownsPool = opened.owned
    this.#where = opened.where
    const schema = settings.schema
    this.#queries = brokerQueries(schema)
    this.#names = statementNames(schema)
    this.#channel = channelName(schema)
    const logger = this.#log
    this.#gate = new SchemaGate({
      pool: this.pool,
      schema,
      components: [brokerSchema],
      migrate: settings.migrate,
      logger,
    })
    this.#doorbell = new Doorbell({ pool: this.pool, channel: this.#channel, logger })
    this.#maintenance = new Maintenance({
      pool: this.pool,
      queries: this.#queries,
      workerId: this.workerId,
      channel: this.#channel,
      heartbeatInterval: settings.heartbeatInterval,
      heartbeatTimeout: settings.heartbeatTimeout,
      deadLetterTtl: settings.deadLetterTtl,
      logger,
      released: (queues) => {
        for (const q of queues) this.#doorbell.ring(q)
      },
    })
    this.#acks = new AckBatcher({
      pool: this.pool,
      text: this.#queries.ack,
      name: this.#names.ack,
      workerId: this.workerId,
      onLost: (lost) =>
        logger.warn(
          `${lost} acked message(s) were no longer claimed by this worker (its heartbeat had lapsed): they may run again`,
          { workerId: this.workerId },
        ),
    })
    const encoder = () => this.encoder
    this.#redriveHost = {
      pool: this.pool,
      queries: this.#queries,
      channel: this.#channel,
      encoder,
      beforeEnqueue: (message) => this.emitBefore('beforeEnqueue', message, undefined),
      afterEnqueue: (message, body) => this.emitAfter('afterEnqueue', message, undefined, body),
    }
    this.#host = {
      logger,
      get encoder() {
        return encoder()
      },
      doorbell: this.#doorbell,
      acks: this.#acks,
      pollInterval: settings.pollInterval,
      claim: (queue, max) => this.#claim(queue, max),
      deadLetter: (rows) => this.#deadLetter(rows),
      release: (ids) => this.#release(ids),
      settled: () => this.#settled.notify(),
      opened: (consumer) => this.#consumers.add(consumer),
      closed: (consumer) => this.#consumers.delete(consumer),
    }
  }

  // ---- schema ----

  /** Create or upgrade the broker's tables now; resolves with the migrations it applied. */
  migrate(): Promise<Array<{ component: string; version: number }>> {
    return migrate(this.pool, this.schema, [brokerSchema], this.#log).catch((error: unknown) => {
      throw classifyPgError(error)
    })
  }

  // ---- enqueue ----

  override get acceptsTransactions(): boolean {
    return true
  }

  /**
   * Run `fn` with `transaction` as the ambient transaction of this broker: every enqueue on it
   * inside `fn` (an actor's `send`, a group's `run`, nested calls) joins that transaction unless it
   * names another one. Resolves with what `fn` returns. The transaction stays yours to commit.
   */
  withTransaction<T>(transaction: TransactionExecutor, fn: () => T | Promise<T>): Promise<T> {
    return this.#ambient.run(transaction, fn)
  }

  override enqueueMany(messages: readonly Message[], options: EnqueueOptions = {}): Promise<Message[]> {
    return super.enqueueMany(messages, this.#ambient.apply(options))
  }

  /**
   * One INSERT per 5 000 messages (one for a single send), through the caller's transaction when
   * there is one; the same statement rings the doorbell of each queue (at commit in a transaction).
   */
  protected override async transmit(outgoing: readonly OutgoingMessage[], options: TransmitOptions): Promise<void> {
    if (!this.#gate.ready) await this.#gate.ensure()
    const transaction = options.transaction
    for (let start = 0; start < outgoing.length; start += INSERT_CHUNK) {
      const chunk = outgoing.length <= INSERT_CHUNK ? outgoing : outgoing.slice(start, start + INSERT_CHUNK)
      const values = insertValues(chunk, this.#channel)
      try {
        if (transaction) await transaction.query(this.#queries.enqueue, values)
        else await this.pool.query({ name: this.#names.enqueue, text: this.#queries.enqueue, values })
      } catch (error) {
        throw classifyPgError(error)
      }
    }
  }

  // ---- consume ----

  protected override openConsumer(queueName: string, options: ConsumeOptions): PostgresConsumer | DelayQueueConsumer {
    const canonical = qName(queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    const timeout = options.timeout ?? 1000
    if (queueName.endsWith('.DQ')) {
      const idle = new DelayQueueConsumer(queueName, timeout)
      this.#idle.add(idle)
      return idle
    }
    return new PostgresConsumer(this.#host, queueName, options.prefetch ?? this.settings.defaultPrefetch, timeout)
  }

  /** Tables checked, first heartbeat written, doorbell listening: before the first claim. */
  #startConsuming(): Promise<void> {
    this.#consuming ??= (async () => {
      await this.#gate.ensure()
      await this.#maintenance.start()
      if (this.settings.listen) this.#doorbell.start()
      this.#consumingReady = true
    })().catch((error: unknown) => {
      this.#consuming = undefined
      throw error
    })
    return this.#consuming
  }

  async #claim(queue: string, max: number): Promise<ClaimedRow[]> {
    if (!this.#consumingReady) await this.#startConsuming()
    const { rows } = await this.pool.query<ClaimedRow>({
      name: this.#names.claim,
      text: this.#queries.claim,
      values: [queue, this.workerId, max],
    })
    return rows
  }

  async #deadLetter(rows: ReadonlyArray<{ id: string; reason: string }>): Promise<void> {
    await this.pool.query(this.#queries.deadLetter, [rows.map((r) => r.id), this.workerId, rows.map((r) => r.reason)])
  }

  async #release(ids: readonly string[]): Promise<void> {
    await this.pool.query(this.#queries.release, [ids, this.workerId, this.#channel])
  }

  // ---- counts, join, dead letters ----

  /** Ready (due, unclaimed), delayed (not yet due), running (claimed) and dead messages of a queue. */
  override async queueCounts(queueName: string): Promise<QueueCounts> {
    await this.#ready()
    const { rows } = await this.#query<{ ready: number; delayed: number; running: number; dead: number }>(
      this.#queries.counts,
      [qName(queueName)],
    )
    const row = rows[0] ?? { ready: 0, delayed: 0, running: 0, dead: 0 }
    return { ready: row.ready, delayed: row.delayed, running: row.running, dead: row.dead }
  }

  /** Wait until a queue holds no message: none ready, delayed or claimed. */
  override join(queueName: string, options: Pick<JoinPollOptions, 'timeout' | 'interval'> = {}): Promise<void> {
    const canonical = qName(queueName)
    return pollUntilEmpty(
      canonical,
      async () => {
        const c = await this.queueCounts(canonical)
        return c.ready + c.delayed + (c.running ?? 0) === 0
      },
      { timeout: options.timeout, interval: options.interval ?? 50, wake: this.#settled },
    )
  }

  /** The dead letters of a queue, oldest first (up to `limit`, default 100). */
  async deadLetters(queueName: string, options: { limit?: number } = {}): Promise<PostgresDeadLetter[]> {
    await this.#ready()
    const { rows } = await this.#query<{ message_id: string; body: Buffer; reason: string | null; dead_at: Date }>(
      this.#queries.deadLetters,
      [qName(queueName), options.limit ?? 100],
    )
    return rows.map((r) => ({
      messageId: r.message_id,
      body: new Uint8Array(r.body),
      reason: r.reason,
      deadAt: r.dead_at,
    }))
  }

  /**
   * Move up to `limit` (default all) dead letters of a queue back to it, oldest first, due now
   * and with their retry count reset. Each batch of 100 moves in one transaction (inserted and
   * deleted together), so nothing is lost or doubled if the process dies. Dead letters that do
   * not decode stay.
   */
  override async redriveDeadLetters(queueName: string, options: { limit?: number } = {}): Promise<number> {
    this.assertOpen()
    const canonical = qName(queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    await this.#ready()
    return redrive(this.#redriveHost, canonical, options.limit ?? Infinity)
  }

  // ---- flush ----

  /** Drop the messages of a queue that no worker has claimed (ready and delayed). */
  override async flush(queueName: string): Promise<void> {
    await this.#ready()
    await this.#query(this.#queries.flush, [qName(queueName)])
  }

  /** Flush every declared queue and drop its dead letters. */
  override async flushAll(): Promise<void> {
    await this.#ready()
    for (const queue of this.queues) {
      await this.#query(this.#queries.flush, [queue])
      await this.#query(this.#queries.flushDead, [queue])
    }
  }

  // ---- lifecycle ----

  /** Check that PostgreSQL answers and the tables are there (creating them unless `migrate: false`). */
  override async connect(): Promise<void> {
    this.assertOpen()
    try {
      await this.#gate.ensure()
    } catch (error) {
      const classified = classifyPgError(error)
      if (classified.code === ErrorCode.CONFIGURATION || !(classified instanceof BrokerConnectionError))
        throw classified
      throw new BrokerConnectionError(
        `Could not reach PostgreSQL: ${classified.message}`,
        ErrorCode.CONNECTION_FAILED,
        {
          cause: error,
        },
      )
    }
  }

  /** The host and database (when the broker built its pool from a URL) and the schema. */
  override describe(): Record<string, string | number> {
    return { ...this.#where, schema: this.schema }
  }

  /**
   * Stop consumers, send pending acks, give back what this worker still claims, stop the
   * heartbeat (forgetting this worker) and the doorbell, then end the pool if the broker built it.
   */
  protected override async closeTransport(): Promise<void> {
    for (const consumer of [...this.#consumers]) await consumer.close()
    for (const idle of this.#idle) await idle.close()
    await this.#acks.drain()
    if (this.#consumingReady) {
      await this.pool.query(this.#queries.releaseAll, [this.workerId, this.#channel]).catch((error: unknown) => {
        this.#log.warn('Could not give back the messages this worker still claims; they come back once it is reaped', {
          ...errorMeta(classifyPgError(error)),
        })
      })
    }
    await this.#maintenance.stop()
    await this.#doorbell.close()
    if (this.#ownsPool) await this.pool.end()
  }

  /** node-postgres's and the server's errors, as `classifyPgError` maps them. */
  override classifyError(error: unknown): TqError {
    return classifyPgError(error)
  }

  // ---- helpers ----

  async #ready(): Promise<void> {
    if (!this.#gate.ready) await this.#gate.ensure()
  }

  async #query<R>(text: string, values: readonly unknown[]): Promise<{ rows: R[] }> {
    try {
      return await this.pool.query<R>(text, values)
    } catch (error) {
      throw classifyPgError(error)
    }
  }
}

/** `postgres://` and `postgresql://` URLs build a PostgresBroker on that database. */
export const brokerPlugin: BrokerPlugin = {
  name: '@tq/postgres PostgresBroker',
  schemes: ['postgres', 'postgresql'],
  create: (url?: string) => new PostgresBroker(url === undefined ? {} : { connectionString: url }),
}
