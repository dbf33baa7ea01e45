import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import {
  Broker,
  BrokerConnectionError,
  ConnectionFailedError,
  InvalidArgumentError,
  Notifier,
  QueueNotFoundError,
  dqName,
  errorMessage,
  errorMeta,
  qName,
  redactUrl,
  validateQueueName,
  type TqError,
  type BrokerPlugin,
  type ConsumeOptions,
  type Message,
  type OutgoingMessage,
  type QueueCounts,
} from '@tq/core'
import { pollUntilEmpty } from '@tq/core/adapter'
import { connect as amqpConnect, type SocketOptions } from 'amqplib'
import { classifyAmqpError } from './classify-error.ts'
import { ManagedConnection } from './connection.ts'
import { RabbitmqConsumer, type ConsumerHost } from './consumer.ts'
import {
  brokerUrls,
  validatePriority,
  type QueueMessageCounts,
  type RabbitmqBrokerOptions,
  type RabbitmqJoinOptions,
} from './options.ts'
import { Publisher, type PublishItem } from './publisher.ts'
import { QueueAdmin } from './queue-admin.ts'
import { redriveDeadLetters, type RedriveHost } from './redrive.ts'
import { DEAD_MESSAGE_TTL, queueDeclarations } from './topology.ts'

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * A broker on RabbitMQ, wire-compatible with Python Dramatiq 2.x: the same three durable queues
 * per queue (`q`, `q.DQ`, `q.XQ`) with the same arguments, persistent messages on the default
 * exchange, the same JSON bodies, so tq and Dramatiq processes can share queues both ways.
 *
 * Beyond Dramatiq: publisher confirms by default, batched `enqueueMany`, reconnects with
 * failover for publishers and consumers, no duplicate runs after a connection blip when the
 * redelivery reaches the same consumer, and delayed messages that never trip RabbitMQ's
 * `consumer_timeout` (see `delayLease`).
 *
 * Its parts: two `ManagedConnection`s (publishing, consuming), the `Publisher`, the
 * `QueueAdmin` (declaring, counting, purging) and one `RabbitmqConsumer` per `consume()`.
 */
export class RabbitmqBroker extends Broker<RabbitmqConsumer> {
  readonly urls: readonly string[]
  readonly confirmDelivery: boolean
  readonly maxPriority: number | undefined
  readonly defaultPrefetch: number
  readonly delayLease: number
  readonly deadMessageTtl: number
  readonly connectionName: string
  readonly #publishConnection: ManagedConnection
  readonly #consumeConnection: ManagedConnection
  readonly #publisher: Publisher
  readonly #admin: QueueAdmin
  readonly #consumers = new Set<RabbitmqConsumer>()
  /** Wakes `join()` when a delivery is settled or a consumer goes away. */
  readonly #settled = new Notifier()
  readonly #reconnectDelay: number
  readonly #maxReconnectDelay: number
  readonly #host: ConsumerHost
  readonly #redrive: RedriveHost

