import type { Scheduler } from './scheduler/scheduler.ts'
import type { AnyActor } from './actor.ts'
import { dueMessage } from './adapter/redrive.ts'
import { RelayLogger } from './adapter/relay-logger.ts'
import { getEncoder, type Encoder } from './encoder.ts'
import {
  ActorNotFoundError,
  BrokerClosedError,
  ConfigurationError,
  ErrorCode,
  InvalidArgumentError,
  QueueNotFoundError,
  TqError,
  TransactionUnsupportedError,
  errorMessage,
} from './errors.ts'
import { RESOLVED } from './internal/promises.ts'
import { noopLogger, type Logger } from './logger.ts'
import type { Message } from './message.ts'
import type { MessageProxy } from './message-proxy.ts'
import { defaultMiddleware } from './middleware/default.ts'
import { HookRunner } from './middleware/hook-runner.ts'
import type {
  AsyncHookName,
  HookArgs,
  HookName,
  Middleware,
  MiddlewareClass,
  SyncHookName,
} from './middleware/middleware.ts'
import { dqName, qName, validateQueueName } from './queue-names.ts'
import type { ConsumeOptions, Consumer } from './consumer.ts'

export type { ConsumeOptions, Consumer, ReceiveOptions } from './consumer.ts'
import type { ResultBackend } from './results/backend.ts'
import type { TransactionExecutor } from './broker-types.ts'
import type {
  BrokerOptions,
  EnqueueOptions,
  JoinOptions,
  OutgoingMessage,
  QueueCounts,
  TransmitOptions,
} from './broker-types.ts'

export type {
  BrokerOptions,
  EnqueueOptions,
  JoinOptions,
  OutgoingMessage,
  QueueCounts,
  TransactionExecutor,
  TransmitOptions,
} from './broker-types.ts'

/**
 * The base of every broker: the actor registry, the middleware list and hook emission, queue
 * declaration, and the enqueue, consume and close templates. A broker implements the transport
 * steps (`transmit`, `openConsumer`, `closeTransport`); `C` is the type of its consumers.
 */
export abstract class Broker<C extends Consumer = Consumer> {
  readonly actors: Map<string, AnyActor> = new Map()
  readonly middleware: Middleware[] = []
  /** Every actor option some registered middleware understands. */
  readonly actorOptions: Set<string> = new Set()
  /** The `Scheduler`s made for this broker: `tq scheduler` starts them, `tq schedules` and `Admin.schedules()` list them. */
  readonly schedulers: Set<Scheduler> = new Set()
  readonly #logger = new RelayLogger()
  readonly #encoder: Encoder | undefined
  protected readonly queues: Set<string> = new Set()
  protected readonly delayQueues: Set<string> = new Set()
  readonly #hookRunner: HookRunner = new HookRunner(this, this.middleware, () => this.logger)
  #closed = false
  #closing: Promise<void> | undefined

  constructor(options: BrokerOptions = {}) {
    this.#logger.pointTo((options.logger ?? noopLogger).child({ component: 'broker' }))
    this.#encoder = options.encoder
    for (const m of options.middleware ?? defaultMiddleware()) this.addMiddleware(m)
  }

  /**
   * The broker's logger. Assigning one (as `tq worker` does for a broker built without) re-points
   * it: loggers taken from it earlier (`broker.logger.child(…)`) follow.
   */
  get logger(): Logger {
    return this.#logger
  }

  set logger(logger: Logger) {
    this.#logger.pointTo(logger)
  }

  /** Whether the broker was given a logger (in its options or by assignment), not the silent default. */
  get hasLogger(): boolean {
    return this.#logger.target !== noopLogger
  }

  /** The encoder this broker uses. */
  get encoder(): Encoder {
    return this.#encoder ?? getEncoder()
  }

  /**
   * Add a middleware: appended, or placed before/after the first instance of a class. Options
   * it declares become valid actor options; declare hooks are replayed for what exists.
   */
  addMiddleware(middleware: Middleware, position: { before?: MiddlewareClass; after?: MiddlewareClass } = {}): void {
    if (position.before && position.after) {
      throw new InvalidArgumentError('addMiddleware takes `before` or `after`, not both')
    }
    if (this.middleware.some((m) => m.constructor === middleware.constructor && m.constructor !== Object)) {
      this.logger.warn(`Middleware ${middleware.constructor.name} is already registered`)
    }
    const ref = position.before ?? position.after
    if (ref) {
      const index = this.middleware.findIndex((m) => m instanceof ref)
      if (index < 0) throw new InvalidArgumentError(`Middleware ${ref.name} is not registered on this broker`)
      this.middleware.splice(position.before ? index : index + 1, 0, middleware)
    } else {
      this.middleware.push(middleware)
    }
    this.#hookRunner.invalidate()
    for (const option of middleware.actorOptions ?? []) this.actorOptions.add(option)
    for (const actor of this.actors.values()) this.#hookRunner.callSync(middleware, 'afterDeclareActor', [actor])
    for (const queue of this.queues) this.#hookRunner.callSync(middleware, 'afterDeclareQueue', [queue])
    for (const queue of this.delayQueues) this.#hookRunner.callSync(middleware, 'afterDeclareDelayQueue', [queue])
  }

