import { ListQueuesCommand, type SQSClient } from '@aws-sdk/client-sqs'
import {
  Broker,
  BrokerConnectionError,
  ErrorCode,
  QueueNotFoundError,
  dqName,
  errorMeta,
  qName,
  xqName,
  type TqError,
  type BrokerPlugin,
  type ConsumeOptions,
  type Encoder,
  type OutgoingMessage,
  type QueueCounts,
} from '@tq/core'
import { classifySqsError } from './classify-error.ts'
import { SqsConsumer, type SqsConsumerHost } from './consumer.ts'
import { ConsumerRegistry } from './consumer-registry.ts'
import { Inspector, type SqsJoinOptions, type SqsQueueCounts } from './inspection.ts'
import { chooseClient, resolveSettings, type SqsBrokerOptions } from './options.ts'
import { Publisher } from './publisher.ts'
import { Purger } from './purge.ts'
import { Receipts } from './receipts.ts'
import { Redriver } from './redrive.ts'
import { Topology } from './topology.ts'
import { parseSqsUrl } from './url.ts'

/**
 * A broker on Amazon SQS (standard queues), through `@aws-sdk/client-sqs` v3.
 *
 * Each tq queue `q` is three SQS queues: `<prefix>q`, `<prefix>q_DQ` (delayed messages) and
 * `<prefix>q_XQ` (dead letters, wired to the other two by a redrive policy), created on first
 * use. Bodies are the encoder's bytes as SQS text (base64 with a `tq-body-encoding` attribute
 * when the bytes are not valid SQS text). Sends are batched by `enqueueMany`, acks are coalesced
 * into `DeleteMessageBatch` calls, consumers long-poll and extend the visibility of the messages
 * they hold. Delays longer than SQS's 15 minutes hop through the delay queue.
 *
 * Not provided by SQS, so not here: priorities between messages (use a queue per priority),
 * exact counts (`join` polls approximate ones), FIFO ordering.
 */
export class SqsBroker extends Broker<SqsConsumer> {
  readonly client: SQSClient
  readonly queuePrefix: string
  readonly visibilityTimeout: number
  readonly waitTimeSeconds: number
  readonly deadLetter: boolean
  readonly maxReceiveCount: number
  readonly retentionPeriod: number
  readonly maxMessageSize: number
  readonly defaultPrefetch: number
  readonly delayHoldWindow: number
  readonly maxDelaySeconds: number
  readonly closeTimeout: number
  readonly #ownsClient: boolean
  readonly #where: Readonly<Record<string, string>>
  readonly #log = this.logger.child({ component: 'sqs' })
  /** Queue names, creation and URLs. */
  readonly #topology: Topology
  /** SendMessage and SendMessageBatch. */
  readonly #publisher: Publisher
  /** Acks (deletes), visibility changes and dead-lettering of received messages. */
  readonly #receipts: Receipts
  /** Counts and join. */
  readonly #inspector: Inspector
  readonly #purger: Purger
  /** Dead letters back to their queue. */
  readonly #redriver: Redriver
  readonly #consumers = new ConsumerRegistry()
  /** What consumers reach of the broker. */
  readonly #host: SqsConsumerHost

