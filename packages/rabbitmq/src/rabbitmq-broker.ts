import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import {
  Broker,
  BrokerConnectionError,
  ConnectionClosedError,
  ConnectionFailedError,
  InvalidArgumentError,
  Notifier,
  QueueJoinTimeoutError,
  QueueNotFoundError,
  dqName,
  errorMessage,
  errorMeta,
  qName,
  redactUrl,
  sleep,
  validateQueueName,
  xqName,
  type BrokerOptions,
  type BrokerPlugin,
  type ConsumeOptions,
  type EnqueueOptions,
  type JoinOptions,
  type Message,
} from '@tq/core'
import { connect as amqpConnect, type Channel, type ChannelModel, type SocketOptions } from 'amqplib'
import { classifyAmqpError } from './classify-error.ts'
import { ManagedConnection } from './connection.ts'
import { RabbitmqConsumer, type ConsumerHost } from './consumer.ts'
import { Publisher, type PublishItem } from './publisher.ts'
import { lazyChild } from './lazy-logger.ts'
import { DEAD_MESSAGE_TTL, queueDeclarations } from './topology.ts'

export interface RabbitmqBrokerOptions extends BrokerOptions {
  /**
   * `amqp://user:password@host:port/vhost` or `amqps://…` (default `amqp://127.0.0.1:5672`,
   * user and password `guest`). Several URLs separated by `;` are tried in order (failover).
   */
  url?: string
  /** URLs tried in order on every (re)connect; the first that opens wins. Not with `url`. */
  urls?: readonly string[]
  /**
   * Wait for RabbitMQ to confirm every publish (publisher confirms, with `mandatory` so a
   * publish to a deleted queue comes back and is re-sent after declaring it). Default true:
   * `send()` resolves only once RabbitMQ has the message. With false, `send()` resolves once the
   * message is written to the socket (Dramatiq's default, faster, can lose messages on a crash).
   */
  confirmDelivery?: boolean
  /** Declare queues with `x-max-priority` (1–255) so `brokerPriority` orders messages. */
  maxPriority?: number
  /** Prefetch of consumers when `consume()` is given none (default 1; the Worker passes its own). */
  prefetch?: number
  /** AMQP heartbeat in seconds (default: what the server suggests, 60 on RabbitMQ; 0 disables). */
  heartbeat?: number
  /**
   * Longest (ms) a delay-queue delivery stays unacknowledged in this process. Delayed messages
   * due later than this are held by the consumer and re-published to `q.DQ` every `delayLease`,
   * so none hits RabbitMQ's `consumer_timeout` (30 min by default; Dramatiq issue #827).
   * Default 900 000 (15 min); keep it below the server's `consumer_timeout`. `Infinity` turns
   * it off (Dramatiq's behaviour).
   */
  delayLease?: number
  /** `x-message-ttl` of dead-letter queues in ms (default 604 800 000, 7 days, as Dramatiq). */
  deadMessageTtl?: number
  /**
   * Prefix of the `connection_name` client property the broker's connections carry (they are
   * named `<prefix>-publish` and `<prefix>-consume`); shown by `rabbitmqctl list_connections`
   * and the management UI. Default `tq-<host>-<pid>-<random>`.
   */
  connectionName?: string
  /** Extra client properties sent when connecting. */
  clientProperties?: Record<string, unknown>
  /** Socket and TLS options for amqplib (`ca`, `cert`, `key`, `timeout`, …). `noDelay` defaults to true. */
  socketOptions?: SocketOptions
  /**
   * Open connections yourself (to share configuration or wrap amqplib); called for every
   * (re)connect with each URL in turn. Default: amqplib's `connect(url, socketOptions)`.
   */
  connect?: (url: string, socketOptions: SocketOptions) => Promise<ChannelModel>
  /** Attempts per publish before `send()` fails with `ConnectionClosedError` (default 6, as Dramatiq). */
  publishAttempts?: number
  /** Milliseconds before the first reconnect attempt after a failure (default 100; doubles, with jitter). */
  reconnectDelay?: number
  /** Longest wait between reconnect attempts in ms (default 5000). */
  maxReconnectDelay?: number
}

export interface RabbitmqJoinOptions extends JoinOptions {
  /** Milliseconds the queue must stay idle (over several consecutive checks) before `join` returns (default 100). */
  idleTime?: number
  /** Milliseconds between checks (default 20). */
  interval?: number
}