  /**
   * Where this broker sends and receives, for log lines (the `tq worker` boot line): a URL with
   * its password redacted, a database, a region. Never holds a secret. Empty by default.
   */
  describe(): Record<string, string | number> {
    return {}
  }

  /** Remove a middleware instance (a Worker removes its internal one on stop). */
  removeMiddleware(middleware: Middleware): void {
    const index = this.middleware.indexOf(middleware)
    if (index >= 0) this.middleware.splice(index, 1)
    this.#hookRunner.invalidate()
  }

  /** Run `before<Signal>` hooks in list order. `SkipMessage` propagates; other errors are logged. */
  emitBefore<N extends AsyncHookName>(name: N, ...args: HookArgs<N>): Promise<void> {
    try {
      return this.runBefore(name, ...args) ?? RESOLVED
    } catch (error) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a SkipMessage, as thrown
      return Promise.reject(error)
    }
  }

  /** Run `after<Signal>` hooks in reverse list order; every error is logged and swallowed. */
  emitAfter<N extends AsyncHookName>(name: N, ...args: HookArgs<N>): Promise<void> {
    return this.runAfter(name, ...args) ?? RESOLVED
  }

  /**
   * `emitBefore` that costs no promise when none is needed: the hooks run in list order, and it
   * returns `undefined` when every one returned synchronously, else a promise for the rest of
   * the run. A `SkipMessage` is thrown (or rejects that promise). The worker's hot path uses it.
   */
  runBefore<N extends AsyncHookName>(name: N, ...args: HookArgs<N>): Promise<void> | undefined {
    return this.#hookRunner.runBefore(name, args)
  }

  /** `emitAfter` that returns `undefined` when every hook returned synchronously. Never throws. */
  runAfter<N extends AsyncHookName>(name: N, ...args: HookArgs<N>): Promise<void> | undefined {
    return this.#hookRunner.runAfter(name, args)
  }

  /** Synchronous emission for declare hooks. */
  protected emitSync<N extends SyncHookName>(name: N, order: 'before' | 'after', ...args: HookArgs<N>): void {
    this.#hookRunner.emitSync(name, order, args)
  }

  /** The hooks that wrap an actor call, outermost first. */
  get actorCallWrappers(): Middleware[] {
    return this.#hookRunner.list('wrapActorCall' as HookName)
  }

  /** Register an actor (and its queue). Called by `actor()`. */
  declareActor(actor: AnyActor): void {
    this.emitSync('beforeDeclareActor', 'before', actor)
    if (this.actors.has(actor.actorName) && this.actors.get(actor.actorName) !== actor) {
      throw new InvalidArgumentError(
        `An actor named ${JSON.stringify(actor.actorName)} is already declared on this broker`,
      )
    }
    this.declareQueue(actor.queueName)
    this.actors.set(actor.actorName, actor)
    this.emitSync('afterDeclareActor', 'after', actor)
  }

  /** Declare a queue (and its delay queue). Idempotent. */
  declareQueue(queueName: string): void {
    validateQueueName(queueName)
    if (this.queues.has(queueName)) return
    this.emitSync('beforeDeclareQueue', 'before', queueName)
    this.queues.add(queueName)
    const delayQueue = dqName(queueName)
    this.delayQueues.add(delayQueue)
    this.onDeclareQueue(queueName)
    this.emitSync('afterDeclareQueue', 'after', queueName)
    this.emitSync('afterDeclareDelayQueue', 'after', delayQueue)
  }

  /** Subclass hook: a canonical queue (with its delay queue) was declared. */
  protected onDeclareQueue(_queueName: string): void {}

  getActor(actorName: string): AnyActor {
    const actor = this.actors.get(actorName)
    if (!actor) throw new ActorNotFoundError(actorName)
    return actor
  }

  getDeclaredActors(): string[] {
    return [...this.actors.keys()]
  }

  getDeclaredQueues(): Set<string> {
    return new Set(this.queues)
  }

  getDeclaredDelayQueues(): Set<string> {
    return new Set(this.delayQueues)
  }

  /** The backend of the first `Results` middleware. Throws `ConfigurationError` without one. */
  getResultBackend(): ResultBackend {
    for (const m of this.middleware) if (m.resultBackend) return m.resultBackend
    throw new ConfigurationError(
      'This broker has no result backend: add the Results middleware, e.g. broker.addMiddleware(new Results({ backend }))',
    )
  }

  /**
   * Enqueue a message. With `delay`, it goes to the delay queue with an `eta` option. Resolves
   * with the message as enqueued (it may be a copy carrying broker fields).
   */
  enqueue(message: Message, options: EnqueueOptions = {}): Promise<Message> {
    return this.enqueueMany([message], options).then(first)
  }

  /**
   * Enqueue many messages, in as few round trips as the transport allows. The template every
   * broker shares: the broker must be open; each message's queue is checked
   * (`checkEnqueueQueue`) and the message prepared (`prepareMessage`); a delay moves it to the
   * delay queue with an `eta`; `beforeEnqueue` runs; it is encoded; then one `transmit()` call
   * takes them all, and `afterEnqueue` runs for each once it resolved.
   */
  async enqueueMany(messages: readonly Message[], options: EnqueueOptions = {}): Promise<Message[]> {
    this.assertOpen()
    const began = Date.now()
    const delay = options.delay ?? undefined
    const transaction = options.transaction ?? undefined
    if (transaction !== undefined) this.#checkTransaction(transaction, messages)
    const outgoing: OutgoingMessage[] = []
    // In order: what is sent, or (a duplicate of a held unique key) the message holding the key.
    const results: Array<OutgoingMessage | { holder: Message }> = []
    for (const original of messages) {
      const canonical = qName(original.queueName)
      this.checkEnqueueQueue(canonical)
      let message = this.prepareMessage(original)
      const holder = message.options['uniqueKey'] === undefined ? undefined : await this.#claimUnique(message, delay)
      if (holder) {
        results.push({ holder })
        continue
      }
      if (delay !== undefined) {
        message = message.copy({ queueName: dqName(canonical), options: { eta: Math.round(Date.now() + delay) } })
      }
      const before = this.runBefore('beforeEnqueue', message, delay)
      if (before) await before
      const out = { message, body: message.encode(this.encoder), canonical, delay }
      outgoing.push(out)
      results.push(out)
    }
    // A transport that hands the messages over synchronously (the StubBroker) costs no extra turn.
    const sent = outgoing.length > 0 ? this.transmit(outgoing, { transaction }) : undefined
    if (sent) await sent
    const enqueued: Message[] = []
    for (const result of results) {
      if ('holder' in result) enqueued.push(result.holder)
      else {
        const after = this.runAfter('afterEnqueue', result.message, delay, result.body, began)
        if (after) await after
        enqueued.push(result.message)
      }
    }
    return enqueued
  }

  /**
   * Whether `enqueue(…, { transaction })` is honoured: true on brokers that store messages in
   * the transaction's database. Others refuse a transaction instead of sending outside it.
   */
  get acceptsTransactions(): boolean {
    return false
  }

  #checkTransaction(transaction: TransactionExecutor, messages: readonly Message[]): void {
    if (!this.acceptsTransactions) throw new TransactionUnsupportedError(this.constructor.name)
    if (typeof (transaction as { query?: unknown }).query !== 'function') {
      throw new InvalidArgumentError(
        'transaction must be an executor made by fromPg(client), fromKnex(trx), … from @tq/postgres',
      )
    }
    // A unique key is claimed in the tracking store, outside the transaction: a rollback would
    // leave it held by a message that never existed.
    if (messages.some((m) => m.options['uniqueKey'] !== undefined)) {
      throw new InvalidArgumentError('uniqueKey cannot be combined with transaction: the key would outlive a rollback')
    }
  }

  /** Deduplication (`uniqueKey`): the first middleware keeping unique keys (`Tracking`) claims it. */
  #claimUnique(message: Message, delay: number | undefined): Promise<Message | undefined> {
    const keeper = this.middleware.find((m) => m.claimUnique)
    if (!keeper?.claimUnique) {
      throw new ConfigurationError(
        'Message option uniqueKey needs a middleware that keeps unique keys: add Tracking (broker.addMiddleware(new Tracking({ backend })))',
      )
    }
    return keeper.claimUnique(this, message, delay)
  }

  /**
   * Enqueue step: may `canonical` be enqueued to? By default only a declared queue
   * (`QueueNotFoundError` otherwise); a broker whose server creates queues on first use may
   * declare it here instead.
   */
  protected checkEnqueueQueue(canonical: string): void {
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
  }

  /** Enqueue step: the message as this broker sends it (a copy with broker fields, or itself). */
  protected prepareMessage(message: Message): Message {
    return message
  }

  /**
   * Enqueue step: hand the prepared messages to the server, resolving once it has them all (or
   * rejecting if any could not be sent). Brokers that override `enqueueMany` need not implement it.
   */
  protected transmit(_messages: readonly OutgoingMessage[], _options: TransmitOptions): Promise<void> | void {
    return Promise.reject(new TqError(`${this.constructor.name} does not implement transmit()`))
  }

  /**
   * A consumer of one queue (canonical or `.DQ`). Dead-letter queues (`.XQ`) are not consumed;
   * a closed broker throws `BrokerClosedError`. The transport's consumer comes from
   * `openConsumer`.
   */
  consume(queueName: string, options: ConsumeOptions = {}): C {
    validateQueueName(queueName)
    if (queueName.endsWith('.XQ')) {
      throw new InvalidArgumentError(`${queueName} is a dead-letter queue: it is not consumed`)
    }
    this.assertOpen()
    return this.openConsumer(queueName, options)
  }

  /** Consume step: the transport's consumer of a queue `consume()` checked. */
  protected openConsumer(_queueName: string, _options: ConsumeOptions): C {
    throw new TqError(`${this.constructor.name} does not implement openConsumer()`)
  }

  /**
   * Move a due delayed message, delivered by `consumer` from a delay queue, to its queue (as a
   * copy without the `eta`), with the enqueue hooks, and settle the delivery. Atomic where the
   * consumer can `promote()`; otherwise an enqueue then an ack, so a crash between the two runs
   * the message twice (the at-least-once side of the trade). Called by the worker.
   */
  async promoteDelayed(consumer: Consumer, proxy: MessageProxy): Promise<Message> {
    const due = dueMessage(proxy.message)
    if (!consumer.promote) {
      const enqueued = await this.enqueue(due)
      await consumer.ack(proxy)
      return enqueued
    }
    await this.emitBefore('beforeEnqueue', due, undefined)
    const enqueued = await consumer.promote(proxy, due)
    await this.emitAfter('afterEnqueue', enqueued, undefined)
    return enqueued
  }

  /**
   * Optional capability: the counts of a queue (canonical name) and of its delay and dead-letter
   * queues. Metrics (`dramatiq_queue_size`) and operations tools use it where a broker has it.
   */
  queueCounts?(queueName: string): Promise<QueueCounts>

  /**
   * Optional capability: move up to `limit` (default: all) dead letters of a canonical queue (and
   * of its delay queue) back to the queue, oldest first, each as `redrivenMessage()` makes it
   * (due now, retry count reset); resolves with how many moved. Nothing is lost if the process
   * dies midway: a message is in the dead-letter queue, in the queue, or — at worst — in both.
   */
  redriveDeadLetters?(queueName: string, options?: { limit?: number }): Promise<number>

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  /** Throw `BrokerClosedError` once `close()` was called. */
  protected assertOpen(): void {
    if (this.#closed) throw new BrokerClosedError(this.constructor.name)
  }

  /** Drop every message in a queue and its delay queue. */
  abstract flush(queueName: string): Promise<void>

  /** Flush every declared queue. */
  abstract flushAll(): Promise<void>

  /** Wait until a queue (and its delay queue) has no pending work. Meant for tests. */
  abstract join(queueName: string, options?: JoinOptions): Promise<void>

  /**
   * Open connections now and fail fast with a `BrokerConnectionError` if the server cannot be
   * reached. Brokers otherwise connect lazily; the CLI calls this at boot (exit code 3).
   */
  async connect(): Promise<void> {}

  /**
   * Release connections. Later enqueues and consumes throw `BrokerClosedError`; calling it again
   * waits for the first call. The transport's part is `closeTransport`.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing
    // Closed before the transport's first line runs: it may check `closed`, enqueues fail now.
    this.#closed = true
    this.#closing = this.closeTransport()
    return this.#closing
  }

  /** Close step: release the transport's connections and stop its timers. */
  protected async closeTransport(): Promise<void> {}

  /**
   * Map an error of the transport (a client library's, a socket's) to tq's hierarchy; a
   * `TqError` is returned as it is. The one place a broker decides what an error means, and so
   * whether it is retryable. Brokers override it with their classifier.
   */
  classifyError(error: unknown): TqError {
    return TqError.is(error) ? error : new TqError(errorMessage(error), ErrorCode.TQ_ERROR, { cause: error })
  }

  /** True when `error` is one the broker can recover from (by reconnecting): `classifyError(error).retryable`. */
  isRetryableError(error: unknown): boolean {
    return this.classifyError(error).retryable
  }
}

const first = (messages: Message[]): Message => messages[0] as Message