  constructor(options: SqsBrokerOptions = {}) {
    super(options)
    const settings = resolveSettings(options)
    this.queuePrefix = settings.queuePrefix
    this.visibilityTimeout = settings.visibilityTimeout
    this.waitTimeSeconds = settings.waitTimeSeconds
    this.deadLetter = settings.deadLetter
    this.maxReceiveCount = settings.maxReceiveCount
    this.retentionPeriod = settings.retentionPeriod
    this.maxMessageSize = settings.maxMessageSize
    this.defaultPrefetch = settings.defaultPrefetch
    this.delayHoldWindow = settings.delayHoldWindow
    this.maxDelaySeconds = settings.maxDelaySeconds
    this.closeTimeout = settings.closeTimeout
    const { client, owned, where } = chooseClient(options)
    this.client = client
    this.#ownsClient = owned
    this.#where = where

    const logger = this.#log
    const isDeclared = (canonical: string): boolean => this.queues.has(canonical)
    const topology = new Topology({ client, logger, settings, isDeclared })
    const publisher = new Publisher({
      client,
      topology,
      maxMessageSize: settings.maxMessageSize,
      maxDelaySeconds: settings.maxDelaySeconds,
      sendConcurrency: settings.sendConcurrency,
    })
    const receipts = new Receipts({
      client,
      topology,
      publisher,
      logger,
      batchDelay: settings.ackBatchDelay,
      deadLetter: settings.deadLetter,
    })
    this.#topology = topology
    this.#publisher = publisher
    this.#receipts = receipts
    this.#inspector = new Inspector({ client, topology, deadLetter: settings.deadLetter, isDeclared })
    this.#purger = new Purger({ client, topology, logger })
    const encoder = (): Encoder => this.encoder
    this.#redriver = new Redriver({
      client,
      topology,
      publisher,
      receipts,
      logger,
      get encoder() {
        return encoder()
      },
      deadLetter: settings.deadLetter,
      visibilityTimeout: settings.visibilityTimeout,
      messageCounts: (queueName) => this.#inspector.messageCounts(queueName),
      beforeEnqueue: (message) => this.emitBefore('beforeEnqueue', message, undefined),
      afterEnqueue: (message, began) => this.emitAfter('afterEnqueue', message, undefined, undefined, began),
    })
    this.#host = {
      client,
      topology,
      receipts,
      publisher,
      logger,
      settings,
      get encoder() {
        return encoder()
      },
      opened: (consumer) => this.#consumers.opened(consumer),
      closed: (consumer) => this.#consumers.closed(consumer),
    }
  }

  // ---- queues ----

  /** The SQS queue name of a tq queue (`q`, `q.DQ` or `q.XQ`). */
  sqsQueueName(queueName: string): string {
    return this.#topology.sqsName(queueName)
  }

  /** Declare a queue; refuses names SQS cannot hold, or that collide with another declared queue after mapping. */
  override declareQueue(queueName: string): void {
    if (!this.queues.has(queueName)) this.#topology.claim(queueName)
    super.declareQueue(queueName)
  }

  protected override onDeclareQueue(queueName: string): void {
    // Create the SQS queues in the background; every use awaits the same promise.
    this.#topology.ensure(queueName).catch((error: unknown) => {
      this.#log.warn(`Could not create the SQS queues of ${queueName} yet; retrying on first use`, {
        queue: queueName,
        ...errorMeta(error),
      })
    })
  }

  /** The URL of the SQS queue behind a tq queue name (`q`, `q.DQ` or `q.XQ`), creating the queues if needed. */
  getQueueUrl(queueName: string): Promise<string> {
    return this.#topology.url(queueName)
  }

  /**
   * Delete the SQS queues of a tq queue (`q`, `q_DQ`, `q_XQ`). The next use creates them again
   * (on AWS, not before 60 seconds have passed).
   */
  deleteQueue(queueName: string): Promise<void> {
    return this.#topology.delete(queueName)
  }

  // ---- enqueue (the template's transport step) ----

  /**
   * Send the prepared messages: one `SendMessage` for one message, else `SendMessageBatch` (10
   * a call, up to `sendConcurrency` calls at once). A message over `maxMessageSize` fails the
   * whole call with `MessageTooLargeError` before anything is sent.
   */
  protected override transmit(outgoing: readonly OutgoingMessage[]): Promise<void> {
    return this.#publisher.transmit(outgoing)
  }

  // ---- consume ----

  protected override openConsumer(queueName: string, options: ConsumeOptions): SqsConsumer {
    const canonical = qName(queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    const prefetch = options.prefetch ?? this.defaultPrefetch
    return new SqsConsumer(this.#host, queueName, prefetch, options.timeout ?? 1000)
  }

  // ---- counts and join ----

  /** SQS's approximate counts for one queue (`q`, `q.DQ` or `q.XQ`). */
  messageCounts(queueName: string): Promise<SqsQueueCounts> {
    return this.#inspector.messageCounts(queueName)
  }

  /**
   * The counts of a queue from SQS's approximate ones (`GetQueueAttributes` of `q`, `q_DQ` and
   * `q_XQ`): `ready` = visible in `q`; `running` = in flight in `q`; `delayed` = everything in
   * `q_DQ` (visible, in flight or delayed) plus the messages of `q` still under a
   * `DelaySeconds`; `dead` = visible and in flight in `q_XQ` (0 with `deadLetter: false`). On
   * AWS the numbers can lag by seconds. `messageCounts()` gives the raw numbers of one SQS queue.
   */
  override queueCounts(queueName: string): Promise<QueueCounts> {
    return this.#inspector.queueCounts(queueName)
  }

  /**
   * Wait until `q` and `q.DQ` hold no message (ready, in flight or delayed) for `idleChecks`
   * consecutive checks. SQS's counts are approximate (on AWS they can lag by seconds): a
   * test helper, not a synchronisation primitive.
   */
  override join(queueName: string, options: SqsJoinOptions = {}): Promise<void> {
    return this.#inspector.join(queueName, options)
  }

  // ---- dead letters ----

  /**
   * Move up to `limit` (default all) dead letters of a queue (`q_XQ`, which holds those of `q`
   * and `q_DQ`) back to `q`, due now and with their retry count reset; resolves with how many
   * moved (0 with `deadLetter: false`). Each batch of 10 is received from `q_XQ`, sent to `q`,
   * then deleted from `q_XQ`, so a crash loses nothing: at worst a message is in both and the
   * next redrive sends it again. Undecodable dead letters stay. See `Redriver`.
   */
  override async redriveDeadLetters(queueName: string, options: { limit?: number } = {}): Promise<number> {
    this.assertOpen()
    const canonical = qName(queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    return this.#redriver.redrive(canonical, options)
  }

  // ---- flush ----

  /**
   * Drop the messages of a queue and its delay queue (`PurgeQueue`), and the messages this
   * broker's consumers of them buffered. AWS allows one purge per queue every 60 seconds; when
   * one is in progress the broker receives and deletes what is visible instead. On AWS a purge
   * can take up to a minute to finish.
   */
  override async flush(queueName: string): Promise<void> {
    const canonical = qName(queueName)
    await Promise.all([this.#purger.purge(canonical), this.#purger.purge(dqName(canonical))])
    this.#consumers.dropBuffered(canonical)
  }

  /** Flush every declared queue, dead-letter queues included. */
  override async flushAll(): Promise<void> {
    await Promise.all(
      [...this.queues].map(async (queue) => {
        await this.flush(queue)
        if (this.deadLetter) await this.#purger.purge(xqName(queue))
      }),
    )
  }

  // ---- lifecycle ----

  /** Check that SQS answers with these credentials (`ListQueues`) and create the declared queues. */
  override async connect(): Promise<void> {
    this.assertOpen()
    try {
      await this.client.send(new ListQueuesCommand({ QueueNamePrefix: this.queuePrefix || 'tq', MaxResults: 1 }))
    } catch (error) {
      const classified = classifySqsError(error)
      if (classified.code === ErrorCode.CONFIGURATION) throw classified
      throw new BrokerConnectionError(`Could not reach SQS: ${classified.message}`, ErrorCode.CONNECTION_FAILED, {
        cause: error,
      })
    }
    await Promise.all([...this.queues].map((q) => this.#topology.ensure(q)))
  }

  /** The region and endpoint (when given to the broker, not in a client of the user's) and the queue prefix. */
  override describe(): Record<string, string | number> {
    return { ...this.#where, ...(this.queuePrefix ? { queuePrefix: this.queuePrefix } : {}) }
  }

  /**
   * Stop consumers (their buffered messages go back to the queues), wait for long polls in
   * flight (up to `closeTimeout`) and pending acks, then destroy the client if the broker built
   * it.
   */
  protected override async closeTransport(): Promise<void> {
    await this.#consumers.closeAll(this.closeTimeout)
    await this.#receipts.drain()
    if (this.#ownsClient) this.client.destroy()
  }

  /** Whether an error is one the worker retries an ack or nack after (connection, throttling). */
  /** The AWS SDK's and the socket's errors, as `classifySqsError` maps them. */
  override classifyError(error: unknown): TqError {
    return classifySqsError(error)
  }
}

/** `sqs://` URLs build an SqsBroker (see `parseSqsUrl` for the forms). */
export const brokerPlugin: BrokerPlugin = {
  name: '@tq/sqs SqsBroker',
  schemes: ['sqs'],
  create: (url?: string) => new SqsBroker(url === undefined ? {} : parseSqsUrl(url)),
}
