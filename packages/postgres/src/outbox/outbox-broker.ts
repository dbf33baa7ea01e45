import {
  Broker,
  ErrorCode,
  Notifier,
  qName,
  type BrokerOptions,
  type ConsumeOptions,
  type Consumer,
  type EnqueueOptions,
  type JoinOptions,
  type Message,
  type OutgoingMessage,
  type QueueCounts,
  type TqError,
  type TransactionExecutor,
  type TransmitOptions,
} from '@tq/core'
import { pollUntilEmpty } from '@tq/core/adapter'
import { AmbientTransaction } from '../ambient.ts'
import { classifyPgError } from '../classify-error.ts'
import { Doorbell } from '../doorbell.ts'
import { channelName, checkSchemaName } from '../identifiers.ts'
import { openPool, type ConnectionOptions } from '../pool.ts'
import type { PgPool } from '../pg-types.ts'
import { SchemaGate, migrate } from '../schema.ts'
import { Relay } from './relay.ts'
import { outboxQueries, outboxSchema, type OutboxQueries } from './schema.ts'

export interface OutboxBrokerOptions extends BrokerOptions, ConnectionOptions {
  /** The broker that carries the messages once committed (a RabbitmqBroker, RedisBroker, SqsBroker, …). */
  target: Broker
  /** The schema of the outbox table (default `tq`). */
  schema?: string
  /** Create or upgrade the table on first use (default true). */
  migrate?: boolean
  /**
   * Run the relay in this process: `'auto'` (default) once a worker consumes through this broker,
   * `true` from the first use, `false` never (run it elsewhere with `startRelay()`).
   */
  relay?: boolean | 'auto'
  /** Rows forwarded per relay transaction (default 500). */
  batchSize?: number
  /** Ms between relay checks when no notification arrives (default 1000). */
  pollInterval?: number
  /** Close the target with this broker (default true). */
  closeTarget?: boolean
}

/**
 * Enqueue into PostgreSQL inside the application's transaction, deliver through another broker.
 * Actors bound to it write each message to `<schema>.outbox` (in the caller's transaction when
 * there is one: `sendWithOptions({ args, transaction })`, `run({ transaction })`,
 * `withTransaction(tx, fn)`); a relay forwards committed rows to `target` in order, at least once,
 * and deletes them. Consuming goes through the target: a `Worker` on this broker reads the
 * target's queues (Python Dramatiq consumers on the target read the same messages).
 *
 * Give the target no middleware of its own (`middleware: []`): this broker's middleware runs for
 * every message, and the relay's sends would run the target's again.
 */
export class OutboxBroker extends Broker {
  readonly target: Broker
  readonly pool: PgPool
  readonly schema: string
  readonly #ownsPool: boolean
  readonly #closeTarget: boolean
  readonly #relayMode: boolean | 'auto'
  readonly #queries: OutboxQueries
  readonly #channel: string
  readonly #gate: SchemaGate
  readonly #doorbell: Doorbell
  readonly #relay: Relay
  readonly #ambient = new AmbientTransaction()
  readonly #forwarded = new Notifier()
  readonly #log = this.logger.child({ component: 'outbox' })