  constructor(options: RabbitmqBrokerOptions = {}) {
    super(options)
    if (
      options.maxPriority !== undefined &&
      (!Number.isInteger(options.maxPriority) || options.maxPriority < 1 || options.maxPriority > 255)
    ) {
      throw new InvalidArgumentError(`maxPriority must be an integer from 1 to 255, got ${String(options.maxPriority)}`)
    }
    const delayLease = options.delayLease ?? 900_000
    if (!(delayLease > 0))
      throw new InvalidArgumentError(`delayLease must be a positive number of ms, got ${String(delayLease)}`)
    this.urls = brokerUrls(options)
    this.confirmDelivery = options.confirmDelivery ?? true
    this.maxPriority = options.maxPriority
    this.defaultPrefetch = options.prefetch ?? 1
    this.delayLease = delayLease
    this.deadMessageTtl = options.deadMessageTtl ?? DEAD_MESSAGE_TTL
    this.connectionName = options.connectionName ?? `tq-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
    this.#reconnectDelay = options.reconnectDelay ?? 100
    this.#maxReconnectDelay = options.maxReconnectDelay ?? 5000
    // A child of the relay: it follows a logger `tq worker` assigns after construction.
    const logger = this.logger.child({ component: 'rabbitmq' })
    const socketOptions: SocketOptions = { noDelay: true, ...options.socketOptions }
    const open = options.connect ?? ((url: string, socket: SocketOptions) => amqpConnect(url, socket))
    const connection = (role: string): ManagedConnection =>
      new ManagedConnection({
        urls: this.urls,
        role,
        brokerName: this.constructor.name,
        logger,
        minDelay: this.#reconnectDelay,
        maxDelay: this.#maxReconnectDelay,
        connect: (url) =>
          open(url, {
            ...socketOptions,
            clientProperties: {
              ...options.clientProperties,
              ...socketOptions.clientProperties,
              connection_name: `${this.connectionName}-${role}`,
            },
          }),
      })
    this.#publishConnection = connection('publish')
    this.#consumeConnection = connection('consume')
    this.#admin = new QueueAdmin({
      connection: this.#publishConnection,
      logger: this.logger,
      declarations: (canonical) => this.queueDeclarations(canonical),
    })
    this.#publisher = new Publisher({
      connection: this.#publishConnection,
      confirm: this.confirmDelivery,
      attempts: Math.max(1, options.publishAttempts ?? 6),
      retryDelay: this.#reconnectDelay,
      maxRetryDelay: this.#maxReconnectDelay,
      logger,
      declare: (canonical) => this.#admin.ensureDeclared(canonical),
      invalidate: (canonical) => this.#admin.forget(canonical),
    })
    const encoderOf = (): RabbitmqBroker['encoder'] => this.encoder
    this.#host = {
      get encoder() {
        return encoderOf()
      },
      logger: this.logger,
      consumeConnection: this.#consumeConnection,
      declareOn: (channel, canonical) => this.#admin.declareOn(channel, canonical),
      republish: (items) => this.#publisher.publish(items),
      notifySettled: () => this.#settled.notify(),
      consumerClosed: (consumer) => {
        this.#consumers.delete(consumer)
        this.#settled.notify()
      },
    }
    this.#redrive = {
      get encoder() {
        return encoderOf()
      },
      logger,
      connection: this.#consumeConnection,
      deadLetterCount: async (canonical) => (await this.#admin.counts(canonical)).dead,
      prepare: (message) => this.prepareMessage(message),
      beforeEnqueue: (message) => this.emitBefore('beforeEnqueue', message, undefined),
      afterEnqueue: (message, began) => this.emitAfter('afterEnqueue', message, undefined, undefined, began),
      publish: (items) => this.#publisher.publish(items),
    }
  }

  // ---- topology ----

  /** The queues (name and arguments) this broker declares for canonical queue `queueName`. */
  queueDeclarations(queueName: string): ReturnType<typeof queueDeclarations> {
    return queueDeclarations(qName(queueName), { maxPriority: this.maxPriority, deadMessageTtl: this.deadMessageTtl })
  }

  /**
   * Declare `q`, `q.DQ` and `q.XQ` on the server now (normally done lazily on the first
   * enqueue or consume), e.g. before another program publishes to them. Fails with
   * `ConfigurationError` if they exist with other arguments.
   */
  async assertQueue(queueName: string): Promise<void> {
    const canonical = qName(queueName)
    this.declareQueue(canonical)
    await this.#admin.ensureDeclared(canonical)
  }

  // ---- publishing (the enqueue template's steps) ----

  /** Any queue can be enqueued to: it is declared (here, then on the server before publishing). */
  protected override checkEnqueueQueue(canonical: string): void {
    this.declareQueue(canonical)
  }

  /** Without a Redis broker's `redisMessageId`: Dramatiq's RabbitMQ bodies never carry it. */
  protected override prepareMessage(message: Message): Message {
    if (message.options['redisMessageId'] === undefined) return message
    const copy = message.copy()
    delete copy.options['redisMessageId']
    return copy
  }

  /** Publish the batch and wait for all its confirms together. */
  protected override transmit(messages: readonly OutgoingMessage[]): Promise<void> {
    const items: PublishItem[] = []
    for (const { message, body, canonical, delay } of messages) {
      items.push({
        routingKey: delay === undefined ? canonical : dqName(canonical),
        canonical,
        body: toBuffer(body),
        priority: validatePriority(message.options.brokerPriority),
      })
    }
    return this.#publisher.publish(items)
  }

  // ---- consuming ----

  /** A `RabbitmqConsumer` of `q` or `q.DQ` (declaring the queue). */
  protected override openConsumer(queueName: string, options: ConsumeOptions): RabbitmqConsumer {
    this.declareQueue(qName(queueName))
    const consumer = new RabbitmqConsumer(this.#host, queueName, {
      prefetch: Math.min(65535, Math.max(1, Math.floor(options.prefetch ?? this.defaultPrefetch))),
      timeout: options.timeout ?? 1000,
      delayLease: this.delayLease,
      restartDelay: this.#reconnectDelay,
      maxRestartDelay: this.#maxReconnectDelay,
    })
    this.#consumers.add(consumer)
    return consumer
  }

  // ---- inspection and maintenance ----

  /**
   * Ready messages in `q` (`ready`) and `q.DQ` (`delayed`), and messages in `q.XQ` (`dead`),
   * declaring them if needed. `running` is `undefined`: AMQP does not report unacknowledged
   * deliveries.
   */
  override async queueCounts(queueName: string): Promise<QueueCounts> {
    const canonical = qName(queueName)
    validateQueueName(canonical)
    return this.#admin.counts(canonical)
  }

  /**
   * Ready messages in `q` and `q.DQ`, and messages in `q.XQ` (declaring them if needed).
   * @deprecated Use `queueCounts(queueName)`, which every broker with counts implements.
   */
  async getQueueMessageCounts(queueName: string): Promise<QueueMessageCounts> {
    const { ready, delayed, dead } = await this.queueCounts(queueName)
    return { ready, delayed, dead }
  }

  /**
   * Move up to `limit` (default: all) dead letters of `q.XQ` (dead-lettered from `q` and
   * `q.DQ`) back to `q`, oldest first, due now and with their retry count reset, through the
   * enqueue hooks; resolves with how many moved. A dead letter is acknowledged only after its
   * new copy is confirmed, so a crash midway loses nothing (the batch in flight may then be in
   * both queues). An undecodable dead letter stays in `q.XQ` and is not counted. See
   * `redriveDeadLetters` in `redrive.ts`.
   */
  override async redriveDeadLetters(queueName: string, options: { limit?: number } = {}): Promise<number> {
    this.assertOpen()
    const canonical = qName(queueName)
    validateQueueName(canonical)
    this.declareQueue(canonical)
    return redriveDeadLetters(this.#redrive, canonical, { limit: options.limit })
  }

  /** Drop the ready messages of `q`, `q.DQ` and `q.XQ` (as Dramatiq's `flush`). */
  override async flush(queueName: string): Promise<void> {
    const canonical = qName(queueName)
    validateQueueName(canonical)
    await this.#admin.purge(canonical)
  }

  override async flushAll(): Promise<void> {
    for (const queue of this.queues) await this.flush(queue)
  }

  /**
   * Wait until `q` and `q.DQ` have no ready messages, this broker's consumers hold no unsettled
   * deliveries of them and no publish to them is in flight, over several consecutive checks
   * spanning `idleTime` ms. Messages other processes hold unacknowledged are not visible to it
   * (AMQP does not report them). Throws `QueueJoinTimeoutError` after `timeout` ms.
   */
  override async join(queueName: string, options: RabbitmqJoinOptions = {}): Promise<void> {
    const canonical = qName(queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    const idleTime = options.idleTime ?? 100
    let idleSince: number | undefined
    let idleChecks = 0
    const settled = async (): Promise<boolean> => {
      const idle = await this.#isIdle(canonical)
      const now = Date.now()
      if (!idle) {
        idleSince = undefined
        idleChecks = 0
        return false
      }
      idleSince ??= now
      idleChecks++
      return idleChecks >= 3 && now - idleSince >= idleTime
    }
    await pollUntilEmpty(canonical, settled, {
      timeout: options.timeout,
      interval: options.interval ?? 20,
      wake: this.#settled,
    })
  }

  /** One check of `join()`: nothing ready in `q` or `q.DQ` and no local work on them. */
  async #isIdle(canonical: string): Promise<boolean> {
    if (this.#localWork(canonical) > 0) return false
    try {
      const counts = await this.#admin.counts(canonical)
      return counts.ready === 0 && counts.delayed === 0 && this.#localWork(canonical) === 0
    } catch (error) {
      // A connection blip while counting is not a reason to fail the join: count again.
      if (!this.isRetryableError(error) || this.closed) throw error
      this.logger.debug('Could not count messages while joining; trying again', errorMeta(error))
      return false
    }
  }

  /** Deliveries this broker's consumers hold for `canonical`, plus publishes to it in flight. */
  #localWork(canonical: string): number {
    let count = this.#publisher.pendingFor(canonical)
    for (const consumer of this.#consumers) if (qName(consumer.queueName) === canonical) count += consumer.outstanding
    return count
  }

  // ---- connection lifecycle ----

  /**
   * Open the publishing connection now (one round over the URLs), so that a worker fails at
   * boot (the CLI's exit code 3) when RabbitMQ is unreachable or refuses the credentials,
   * instead of retrying in the background. Throws a `BrokerConnectionError`; its message names
   * the server's answer, never the password.
   */
  override async connect(): Promise<void> {
    this.assertOpen()
    try {
      await this.#publishConnection.get()
    } catch (error) {
      if (error instanceof BrokerConnectionError) throw error
      throw new ConnectionFailedError(`Could not connect to RabbitMQ: ${errorMessage(error)}`, { cause: error })
    }
  }

  /** The server URLs, passwords redacted. */
  override describe(): Record<string, string | number> {
    return { url: this.urls.map((u) => redactUrl(u)).join(';') }
  }

  /** Close every consumer, then the publisher, the admin channel and both connections. */
  protected override async closeTransport(): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.close()))
    const admin = this.#admin.close()
    await this.#publisher.close()
    await admin
    await Promise.all([this.#publishConnection.close(), this.#consumeConnection.close()])
    this.#settled.notify()
  }

  /** amqplib's and the socket's errors, as `classifyAmqpError` maps them. */
  override classifyError(error: unknown): TqError {
    return classifyAmqpError(error)
  }
}

/** `amqp://` and `amqps://` URLs (and `getBroker()` with `@tq/rabbitmq` installed) build a RabbitmqBroker. */
export const brokerPlugin: BrokerPlugin = {
  name: '@tq/rabbitmq RabbitmqBroker',
  schemes: ['amqp', 'amqps'],
  create: (url?: string) => new RabbitmqBroker(url === undefined ? {} : { url }),
}
