import { randomUUID } from 'node:crypto'
import {
  Broker,
  Notifier,
  validateQueueName,
  type TqError,
  type BrokerPlugin,
  type ConsumeOptions,
  type Consumer,
  type Message,
  type OutgoingMessage,
  type QueueCounts,
} from '@tq/core'
import type { Redis } from 'ioredis'
import { classifyRedisError } from './classify-error.ts'
import { RedisConnection } from './connection.ts'
import { RedisConsumer, type ConsumerHost } from './consumer.ts'
import { FetchGate } from './fetch-gate.ts'
import { Heartbeat, type MaintenanceResult } from './heartbeat.ts'
import { Inspection, type RedisDeadLetter } from './inspection.ts'
import { RedisKeys } from './keys.ts'
import { withNewRedisId } from './message-proxy.ts'
import { brokerSettings, type RedisBrokerOptions, type RedisJoinOptions } from './options.ts'
import { Redrive } from './redrive.ts'
import { defineScripts, runScript, type RunScript, type ScriptArg, type ScriptName } from './scripts.ts'
import { RedisClientHandle } from './shared/client.ts'
import { Wakeups } from './wakeups.ts'
import { WriteCoalescer } from './write-coalescer.ts'

export type { RedisBrokerOptions, RedisJoinOptions } from './options.ts'
export type { RedisDeadLetter } from './inspection.ts'