  constructor(options: OutboxBrokerOptions) {
    super(options)
    this.target = options.target
    this.schema = checkSchemaName(options.schema ?? 'tq')
    const opened = openPool(options, this.#log, 'tq outbox')
    this.pool = opened.pool
    this.#ownsPool = opened.owned
    this.#closeTarget = options.closeTarget ?? true
    this.#relayMode = options.relay ?? 'auto'
    this.#queries = outboxQueries(this.schema)
    this.#channel = channelName(this.schema, 'outbox')
    this.#gate = new SchemaGate({
      pool: this.pool,
      schema: this.schema,
      components: [outboxSchema],
      migrate: options.migrate ?? true,
      logger: this.#log,
    })
    this.#doorbell = new Doorbell({ pool: this.pool, channel: this.#channel, logger: this.#log })
    this.#relay = new Relay({
      pool: this.pool,
      queries: this.#queries,
      lockKey: `tq:outbox:${this.schema}`,
      target: this.target,
      encoder: () => this.encoder,
      doorbell: this.#doorbell,
      bell: 'outbox',
      batchSize: options.batchSize ?? 500,
      pollInterval: options.pollInterval ?? 1000,
      logger: this.#log,
      forwarded: () => this.#forwarded.notify(),
    })
  }

  /** Create or upgrade the outbox table now. */
  migrate(): Promise<Array<{ component: string; version: number }>> {
    return migrate(this.pool, this.schema, [outboxSchema], this.#log).catch((error: unknown) => {
      throw classifyPgError(error)
    })
  }

  /** Run the relay in this process (idempotent); `relay: 'auto'` starts it with the first consumer. */
  startRelay(): void {
    this.assertOpen()
    void this.#gate.ensure().then(
      () => this.#relay.start(),
      (error: unknown) => this.#log.error('The outbox relay cannot start', { error: String(error) }),
    )
  }

  /** Forward one batch now, if this process gets the turn (for tests and scripts). */
  async relayOnce(): Promise<'more' | 'idle' | 'busy'> {
    await this.#gate.ensure()
    return this.#relay.relayOnce()
  }

  // ---- enqueue: into the outbox ----

  override get acceptsTransactions(): boolean {
    return true
  }

  /** Every enqueue on this broker inside `fn` joins `transaction` (see PostgresBroker.withTransaction). */
  withTransaction<T>(transaction: TransactionExecutor, fn: () => T | Promise<T>): Promise<T> {
    return this.#ambient.run(transaction, fn)
  }

  override enqueueMany(messages: readonly Message[], options: EnqueueOptions = {}): Promise<Message[]> {
    return super.enqueueMany(messages, this.#ambient.apply(options))
  }

  protected override onDeclareQueue(queueName: string): void {
    this.target.declareQueue(queueName)
  }

  /** One INSERT into the outbox (in the caller's transaction when given), ringing the relay at commit. */
  protected override async transmit(outgoing: readonly OutgoingMessage[], options: TransmitOptions): Promise<void> {
    if (!this.#gate.ready) await this.#gate.ensure()
    if (this.#relayMode === true) this.#relay.start()
    const values = [
      outgoing.map((o) => o.canonical),
      outgoing.map((o) => Buffer.from(o.body.buffer, o.body.byteOffset, o.body.byteLength)),
      outgoing.map((o) => Math.max(0, o.delay ?? 0)),
      this.#channel,
    ]
    try {
      if (options.transaction) await options.transaction.query(this.#queries.insert, values)
      else await this.pool.query(this.#queries.insert, values)
    } catch (error) {
      throw classifyPgError(error)
    }
  }

  // ---- consume, count, join: through the target ----

  protected override openConsumer(queueName: string, options: ConsumeOptions): Consumer {
    if (this.#relayMode !== false) this.startRelay()
    return this.target.consume(queueName, options)
  }

  /** The target's counts, with the messages still in the outbox counted as ready. */
  override async queueCounts(queueName: string): Promise<QueueCounts> {
    const counts = this.target.queueCounts ? await this.target.queueCounts(queueName) : undefined
    const pending = await this.#pending(queueName)
    return {
      ready: (counts?.ready ?? 0) + pending,
      delayed: counts?.delayed ?? 0,
      running: counts?.running,
      dead: counts?.dead ?? 0,
    }
  }

  async #pending(queueName: string): Promise<number> {
    await this.#gate.ensure()
    try {
      const { rows } = await this.pool.query<{ n: number }>(this.#queries.pending, [qName(queueName)])
      return rows[0]?.n ?? 0
    } catch (error) {
      throw classifyPgError(error)
    }
  }

  /** Wait until the outbox holds nothing for the queue and the target's join returns. */
  override async join(queueName: string, options: JoinOptions = {}): Promise<void> {
    const started = Date.now()
    await pollUntilEmpty(qName(queueName), async () => (await this.#pending(queueName)) === 0, {
      timeout: options.timeout,
      interval: 50,
      wake: this.#forwarded,
    })
    const left = options.timeout === undefined ? undefined : Math.max(0, options.timeout - (Date.now() - started))
    await this.target.join(queueName, left === undefined ? {} : { timeout: left })
  }

  override redriveDeadLetters(queueName: string, options?: { limit?: number }): Promise<number> {
    if (!this.target.redriveDeadLetters) return Promise.resolve(0)
    return this.target.redriveDeadLetters(queueName, options)
  }

  /** Drop the queue's messages in the outbox and on the target. */
  override async flush(queueName: string): Promise<void> {
    await this.#gate.ensure()
    await this.pool.query(this.#queries.flush, [qName(queueName)])
    await this.target.flush(queueName)
  }

  override async flushAll(): Promise<void> {
    for (const queue of this.queues) await this.flush(queue)
    await this.target.flushAll()
  }

  // ---- lifecycle ----

  override async connect(): Promise<void> {
    this.assertOpen()
    await this.#gate.ensure()
    await this.target.connect()
  }

  override describe(): Record<string, string | number> {
    return { ...this.target.describe(), outboxSchema: this.schema }
  }

  protected override async closeTransport(): Promise<void> {
    await this.#relay.stop()
    await this.#doorbell.close()
    if (this.#closeTarget) await this.target.close()
    if (this.#ownsPool) await this.pool.end()
  }

  /** The target's reading of its errors (acks and consumers are the target's), else PostgreSQL's. */
  override classifyError(error: unknown): TqError {
    const fromTarget = this.target.classifyError(error)
    return fromTarget.code === ErrorCode.TQ_ERROR ? classifyPgError(error) : fromTarget
  }
}