/** Messages in a queue's three RabbitMQ queues (ready ones only: AMQP does not report unacknowledged). */
export interface QueueMessageCounts {
  /** Ready in `q`. */
  ready: number
  /** Ready in `q.DQ`. */
  delayed: number
  /** In `q.XQ`. */
  dead: number
}

const DEFAULT_URL = 'amqp://127.0.0.1:5672'

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

function parseUrls(options: RabbitmqBrokerOptions): string[] {
  if (options.url !== undefined && options.urls !== undefined) {
    throw new InvalidArgumentError('RabbitmqBroker takes `url` or `urls`, not both')
  }
  const list = options.urls ?? (options.url ?? DEFAULT_URL).split(';')
  const urls = list.map((u) => u.trim()).filter((u) => u.length > 0)
  if (urls.length === 0) throw new InvalidArgumentError('RabbitmqBroker needs at least one URL')
  for (const url of urls) {
    if (!/^amqps?:\/\//i.test(url))
      throw new InvalidArgumentError(
        `RabbitMQ URLs start with amqp:// or amqps:// (got ${JSON.stringify(url.split('@').pop())})`,
      )
  }
  return urls
}

function withHeartbeat(url: string, heartbeat: number | undefined): string {
  if (heartbeat === undefined) return url
  const parsed = new URL(url)
  parsed.searchParams.set('heartbeat', String(heartbeat))
  return parsed.toString()
}

function validatePriority(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 255) {
    throw new InvalidArgumentError(`brokerPriority must be an integer from 0 to 255, got ${JSON.stringify(value)}`)
  }
  return value
}

/**
 * A broker on RabbitMQ, wire-compatible with Python Dramatiq 2.x: the same three durable queues
 * per queue (`q`, `q.DQ`, `q.XQ`) with the same arguments, persistent messages on the default
 * exchange, the same JSON bodies, so tq and Dramatiq processes can share queues both ways.
 *
 * Beyond Dramatiq: publisher confirms by default, batched `enqueueMany`, reconnects with
 * failover for publishers and consumers, no duplicate runs after a connection blip when the
 * redelivery reaches the same consumer, and delayed messages that never trip RabbitMQ's
 * `consumer_timeout` (see `delayLease`).
 */