/**
 * A broker on Redis, wire-compatible with Python Dramatiq 2.x: the same keys, payloads and
 * atomic operations (Lua scripts in `src/lua/`), so tq and Dramatiq processes can share queues
 * in both directions.
 *
 * Beyond Dramatiq: heartbeats run on a timer while consumers are open (not only when
 * fetching), fetches and acks are batched, idle consumers wake on enqueue instead of polling,
 * and a consumer that lost its connection requeues what a lost reply left in its ack set.
 *
 * Its parts: the key layout (`keys.ts`), the command connection and its readiness
 * (`connection.ts`), coalesced enqueues (`write-coalescer.ts`), the fetch gate that reconciles
 * after a lost connection (`fetch-gate.ts`), heartbeats and maintenance (`heartbeat.ts`),
 * wake-ups (`wakeups.ts`), counts, join, flush and dead letters (`inspection.ts`), and the
 * consumer (`consumer.ts`), which reaches the broker through a `ConsumerHost`.
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
  readonly #keys: RedisKeys
  readonly #connection: RedisConnection
  readonly #writes: WriteCoalescer
  readonly #gate: FetchGate
  readonly #heartbeat: Heartbeat
  readonly #wakeups: Wakeups
  readonly #inspection: Inspection
  readonly #redrive: Redrive
  readonly #host: ConsumerHost
  readonly #consumers = new Set<RedisConsumer>()
  /** Notified when a consumer settles something: `join()` looks again. */
  readonly #settled = new Notifier()

  constructor(options: RedisBrokerOptions = {}) {
    super(options)
    const settings = brokerSettings(options)
    this.namespace = settings.namespace
    this.heartbeatTimeout = settings.heartbeatTimeout
    this.heartbeatInterval = settings.heartbeatInterval
    this.deadMessageTtl = settings.deadMessageTtl
    this.maintenanceChance = settings.maintenanceChance
    this.maintenanceInterval = settings.maintenanceInterval
    this.pollInterval = settings.pollInterval
    this.wakeups = settings.wakeups
    this.connectTimeout = settings.connectTimeout

    const name = `tq:${this.brokerId}`
    const handle = new RedisClientHandle(options, {
      owner: 'RedisBroker',
      keyPrefixAdvice: '; set `namespace` instead',
      defaults: { lazyConnect: true, connectTimeout: this.connectTimeout },
      fixed: { connectionName: `${name}:commands` },
    })
    this.client = handle.client
    defineScripts(this.client)
    const logger = this.logger
    const isClosed = (): boolean => this.closed
    const run: RunScript = (script, keys, args, buffers) => this.run(script, keys, args, buffers)
    this.#keys = new RedisKeys(this.namespace, this.brokerId, this.wakeups)
    this.#connection = new RedisConnection({
      handle,
      duplicateOptions: handle.options ?? { lazyConnect: true },
      connectTimeout: this.connectTimeout,
      logger,
      brokerId: this.brokerId,
      brokerName: this.constructor.name,
      isClosed,
      onClose: () => {
        for (const consumer of this.#consumers) this.#gate.connectionLost(consumer.queueName)
      },
    })
    this.#writes = new WriteCoalescer({
      keys: this.#keys,
      enqueue: (keys, args) => this.#connection.bounded(run('enqueue', keys, args)),
    })
    this.#gate = new FetchGate({ keys: this.#keys, logger, run })
    this.#heartbeat = new Heartbeat({ ...settings, keys: this.#keys, logger, run, beat: () => this.heartbeat() })
    this.#wakeups = new Wakeups({
      keys: this.#keys,
      logger,
      openSubscriber: () => this.#connection.duplicate(`${name}:wakeups`),
      onError: (error) => this.#connection.logError('wake-ups', error),
      isClosed,
    })
    this.#inspection = new Inspection({
      keys: this.#keys,
      run,
      client: this.client,
      ready: () => this.#connection.ready(),
      settled: this.#settled,
    })
    this.#redrive = new Redrive({
      keys: this.#keys,
      client: this.client,
      logger,
      encoder: () => this.encoder,
      ready: () => this.#connection.ready(),
      bounded: (promise) => this.#connection.bounded(promise),
      beforeEnqueue: (message) => this.emitBefore('beforeEnqueue', message, undefined),
      afterEnqueue: (message, began) => this.emitAfter('afterEnqueue', message, undefined, undefined, began),
    })
    this.#host = {
      encoder: () => this.encoder,
      logger,
      keys: this.#keys,
      pollInterval: this.pollInterval,
      run,
      gate: this.#gate,
      heartbeat: this.#heartbeat,
      wakeups: this.#wakeups,
      settled: () => this.#settled.notify(),
      consumerClosed: (consumer) => {
        this.#consumers.delete(consumer)
        this.#heartbeat.consumerClosed(consumer.queueName)
      },
    }
  }

  // -- keys -----------------------------------------------------------------------------------

  /** `<ns>:<queue>` */
  key(queueName: string): string {
    return this.#keys.key(queueName)
  }

  /** `<ns>:__heartbeats__` */
  get heartbeatsKey(): string {
    return this.#keys.heartbeats
  }

  /** `<ns>:__acks__.<brokerId>.<queue>` */
  acksKey(queueName: string): string {
    return this.#keys.acks(queueName)
  }

  /** The channel wake-ups for a queue are published on (a tq addition; Dramatiq ignores it). */
  wakeupChannel(queueName: string): string {
    return this.#keys.wakeupChannel(queueName)
  }

  // -- commands -------------------------------------------------------------------------------

  /**
   * Run one of the Lua scripts with the heartbeat key and arguments every script takes first;
   * errors are classified. Every script call of the broker and its consumers goes through it.
   */
  protected run(name: ScriptName, keys: ScriptArg[], args: ScriptArg[], buffers = false): Promise<unknown> {
    // Every fetch, ack and enqueue batch comes here: no async frame, and only wait for the
    // connection when there is something to wait for.
    const ready = this.#connection.ready()
    if (ready) return ready.then(() => this.#runNow(name, keys, args, buffers))
    return this.#runNow(name, keys, args, buffers)
  }

  #runNow(name: ScriptName, keys: ScriptArg[], args: ScriptArg[], buffers: boolean): Promise<unknown> {
    let reply: Promise<unknown>
    try {
      reply = runScript(
        this.client,
        name,
        [this.#keys.heartbeats, ...keys],
        [Date.now(), this.brokerId, ...args],
        buffers,
      )
    } catch (error) {
      return Promise.reject(classifyRedisError(error))
    }
    return reply.then(undefined, rethrowClassified)
  }

  // -- enqueue (the steps of Broker.enqueueMany) ------------------------------------------------

  /** Any valid queue name: Redis creates the keys on first use, as Dramatiq. */
  protected override checkEnqueueQueue(canonical: string): void {
    validateQueueName(canonical)
  }

  /** Every enqueue gets its own Redis id (a retry is a new Redis message), before the delay's eta. */
  protected override prepareMessage(message: Message): Message {
    return withNewRedisId(message)
  }

  /** Coalesced with the other enqueues of this turn: one script call per queue and 1000 messages. */
  protected override transmit(messages: readonly OutgoingMessage[]): Promise<void> | void {
    if (messages.length > 0) return this.#writes.write(messages)
  }

  // -- consume --------------------------------------------------------------------------------

  protected override openConsumer(queueName: string, options: ConsumeOptions): Consumer {
    const consumer = new RedisConsumer(this.#host, queueName, this.#gate.holder(queueName), {
      prefetch: options.prefetch ?? 1,
      timeout: options.timeout ?? 1000,
    })
    this.#consumers.add(consumer)
    this.#heartbeat.consumerOpened(queueName)
    return consumer
  }

  // -- inspection -----------------------------------------------------------------------------

  /**
   * Dramatiq's `qsize`: payloads in the queue and its delay queue plus this broker's ack sets
   * for both, counted atomically. Zero means no work is left; other values are approximate
   * (a message this broker is processing counts twice).
   */
  qsize(queueName: string): Promise<number> {
    return this.#inspection.qsize(queueName)
  }

  /**
   * Counts of a canonical queue, in one script call: `ready` (its list), `delayed` (the `.DQ`
   * list), `dead` (the `.XQ` zset) and `running`: the ids in the ack sets of the queue and its
   * delay queue of every broker in the heartbeats (this one, other tq and Dramatiq workers, and
   * dead ones until maintenance requeues what they held).
   */
  override queueCounts(queueName: string): Promise<QueueCounts> {
    return this.#inspection.queueCounts(queueName)
  }

  /** Wait until `qsize(queueName)` is 0: the queue, its delay queue and this broker's in-flight messages are empty. */
  override join(queueName: string, options: RedisJoinOptions = {}): Promise<void> {
    return this.#inspection.join(queueName, options)
  }

  /** Drop a queue, its delay queue, their dead letters and this broker's ack sets for them. */
  override flush(queueName: string): Promise<void> {
    return this.#inspection.flush(queueName)
  }

  override async flushAll(): Promise<void> {
    await Promise.all([...this.queues].map((queue) => this.flush(queue)))
  }

  /** The dead letters of a canonical queue (from it and its delay queue), oldest first. */
  deadLetters(queueName: string): Promise<RedisDeadLetter[]> {
    return this.#inspection.deadLetters(queueName)
  }

  /**
   * Move up to `limit` (default: all) dead letters of a canonical queue (from it and its delay
   * queue) back to the queue, oldest first, as `redrivenMessage()` makes them and with a new
   * Redis id; resolves with how many moved. One script call per 500 dead letters, each moving
   * its batch atomically: a dead letter is in `.XQ` or in the queue, never in neither nor both.
   * Undecodable dead letters stay (not counted). See `redrive.ts`.
   */
  override async redriveDeadLetters(queueName: string, options: { limit?: number } = {}): Promise<number> {
    this.assertOpen()
    return await this.#redrive.redrive(queueName, options)
  }

  // -- connection -----------------------------------------------------------------------------

  /**
   * Open the command connection now and check it with a PING (and a SELECT of the URL's
   * database), so a worker fails at boot (the CLI's exit code 3) instead of polling a server it
   * cannot reach. Commands run before it call it themselves. Throws `ConnectionFailedError`
   * when Redis is unreachable (within `connectTimeout`) or refuses the credentials, and
   * `ConfigurationError` when the database index does not exist on the server (ioredis would
   * otherwise silently stay on database 0). Messages never contain the URL's password.
   */
  override async connect(): Promise<void> {
    this.assertOpen()
    await this.#connection.connect()
  }

  /** The server (its URL without the password, or host:port) and the database. */
  override describe(): Record<string, string | number> {
    return { url: this.#connection.handle.where, db: this.#connection.handle.db }
  }

  /** ioredis's and the socket's errors, as `classifyRedisError` maps them. */
  override classifyError(error: unknown): TqError {
    return classifyRedisError(error)
  }

  // -- heartbeats and maintenance --------------------------------------------------------------

  /** Refresh this broker's heartbeat now. */
  async heartbeat(): Promise<void> {
    await this.#connection.ready()
    try {
      await this.client.zadd(this.#keys.heartbeats, String(Date.now()), this.brokerId)
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  /**
   * Requeue what dead workers (no heartbeat for `heartbeatTimeout`) held from `queueName`, and
   * delete dead letters older than `deadMessageTtl`. Consumers run it by chance on fetch.
   */
  maintain(queueName: string): Promise<MaintenanceResult> {
    return this.#heartbeat.maintain(queueName)
  }

  /**
   * Whether a fetch should also run maintenance (`maintenanceChance` per million).
   * @deprecated The consumer's own decision, not meant to be called; it will be removed.
   */
  rollMaintenance(): boolean {
    return this.#heartbeat.roll()
  }

  // -- close ----------------------------------------------------------------------------------

  /**
   * Close the consumers, stop heart-beating and close the connections this broker opened
   * (a given `client` only with `closeClient`).
   */
  protected override async closeTransport(): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.close()))
    this.#heartbeat.stop()
    await Promise.all([this.#wakeups.close(), this.#connection.close()])
  }
}

/** `redis://` and `rediss://` URLs build a RedisBroker (for `createBroker(url)` and `TQ_BROKER_URL`). */
export const brokerPlugin: BrokerPlugin = {
  name: '@tq/redis RedisBroker',
  schemes: ['redis', 'rediss'],
  create: (url?: string) => new RedisBroker(url === undefined ? {} : { url }),
}

function rethrowClassified(error: unknown): never {
  throw classifyRedisError(error)
}
