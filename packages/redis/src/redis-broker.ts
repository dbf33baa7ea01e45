import { randomUUID } from 'node:crypto'
import {
  Broker,
  ConfigurationError,
  ConnectionClosedError,
  ConnectionFailedError,
  Notifier,
  QueueJoinTimeoutError,
  dqName,
  errorMessage,
  errorMeta,
  qName,
  redactUrl,
  validateQueueName,
  xqName,
  type BrokerOptions,
  type BrokerPlugin,
  type ConsumeOptions,
  type Consumer,
  type EnqueueOptions,
  type JoinOptions,
  type Message,
} from '@tq/core'
import { Redis, type RedisOptions } from 'ioredis'
import { classifyRedisError } from './classify-error.ts'
import { RedisConsumer } from './consumer.ts'
import { defineScripts, runScript, type ScriptArg, type ScriptName } from './scripts.ts'

export interface RedisBrokerOptions extends BrokerOptions {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://…` (default `redis://127.0.0.1:6379`). Ignored with `client`. */
  url?: string
  /** Extra ioredis options for the connections this broker opens. Ignored with `client`. */
  redisOptions?: Omit<RedisOptions, 'replyMapping'>
  /**
   * An existing ioredis client for commands. The broker opens one more connection from it
   * (`client.duplicate()`) for wake-up subscriptions. It is not closed by `close()` unless
   * `closeClient` is true. A client with a `keyPrefix` is refused: use `namespace`.
   */
  client?: Redis
  /** Close `client` on `close()` (default: false for a given client; owned connections are always closed). */
  closeClient?: boolean
  /** Prefix of every key, as Dramatiq's `namespace` (default `"dramatiq"`). */
  namespace?: string
  /** Milliseconds without a heartbeat after which a worker counts as dead and its messages are requeued (default 60 000). */
  heartbeatTimeout?: number
  /** Milliseconds between heartbeats while consumers are open (default `heartbeatTimeout / 4`). */
  heartbeatInterval?: number
  /** Milliseconds dead-lettered messages are kept (default 7 days). */
  deadMessageTtl?: number
  /** Chance per million fetches of running maintenance (default 1000, i.e. 0.1 %, as Dramatiq). */
  maintenanceChance?: number
  /**
   * Milliseconds between timed maintenance runs for each queue a consumer is open on (default
   * `heartbeatTimeout`; 0 turns it off), so dead workers' messages come back on quiet queues
   * too. The first run of each queue is at a random point of the interval.
   */
  maintenanceInterval?: number
  /**
   * Publish a wake-up when a message lands on an empty queue and let idle consumers wait for
   * it (default true). A Python producer sends none; idle consumers also poll every `pollInterval`.
   */
  wakeups?: boolean
  /** Milliseconds between fetches of an idle consumer (default 1000; waking up on enqueue is separate). */
  pollInterval?: number
  /**
   * Milliseconds a command (an enqueue, a fetch, `connect()`) waits for the connection to
   * Redis to be (re)established before it fails with `ConnectionFailedError` naming the server
   * and the last connection error, e.g. `ECONNREFUSED` (default 5000). Also ioredis's socket
   * `connectTimeout` unless `redisOptions.connectTimeout` is set. The connection keeps
   * reconnecting in the background, so a consumer resumes once Redis is back.
   */
  connectTimeout?: number
}

export interface RedisJoinOptions extends JoinOptions {
  /** Milliseconds between checks when nothing local signals progress (default 100). */
  interval?: number
}

/** A dead-lettered message as stored in `<ns>:<queue>.XQ` and `<ns>:<queue>.XQ.msgs`. */
export interface RedisDeadLetter {
  /** The Redis message id (the `.XQ` member). */
  redisMessageId: string
  /** The payload exactly as it was last written to Redis. */
  body: Uint8Array
  /** Unix ms at which it was dead-lettered (the `.XQ` score). */
  deadLetteredAt: number
}

const DEFAULT_URL = 'redis://127.0.0.1:6379'
const DEFAULT_CONNECT_TIMEOUT = 5000
const WEEK_MS = 7 * 24 * 60 * 60 * 1000
/** Messages per script call when batching. */
const BATCH = 1000