export class RabbitmqBroker extends Broker {
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
  readonly #declared = new Map<string, Promise<void>>()
  #admin: Promise<Channel> | undefined
  readonly #consumers = new Set<RabbitmqConsumer>()
  readonly #settled = new Notifier()
  readonly #reconnectDelay: number
  readonly #maxReconnectDelay: number
  readonly #host: ConsumerHost
  #closed = false

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
    this.urls = parseUrls(options).map((u) => withHeartbeat(u, options.heartbeat))
    this.confirmDelivery = options.confirmDelivery ?? true
    this.maxPriority = options.maxPriority
    this.defaultPrefetch = options.prefetch ?? 1
    this.delayLease = delayLease
    this.deadMessageTtl = options.deadMessageTtl ?? DEAD_MESSAGE_TTL
    this.connectionName = options.connectionName ?? `tq-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
    this.#reconnectDelay = options.reconnectDelay ?? 100
    this.#maxReconnectDelay = options.maxReconnectDelay ?? 5000
    // Resolved on every call: `tq worker` gives the broker its logger after construction.
    const logger = lazyChild(() => this.logger, { component: 'rabbitmq' })
    const socketOptions: SocketOptions = { noDelay: true, ...options.socketOptions }
    const open = options.connect ?? ((url: string, socket: SocketOptions) => amqpConnect(url, socket))
    const connection = (role: string): ManagedConnection =>
      new ManagedConnection({
        urls: this.urls,
        role,
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
    this.#publishConnection.onClose(() => {
      this.#declared.clear()
      this.#admin = undefined
    })
    this.#publisher = new Publisher({
      connection: this.#publishConnection,
      confirm: this.confirmDelivery,
      attempts: Math.max(1, options.publishAttempts ?? 6),
      retryDelay: this.#reconnectDelay,
      maxRetryDelay: this.#maxReconnectDelay,
      logger,
      declare: (canonical) => this.#ensureDeclared(canonical),
      invalidate: (canonical) => this.#declared.delete(canonical),
    })
    const encoderOf = (): RabbitmqBroker['encoder'] => this.encoder
    const loggerOf = (): RabbitmqBroker['logger'] => this.logger
    this.#host = {
      get encoder() {
        return encoderOf()
      },
      get logger() {
        return loggerOf()
      },
      consumeConnection: this.#consumeConnection,
      declareOn: (channel, canonical) => this.#declareOn(channel, canonical),
      republish: (items) => this.#publisher.publish(items),
      notifySettled: () => this.#settled.notify(),
      consumerClosed: (consumer) => {
        this.#consumers.delete(consumer)
        this.#settled.notify()
      },
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
    await this.#ensureDeclared(canonical)
  }

  async #declareOn(channel: Channel, canonical: string): Promise<void> {
    for (const q of this.queueDeclarations(canonical)) {
      await channel.assertQueue(q.name, {
        durable: q.durable,
        exclusive: q.exclusive,
        autoDelete: q.autoDelete,
        arguments: q.arguments,
      })
    }
  }

  /** Declare a queue's topology on the server once per connection (again after it vanished). */
  #ensureDeclared(canonical: string): Promise<void> {
    let declaring = this.#declared.get(canonical)
    if (!declaring) {
      declaring = this.#withAdmin((channel) => this.#declareOn(channel, canonical))
      this.#declared.set(canonical, declaring)
      declaring.catch(() => {
        if (this.#declared.get(canonical) === declaring) this.#declared.delete(canonical)
      })
    }
    return declaring
  }

  /** Run `fn` on the admin channel (a plain channel on the publishing connection). */
  async #withAdmin<T>(fn: (channel: Channel) => Promise<T>): Promise<T> {
    if (this.#closed) throw new ConnectionClosedError('The RabbitMQ broker is closed')
    if (!this.#admin) {
      const opening = (async () => {
        const model = await this.#publishConnection.get()
        const channel = await model.createChannel()
        channel.on('error', (error: unknown) =>
          this.logger.debug('RabbitMQ closed the admin channel', errorMeta(error)),
        )
        channel.on('close', () => {
          if (this.#admin === opening) this.#admin = undefined
        })
        return channel
      })()
      this.#admin = opening
      opening.catch(() => {
        if (this.#admin === opening) this.#admin = undefined
      })
    }
    const channel = await this.#admin
    try {
      return await fn(channel)
    } catch (error) {
      throw classifyAmqpError(error)
    }
  }

  // ---- publishing ----

  override async enqueue(message: Message, options: EnqueueOptions = {}): Promise<Message> {
    const [enqueued] = await this.#enqueueAll([message], options.delay)
    return enqueued as Message
  }

  /** Publish many messages at once and wait for all their confirms together. */
  override async enqueueMany(messages: readonly Message[], options: EnqueueOptions = {}): Promise<Message[]> {
    return this.#enqueueAll(messages, options.delay)
  }

  async #enqueueAll(messages: readonly Message[], delay: number | undefined): Promise<Message[]> {
    if (this.#closed) throw new ConnectionClosedError('The RabbitMQ broker is closed')
    const prepared: Array<{ message: Message; item: PublishItem }> = []
    for (const original of messages) {
      const canonical = qName(original.queueName)
      this.declareQueue(canonical)
      let message = original
      if (message.options.redisMessageId !== undefined) {
        // A Redis broker's field; Dramatiq's RabbitMQ bodies never carry it.
        message = message.copy()
        delete message.options.redisMessageId
      }
      let routingKey = canonical
      if (delay !== undefined && delay !== null) {
        routingKey = dqName(canonical)
        message = message.copy({ queueName: routingKey, options: { eta: Date.now() + delay } })
      }
      await this.emitBefore('beforeEnqueue', message, delay)
      const priority = validatePriority(message.options.brokerPriority)
      const body = toBuffer(message.encode(this.encoder))
      prepared.push({ message, item: { routingKey, canonical, body, priority } })
    }
    await this.#publisher.publish(prepared.map((p) => p.item))
    for (const p of prepared) await this.emitAfter('afterEnqueue', p.message, delay)
    return prepared.map((p) => p.message)
  }

  // ---- consuming ----

  override consume(queueName: string, options: ConsumeOptions = {}): RabbitmqConsumer {
    if (this.#closed) throw new ConnectionClosedError('The RabbitMQ broker is closed')
    validateQueueName(queueName)
    if (queueName.endsWith('.XQ')) throw new InvalidArgumentError(`Dead-letter queues are not consumed (${queueName})`)
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

  /** Ready messages in `q` and `q.DQ`, and messages in `q.XQ` (declaring them if needed). */
  async getQueueMessageCounts(queueName: string): Promise<QueueMessageCounts> {
    const canonical = qName(queueName)
    validateQueueName(canonical)
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#ensureDeclared(canonical)
        return await this.#withAdmin(async (channel) => {
          const ready = await channel.checkQueue(canonical)
          const delayed = await channel.checkQueue(dqName(canonical))
          const dead = await channel.checkQueue(xqName(canonical))
          return { ready: ready.messageCount, delayed: delayed.messageCount, dead: dead.messageCount }
        })
      } catch (error) {
        // A queue deleted behind our back: declare it again, once.
        if (attempt >= 2 || !(error instanceof QueueNotFoundError)) throw error
        this.#declared.delete(canonical)
      }
    }
  }

  /** Drop the ready messages of `q`, `q.DQ` and `q.XQ` (as Dramatiq's `flush`). */
  override async flush(queueName: string): Promise<void> {
    const canonical = qName(queueName)
    validateQueueName(canonical)
    await this.#ensureDeclared(canonical)
    await this.#withAdmin(async (channel) => {
      for (const q of this.queueDeclarations(canonical)) await channel.purgeQueue(q.name)
    })
  }

  override async flushAll(): Promise<void> {
    for (const queue of this.queues) await this.flush(queue)
  }

  /** Deliveries this broker's consumers hold for `canonical`, plus publishes to it in flight. */
  #localWork(canonical: string): number {
    let count = this.#publisher.pendingFor(canonical)
    for (const consumer of this.#consumers) if (qName(consumer.queueName) === canonical) count += consumer.outstanding
    return count
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
    const interval = options.interval ?? 20
    const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout
    let idleSince: number | undefined
    let idleChecks = 0
    for (;;) {
      let idle = this.#localWork(canonical) === 0
      if (idle) {
        try {
          const counts = await this.getQueueMessageCounts(canonical)
          idle = counts.ready === 0 && counts.delayed === 0 && this.#localWork(canonical) === 0
        } catch (error) {
          // A connection blip while counting is not a reason to fail the join: count again.
          if (!this.isRetryableError(error) || this.#closed) throw error
          this.logger.debug('Could not count messages while joining; trying again', errorMeta(error))
          idle = false
        }
      }
      const now = Date.now()
      if (idle) {
        idleSince ??= now
        idleChecks++
        if (idleChecks >= 3 && now - idleSince >= idleTime) return
      } else {
        idleSince = undefined
        idleChecks = 0
      }
      const remaining = deadline - now
      if (remaining <= 0) throw new QueueJoinTimeoutError(canonical, options.timeout ?? 0)
      if (idle) await sleep(Math.min(remaining, interval))
      else await this.#settled.wait(Math.min(remaining, interval * 5))
    }
  }

  /**
   * Open the publishing connection now (one round over the URLs), so that a worker fails at
   * boot (the CLI's exit code 3) when RabbitMQ is unreachable or refuses the credentials,
   * instead of retrying in the background. Throws a `BrokerConnectionError`; its message names
   * the server's answer, never the password.
   */
  override async connect(): Promise<void> {
    if (this.#closed) throw new ConnectionClosedError('The RabbitMQ broker is closed')
    try {
      await this.#publishConnection.get()
    } catch (error) {
      if (error instanceof BrokerConnectionError) throw error
      throw new ConnectionFailedError(`Could not connect to RabbitMQ: ${errorMessage(error)}`, { cause: error })
    }
  }

  /** Close every consumer and both connections. The broker cannot be used afterwards. */
  /** The server URLs, passwords redacted. */
  override describe(): Record<string, string | number> {
    return { url: this.urls.map((u) => redactUrl(u)).join(';') }
  }

  override async close(): Promise<void> {
    if (this.#closed) return
    await Promise.all([...this.#consumers].map((c) => c.close()))
    this.#closed = true
    await this.#publisher.close()
    const admin = this.#admin
    this.#admin = undefined
    if (admin) await admin.then((c) => c.close()).catch(() => undefined)
    await Promise.all([this.#publishConnection.close(), this.#consumeConnection.close()])
    this.#settled.notify()
  }

  override isRetryableError(error: unknown): boolean {
    return classifyAmqpError(error).retryable
  }
}

/** `amqp://` and `amqps://` URLs (and `getBroker()` with `@tq/rabbitmq` installed) build a RabbitmqBroker. */
export const brokerPlugin: BrokerPlugin = {
  name: '@tq/rabbitmq RabbitmqBroker',
  schemes: ['amqp', 'amqps'],
  create: (url?: string) => new RabbitmqBroker(url === undefined ? {} : { url }),
}