interface PendingWrite {
  readonly id: string
  readonly payload: Buffer
  resolve(): void
  reject(error: unknown): void
}

interface WakeState {
  /** Bumped on every wake-up for the queue (and on resubscribe). */
  generation: number
  readonly notifier: Notifier
  refs: number
}

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * A broker on Redis, wire-compatible with Python Dramatiq 2.x: the same keys, payloads and
 * atomic operations (Lua scripts in `src/lua/`), so tq and Dramatiq processes can share queues
 * in both directions.
 *
 * Beyond Dramatiq: heartbeats run on a timer while consumers are open (not only when
 * fetching), fetches and acks are batched, idle consumers wake on enqueue instead of polling,
 * and a consumer that lost its connection requeues what a lost reply left in its ack set.
 */
export class RedisBroker extends Broker {
  /** This broker's id: the member of `<ns>:__heartbeats__` and part of its ack-set keys. */
  readonly brokerId: string = randomUUID()
  readonly namespace: string
  readonly heartbeatTimeout: number
  readonly heartbeatInterval: number
  readonly deadMessageTtl: number
  readonly maintenanceChance: number
  readonly maintenanceInterval: number
  readonly pollInterval: number
  readonly wakeups: boolean
  /** Milliseconds a command waits for the connection to be (re)established (see `RedisBrokerOptions.connectTimeout`). */
  readonly connectTimeout: number
  /** The connection commands go through. */
  readonly client: Redis
  readonly #ownsClient: boolean
  /** The URL the client was built from (undefined with a given `client`). */
  readonly #url: string | undefined
  readonly #subscriberOptions: Omit<RedisOptions, 'replyMapping'>
  #subscriber: Redis | undefined
  readonly #wake = new Map<string, WakeState>()
  readonly #consumers = new Set<RedisConsumer>()
  /** Consumers that may hold fetched ids (open ones, and closed ones with acks in flight). */
  readonly #holders = new Set<RedisConsumer>()
  /** When each consumed queue is next due for timed maintenance (Unix ms). */
  readonly #maintenanceDue = new Map<string, number>()
  readonly #settled = new Notifier()
  readonly #pendingWrites = new Map<string, PendingWrite[]>()
  #writeScheduled = false
  #heartbeatTimer: NodeJS.Timeout | undefined
  #closed = false
  #connectionErrorLogged = false
  /** The last connection error since the connection was last ready (the cause of a failed wait). */
  #lastConnectionError: unknown
  /** The first connect-and-check (PING, SELECT of the URL's database); later commands wait for it. */
  #verified: Promise<void> | undefined
  #isVerified = false
  #readyWait: Promise<void> | undefined
  /** Queues whose ack set may hold ids no consumer knows about (a fetch reply lost with a connection). */
  readonly #reconcileQueues = new Set<string>()
  readonly #fetchGates = new Map<
    string,
    { active: number; readonly drained: Notifier; reconciling: Promise<void> | undefined }
  >()
  /** Rejecters of enqueue script calls in flight: failed when the connection stays down for `connectTimeout`. */
  readonly #boundedWrites = new Set<(error: unknown) => void>()
  #outageTimer: NodeJS.Timeout | undefined
  readonly #onClientClose = (): void => {
    for (const consumer of this.#consumers) this.#reconcileQueues.add(consumer.queueName)
    if (this.#outageTimer === undefined && this.#boundedWrites.size > 0) {
      this.#outageTimer = setTimeout(() => {
        this.#outageTimer = undefined
        const error = this.#connectionFailed(this.#lastConnectionError, ` within ${this.connectTimeout} ms`)
        const rejecters = [...this.#boundedWrites]
        this.#boundedWrites.clear()
        for (const reject of rejecters) reject(error)
      }, this.connectTimeout)
      this.#outageTimer.unref()
    }
  }
  readonly #onClientError = (error: unknown): void => {
    this.#lastConnectionError = error
    this.#logConnectionError('commands', error)
  }
  readonly #onClientReady = (): void => {
    clearTimeout(this.#outageTimer)
    this.#outageTimer = undefined
    this.#connectionErrorLogged = false
    this.#lastConnectionError = undefined
  }

  constructor(options: RedisBrokerOptions = {}) {
    super(options)
    this.namespace = options.namespace ?? 'dramatiq'
    this.heartbeatTimeout = options.heartbeatTimeout ?? 60_000
    this.heartbeatInterval = options.heartbeatInterval ?? Math.max(10, Math.floor(this.heartbeatTimeout / 4))
    this.deadMessageTtl = options.deadMessageTtl ?? WEEK_MS
    this.maintenanceChance = options.maintenanceChance ?? 1000
    this.maintenanceInterval = options.maintenanceInterval ?? this.heartbeatTimeout
    this.pollInterval = options.pollInterval ?? 1000
    this.wakeups = options.wakeups ?? true
    this.connectTimeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT
    if (!(this.connectTimeout > 0)) {
      throw new ConfigurationError(`connectTimeout must be a positive number of ms, got ${this.connectTimeout}`)
    }
    if (this.heartbeatInterval >= this.heartbeatTimeout) {
      throw new ConfigurationError(
        `heartbeatInterval (${this.heartbeatInterval} ms) must be shorter than heartbeatTimeout (${this.heartbeatTimeout} ms)`,
      )
    }
    const connectionName = `tq:${this.brokerId}`
    if (options.client) {
      if (options.client.options.keyPrefix) {
        throw new ConfigurationError('RedisBroker cannot use a client with a keyPrefix; set `namespace` instead')
      }
      this.client = options.client
      this.#url = undefined
      this.#ownsClient = options.closeClient ?? false
      this.#subscriberOptions = { connectionName: `${connectionName}:wakeups`, lazyConnect: true }
    } else {
      const base: Omit<RedisOptions, 'replyMapping'> = {
        lazyConnect: true,
        connectTimeout: this.connectTimeout,
        ...options.redisOptions,
      }
      this.#url = options.url ?? DEFAULT_URL
      this.client = new Redis(this.#url, { ...base, connectionName: `${connectionName}:commands` })
      this.#ownsClient = true
      this.#subscriberOptions = { ...base, connectionName: `${connectionName}:wakeups` }
    }
    defineScripts(this.client)
    this.client.on('close', this.#onClientClose)
    this.client.on('error', this.#onClientError)
    this.client.on('ready', this.#onClientReady)
  }

  // -- keys -----------------------------------------------------------------------------------

  /** `<ns>:<queue>` */
  key(queueName: string): string {
    return `${this.namespace}:${queueName}`
  }

  /** `<ns>:__heartbeats__` */
  get heartbeatsKey(): string {
    return `${this.namespace}:__heartbeats__`
  }

  /** `<ns>:__acks__.<brokerId>.<queue>` */
  acksKey(queueName: string): string {
    return `${this.namespace}:__acks__.${this.brokerId}.${queueName}`
  }

  /** The channel wake-ups for a queue are published on (a tq addition; Dramatiq ignores it). */
  wakeupChannel(queueName: string): string {
    return `${this.namespace}:__wakeup__.${queueName}`
  }

  // -- commands -------------------------------------------------------------------------------

  /** @internal Run one of the Lua scripts with the heartbeat arguments; errors are classified. */
  async run(name: ScriptName, keys: ScriptArg[], args: ScriptArg[], buffers = false): Promise<unknown> {
    // Only await when there is something to wait for: this is every fetch, ack and enqueue batch.
    const ready = this.#ensureReady()
    if (ready) await ready
    try {
      return await runScript(
        this.client,
        name,
        [this.heartbeatsKey, ...keys],
        [Date.now(), this.brokerId, ...args],
        buffers,
      )
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  override async enqueue(message: Message, options: EnqueueOptions = {}): Promise<Message> {
    const [enqueued] = await this.#enqueue([message], options.delay)
    return enqueued as Message
  }

  /** Enqueue many messages in as few round trips as possible (one script call per queue and 1000 messages). */
  override async enqueueMany(messages: readonly Message[], options: EnqueueOptions = {}): Promise<Message[]> {
    return this.#enqueue(messages, options.delay)
  }

  async #enqueue(messages: readonly Message[], delay: number | undefined | null): Promise<Message[]> {
    const prepared: Message[] = []
    for (const original of messages) {
      validateQueueName(qName(original.queueName))
      // Every enqueue gets its own Redis id (a retry is a new Redis message), first, then the eta.
      let message = original.copy({ options: { redisMessageId: randomUUID() } })
      if (delay !== undefined && delay !== null) {
        message = message.copy({
          queueName: dqName(message.queueName),
          options: { eta: Math.round(Date.now() + delay) },
        })
      }
      await this.emitBefore('beforeEnqueue', message, delay ?? undefined)
      prepared.push(message)
    }
    const writes: Promise<void>[] = []
    for (const message of prepared) {
      writes.push(
        this.#write(
          message.queueName,
          message.options.redisMessageId as string,
          toBuffer(message.encode(this.encoder)),
        ),
      )
    }
    await Promise.all(writes)
    for (const message of prepared) await this.emitAfter('afterEnqueue', message, delay ?? undefined)
    return prepared
  }

  /**
   * Queue one payload for the enqueue script. Everything queued in the same turn of the event
   * loop goes out together: one script call per queue and 1000 messages.
   */
  #write(queueName: string, id: string, payload: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let pending = this.#pendingWrites.get(queueName)
      if (!pending) this.#pendingWrites.set(queueName, (pending = []))
      pending.push({ id, payload, resolve, reject })
      if (!this.#writeScheduled) {
        this.#writeScheduled = true
        setImmediate(() => this.#flushWrites())
      }
    })
  }

  #flushWrites(): void {
    this.#writeScheduled = false
    const batches = [...this.#pendingWrites]
    this.#pendingWrites.clear()
    for (const [queueName, writes] of batches) {
      const keys = [this.key(queueName), this.key(`${queueName}.msgs`)]
      const channel = this.wakeups ? this.wakeupChannel(queueName) : ''
      for (let i = 0; i < writes.length; i += BATCH) {
        const chunk = writes.slice(i, i + BATCH)
        const args: ScriptArg[] = [channel]
        for (const w of chunk) args.push(w.id, w.payload)
        this.#bounded(this.run('enqueue', keys, args)).then(
          () => chunk.forEach((w) => w.resolve()),
          (error: unknown) => chunk.forEach((w) => w.reject(error)),
        )
      }
    }
  }

  /**
   * `promise`, or a `ConnectionFailedError` once the connection has been down for
   * `connectTimeout` while it is pending (ioredis would keep it queued through up to
   * `maxRetriesPerRequest` reconnects, over a minute). The command itself stays queued in
   * ioredis and may still run after a reconnect, as with any lost reply.
   */
  #bounded<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (): void => {
        this.#boundedWrites.delete(reject)
      }
      this.#boundedWrites.add(reject)
      promise.then(
        (value) => {
          settle()
          resolve(value)
        },
        (error: unknown) => {
          settle()
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passed through as it came
          reject(error)
        },
      )
    })
  }

  override consume(queueName: string, options: ConsumeOptions = {}): Consumer {
    if (this.#closed) throw new ConfigurationError('This RedisBroker is closed')
    validateQueueName(queueName)
    const consumer = new RedisConsumer(this, queueName, {
      prefetch: options.prefetch ?? 1,
      timeout: options.timeout ?? 1000,
    })
    this.#consumers.add(consumer)
    this.#holders.add(consumer)
    if (!this.#maintenanceDue.has(queueName)) {
      this.#maintenanceDue.set(queueName, Date.now() + Math.random() * this.maintenanceInterval)
    }
    this.#startHeartbeat()
    return consumer
  }

  /** @internal A consumer closed. */
  consumerClosed(consumer: RedisConsumer): void {
    this.#consumers.delete(consumer)
    if (![...this.#consumers].some((c) => c.queueName === consumer.queueName))
      this.#maintenanceDue.delete(consumer.queueName)
    if (this.#consumers.size === 0) this.#stopHeartbeat()
  }

  /** @internal A command on `queueName` failed on the connection: reconcile before the next fetch. */
  connectionLost(queueName: string): void {
    this.#reconcileQueues.add(queueName)
  }

  /**
   * @internal Run a fetch of `queueName`. Fetches run concurrently, but a pending reconcile of
   * the queue (after a lost connection) first waits for every fetch in flight to settle, runs
   * alone, and only then lets new fetches start.
   */
  async sharedFetch<T>(queueName: string, fetch: () => Promise<T>): Promise<T> {
    let gate = this.#fetchGates.get(queueName)
    if (!gate) {
      gate = { active: 0, drained: new Notifier(), reconciling: undefined }
      this.#fetchGates.set(queueName, gate)
    }
    for (;;) {
      if (gate.reconciling) {
        await gate.reconciling
        continue
      }
      if (!this.#reconcileQueues.has(queueName)) break
      if (gate.active > 0) {
        await gate.drained.wait()
        continue
      }
      const reconciling = this.reconcileIfNeeded(queueName)
      // Others wait for it whatever its outcome; only this caller sees its error.
      gate.reconciling = reconciling.catch(() => undefined)
      try {
        await reconciling
      } finally {
        gate.reconciling = undefined
      }
    }
    gate.active++
    try {
      return await fetch()
    } finally {
      gate.active--
      if (gate.active === 0) gate.drained.notify()
    }
  }

  /**
   * @internal After a lost connection, requeue ids in this broker's ack set for `queueName`
   * that none of its consumers holds: what a fetch whose reply was lost left behind. Runs
   * inside `sharedFetch` while no other fetch of the queue is in flight, so no fetch reply of this queue is still on its way.
   */
  async reconcileIfNeeded(queueName: string): Promise<void> {
    if (!this.#reconcileQueues.delete(queueName)) return
    const held: Buffer[] = []
    for (const consumer of this.#holders) {
      // A closed consumer still holds ids until its last acks are confirmed.
      if (consumer.closed && consumer.heldCount === 0) this.#holders.delete(consumer)
      else if (consumer.queueName === queueName) held.push(...consumer.heldIds())
    }
    let requeued: number
    try {
      requeued = Number(
        await this.run(
          'reconcile',
          [this.acksKey(queueName), this.key(queueName), this.key(`${queueName}.msgs`)],
          [this.wakeups ? this.wakeupChannel(queueName) : '', ...held],
        ),
      )
    } catch (error) {
      this.#reconcileQueues.add(queueName)
      throw error
    }
    if (requeued > 0) {
      this.logger.warn(`Requeued ${requeued} message(s) fetched by a command whose reply was lost`, {
        queue: queueName,
      })
    }
  }

  /** @internal A consumer acked, nacked or requeued something: wake `join()`. */
  settled(): void {
    this.#settled.notify()
  }

  /**
   * Dramatiq's `qsize`: payloads in the queue and its delay queue plus this broker's ack sets
   * for both, counted atomically. Zero means no work is left; other values are approximate
   * (a message this broker is processing counts twice).
   */
  async qsize(queueName: string): Promise<number> {
    const q = qName(queueName)
    const dq = dqName(q)
    const size = await this.run(
      'qsize',
      [this.key(`${q}.msgs`), this.acksKey(q), this.key(`${dq}.msgs`), this.acksKey(dq)],
      [],
    )
    return Number(size)
  }

  /** Wait until `qsize(queueName)` is 0: the queue, its delay queue and this broker's in-flight messages are empty. */
  override async join(queueName: string, options: RedisJoinOptions = {}): Promise<void> {
    const canonical = qName(queueName)
    const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout
    const interval = options.interval ?? 100
    for (;;) {
      if ((await this.qsize(canonical)) === 0) return
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new QueueJoinTimeoutError(canonical, options.timeout ?? 0)
      await this.#settled.wait(Math.min(remaining, interval))
    }
  }

  /** Drop a queue, its delay queue, their dead letters and this broker's ack sets for them. */
  override async flush(queueName: string): Promise<void> {
    const q = qName(queueName)
    const xq = xqName(q)
    await Promise.all(
      [q, dqName(q)].map((name) =>
        this.run(
          'purge',
          [this.key(name), this.acksKey(name), this.key(`${name}.msgs`), this.key(xq), this.key(`${xq}.msgs`)],
          [],
        ),
      ),
    )
  }

  override async flushAll(): Promise<void> {
    await Promise.all([...this.queues].map((queue) => this.flush(queue)))
  }

  /** The dead letters of a canonical queue (from it and its delay queue), oldest first. */
  async deadLetters(queueName: string): Promise<RedisDeadLetter[]> {
    const xq = this.key(xqName(queueName))
    await this.#ensureReady()
    try {
      const entries = await this.client.zrangeBuffer(xq, '0', '-1', 'WITHSCORES')
      const out: RedisDeadLetter[] = []
      const ids: Buffer[] = []
      const scores: number[] = []
      for (let i = 0; i + 1 < entries.length; i += 2) {
        ids.push(entries[i] as Buffer)
        scores.push(Number((entries[i + 1] as Buffer).toString()))
      }
      if (ids.length === 0) return out
      const bodies = await this.client.hmgetBuffer(`${xq}.msgs`, ...ids)
      ids.forEach((id, i) => {
        const body = bodies[i]
        if (body) out.push({ redisMessageId: id.toString(), body, deadLetteredAt: scores[i] as number })
      })
      return out
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  /**
   * Open the command connection now and check it with a PING (and a SELECT of the URL's
   * database), so a worker fails at boot (the CLI's exit code 3) instead of polling a server it
   * cannot reach. Commands run before it call it themselves. Throws `ConnectionFailedError`
   * when Redis is unreachable (within `connectTimeout`) or refuses the credentials, and
   * `ConfigurationError` when the database index does not exist on the server (ioredis would
   * otherwise silently stay on database 0). Messages never contain the URL's password.
   */
  override async connect(): Promise<void> {
    if (this.#closed) throw new ConfigurationError('This RedisBroker is closed')
    if (!this.#verified) {
      const verifying = this.#verify()
      this.#verified = verifying
      verifying.then(
        () => {
          this.#isVerified = true
        },
        (error: unknown) => {
          // Unreachable: try again next time. A missing database stays an error.
          if (!(error instanceof ConfigurationError) && this.#verified === verifying) this.#verified = undefined
        },
      )
    }
    await this.#verified
  }

  /** The server (its URL without the password, or host:port) and the database. */
  override describe(): Record<string, string | number> {
    return { url: this.#where, db: Number(this.client.options.db ?? 0) }
  }

  /** A redacted description of the server: the URL without its password, or host:port. */
  get #where(): string {
    return this.#url !== undefined ? redactUrl(this.#url) : this.#address
  }

  /** host:port (or the socket path) of the server. */
  get #address(): string {
    const { host, port, path } = this.client.options
    return path ?? `${host ?? '127.0.0.1'}:${port ?? 6379}`
  }

  async #verify(): Promise<void> {
    await this.#waitReady()
    try {
      await this.client.ping()
    } catch (error) {
      throw this.#connectionFailed(this.#lastConnectionError ?? error)
    }
    const db = Number(this.client.options.db ?? 0)
    if (db !== 0) {
      try {
        // ioredis swallows a failed SELECT of its handshake and stays on database 0: check it.
        await this.client.select(db)
      } catch (error) {
        if (error instanceof Error && error.name === 'ReplyError') {
          throw new ConfigurationError(
            `Redis at ${this.#where} cannot select database ${db}: ${errorMessage(error)} ` +
              "(check the /db part of the URL and the server's `databases` setting)",
            { cause: error },
          )
        }
        throw classifyRedisError(error)
      }
    }
  }

  /** Before a command: the first one connects and checks; later ones wait (bounded) for a reconnect. */
  #ensureReady(): Promise<void> | undefined {
    if (this.#isVerified) {
      if (this.client.status === 'ready') return undefined
      return this.#waitReady()
    }
    return this.connect()
  }

  #connectionFailed(cause: unknown, suffix = ''): ConnectionFailedError {
    const reason = cause === undefined ? 'no answer' : errorMessage(cause)
    return new ConnectionFailedError(`Could not connect to Redis at ${this.#address}${suffix}: ${reason}`, {
      cause,
    })
  }

  /**
   * Resolve once the command connection is ready; reject with `ConnectionFailedError` when the
   * first connection attempt this call starts fails, or when it is not ready within
   * `connectTimeout`. ioredis keeps reconnecting in the background either way.
   */
  #waitReady(): Promise<void> {
    const client = this.client
    if (client.status === 'ready') return Promise.resolve()
    if (this.#closed) return Promise.reject(new ConfigurationError('This RedisBroker is closed'))
    if (client.status === 'end' && !this.#ownsClient) {
      return Promise.reject(new ConnectionClosedError(`The Redis connection to ${this.#address} is closed`))
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(this.#connectionFailed(this.#lastConnectionError, ` within ${this.connectTimeout} ms`)),
        this.connectTimeout,
      )
      void this.#nextReady().then(() => {
        clearTimeout(timer)
        resolve()
      })
      if (client.status === 'wait' || client.status === 'end') {
        // ioredis rejects connect() with a bare "Connection is closed."; the cause came as an event.
        client.connect().catch((error: unknown) => {
          if ((client.status as string) === 'ready') return
          clearTimeout(timer)
          reject(this.#connectionFailed(this.#lastConnectionError ?? error))
        })
      }
    })
  }

  /** Resolves on the command connection's next 'ready' (one listener, however many commands wait). */
  #nextReady(): Promise<void> {
    this.#readyWait ??= new Promise<void>((resolve) => {
      this.client.once('ready', () => {
        this.#readyWait = undefined
        resolve()
      })
    })
    return this.#readyWait
  }

  override isRetryableError(error: unknown): boolean {
    return super.isRetryableError(error) || classifyRedisError(error).retryable
  }

  // -- heartbeats and maintenance --------------------------------------------------------------

  /** Refresh this broker's heartbeat now. */
  async heartbeat(): Promise<void> {
    await this.#ensureReady()
    try {
      await this.client.zadd(this.heartbeatsKey, String(Date.now()), this.brokerId)
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  #startHeartbeat(): void {
    if (this.#heartbeatTimer) return
    this.#heartbeatTimer = setInterval(() => {
      this.heartbeat().catch((error: unknown) => {
        this.logger.warn('Redis heartbeat failed', { brokerId: this.brokerId, ...errorMeta(error) })
      })
      if (this.maintenanceInterval > 0) this.#timedMaintenance()
    }, this.heartbeatInterval)
    this.#heartbeatTimer.unref()
  }

  #timedMaintenance(): void {
    const now = Date.now()
    for (const [queueName, due] of this.#maintenanceDue) {
      if (due > now) continue
      this.#maintenanceDue.set(queueName, now + this.maintenanceInterval)
      this.maintain(queueName).catch((error: unknown) => {
        this.logger.warn('Redis maintenance failed', { queue: queueName, ...errorMeta(error) })
      })
    }
  }

  #stopHeartbeat(): void {
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer)
    this.#heartbeatTimer = undefined
  }

  /** Whether this fetch should also run maintenance (`maintenanceChance` per million). */
  rollMaintenance(): boolean {
    return this.maintenanceChance > 0 && Math.random() * 1_000_000 < this.maintenanceChance
  }

  /**
   * Requeue what dead workers (no heartbeat for `heartbeatTimeout`) held from `queueName`, and
   * delete dead letters older than `deadMessageTtl`. Consumers run it by chance on fetch.
   */
  async maintain(queueName: string): Promise<{ requeued: number; expired: number }> {
    const xq = xqName(queueName)
    const result = (await this.run(
      'maintenance',
      [this.key(queueName), this.key(`${queueName}.msgs`), this.key(xq), this.key(`${xq}.msgs`)],
      [
        this.namespace,
        queueName,
        this.heartbeatTimeout,
        this.deadMessageTtl,
        this.wakeups ? this.wakeupChannel(queueName) : '',
      ],
    )) as [number, number]
    const [requeued, expired] = result
    if (requeued > 0) this.logger.warn(`Requeued ${requeued} message(s) of dead workers`, { queue: queueName })
    if (expired > 0) this.logger.info(`Deleted ${expired} expired dead letter(s)`, { queue: queueName })
    return { requeued, expired }
  }

  // -- wake-ups --------------------------------------------------------------------------------

  /** @internal The wake-up state of a queue; subscribes on first use. */
  subscribeWakeups(queueName: string): WakeState {
    let state = this.#wake.get(queueName)
    if (!state) {
      state = { generation: 0, notifier: new Notifier(), refs: 0 }
      this.#wake.set(queueName, state)
      if (this.wakeups) {
        const subscribed = state
        this.#subscriberClient()
          .subscribe(this.wakeupChannel(queueName))
          .then(() => {
            // A wake-up published before the subscription took effect was missed: fetch again.
            subscribed.generation++
            subscribed.notifier.notify()
          })
          .catch((error: unknown) => {
            this.logger.warn('Could not subscribe to wake-ups; falling back to polling', {
              queue: queueName,
              ...errorMeta(error),
            })
          })
      }
    }
    state.refs++
    return state
  }

  /** @internal Release a queue's wake-up state. */
  unsubscribeWakeups(queueName: string): void {
    const state = this.#wake.get(queueName)
    if (!state || --state.refs > 0) return
    this.#wake.delete(queueName)
    if (this.#subscriber && this.wakeups && !this.#closed) {
      this.#subscriber.unsubscribe(this.wakeupChannel(queueName)).catch(() => undefined)
    }
  }

  #subscriberClient(): Redis {
    if (this.#subscriber) return this.#subscriber
    const subscriber = this.client.duplicate(this.#subscriberOptions)
    const prefix = `${this.namespace}:__wakeup__.`
    subscriber.on('message', (channel: string) => {
      if (!channel.startsWith(prefix)) return
      const state = this.#wake.get(channel.slice(prefix.length))
      if (state) {
        state.generation++
        state.notifier.notify()
      }
    })
    // After a reconnect, wake-ups sent meanwhile are lost: make every consumer fetch again.
    let readyBefore = false
    subscriber.on('ready', () => {
      if (readyBefore) {
        for (const state of this.#wake.values()) {
          state.generation++
          state.notifier.notify()
        }
      }
      readyBefore = true
    })
    subscriber.on('error', (error: unknown) => this.#logConnectionError('wake-ups', error))
    this.#subscriber = subscriber
    return subscriber
  }

  #logConnectionError(connection: string, error: unknown): void {
    // One warning per outage; the reconnect attempts after it are debug noise.
    const meta = { connection, brokerId: this.brokerId, ...errorMeta(error) }
    if (this.#connectionErrorLogged) {
      this.logger.debug('Redis connection error', meta)
      return
    }
    this.#connectionErrorLogged = true
    this.logger.warn('Redis connection error; reconnecting', meta)
  }

  /**
   * Close the consumers, stop heart-beating and close the connections this broker opened
   * (a given `client` only with `closeClient`).
   */
  override async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.all([...this.#consumers].map((c) => c.close()))
    this.#stopHeartbeat()
    clearTimeout(this.#outageTimer)
    this.client.off('close', this.#onClientClose)
    this.client.off('error', this.#onClientError)
    this.client.off('ready', this.#onClientReady)
    const closing: Promise<unknown>[] = []
    if (this.#subscriber) closing.push(quit(this.#subscriber))
    if (this.#ownsClient) closing.push(quit(this.client))
    await Promise.all(closing)
  }
}

/** QUIT (pending replies arrive first) and wait for the socket to end; disconnect if that stalls. */
async function quit(client: Redis): Promise<void> {
  if (client.status === 'end') return
  if (client.status !== 'ready') {
    client.disconnect()
    return
  }
  const ended = new Promise<void>((resolve) => client.once('end', resolve))
  try {
    await client.quit()
  } catch {
    client.disconnect()
  }
  let timer: NodeJS.Timeout | undefined
  await Promise.race([ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))])
  clearTimeout(timer)
  if ((client.status as string) !== 'end') client.disconnect()
}

/** `redis://` and `rediss://` URLs build a RedisBroker (for `createBroker(url)` and `TQ_BROKER_URL`). */
export const brokerPlugin: BrokerPlugin = {
  name: '@tq/redis RedisBroker',
  schemes: ['redis', 'rediss'],
  create: (url?: string) => new RedisBroker(url === undefined ? {} : { url }),
}
