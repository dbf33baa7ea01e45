import {
  ChangeMessageVisibilityBatchCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueuesCommand,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SQSClient,
  SendMessageBatchCommand,
  SendMessageCommand,
  type BatchResultErrorEntry,
  type Message as SqsMessage,
  type QueueAttributeName,
  type SQSClientConfig,
  type SendMessageBatchRequestEntry,
} from '@aws-sdk/client-sqs'
import {
  Broker,
  BrokerConnectionError,
  BrokerError,
  ConfigurationError,
  ConnectionClosedError,
  ErrorCode,
  InvalidArgumentError,
  redactUrl,
  MessageTooLargeError,
  QueueJoinTimeoutError,
  QueueNotFoundError,
  dqName,
  errorMeta,
  qName,
  sleep,
  xqName,
  type BrokerOptions,
  type BrokerPlugin,
  type ConsumeOptions,
  type Encoder,
  type EnqueueOptions,
  type JoinOptions,
  type Logger,
  type Message,
  type TqError,
} from '@tq/core'
import { Batcher, type EntryResult } from './batcher.ts'
import { sqsMessageSize, toSqsBody, type SqsBody } from './body.ts'
import { classifySqsError, isQueueMissing, sqsErrorCode } from './classify-error.ts'
import { SqsConsumer, sendableAttributes, type SqsConsumerHost } from './consumer.ts'
import { lazyChild } from './lazy-logger.ts'
import { sqsQueueName, validateQueuePrefix } from './queue-names.ts'
import { parseSqsUrl } from './url.ts'

export interface SqsBrokerOptions extends BrokerOptions {
  /**
   * An SQSClient to use (the broker does not destroy it on `close()`). Without one, the broker
   * builds a client from `region`, `endpoint`, `credentials` and `clientConfig`, and destroys it
   * on `close()`.
   */
  client?: SQSClient
  /** AWS region (default: the AWS SDK's chain, e.g. `AWS_REGION`; `us-east-1` with an `endpoint`). */
  region?: string
  /** An endpoint URL for LocalStack, fauxqs or a VPC endpoint, e.g. `http://127.0.0.1:4566`. */
  endpoint?: string
  /** Credentials (default: the AWS SDK's default chain: env, profile, SSO, IMDS, …). */
  credentials?: SQSClientConfig['credentials']
  /** More SQSClient configuration (`maxAttempts`, `requestHandler`, `logger`, …). */
  clientConfig?: SQSClientConfig
  /** Prepended to every SQS queue name (letters, digits, `-`, `_`), e.g. `myapp-prod-`. Default `''`. */
  queuePrefix?: string
  /**
   * Seconds a received message stays invisible to other consumers (default 30). While a message
   * is outstanding the broker extends it every `visibilityTimeout / 2`, so it only matters when
   * a worker dies: its messages come back after this long.
   */
  visibilityTimeout?: number
  /** Seconds a `ReceiveMessage` long poll waits for messages (0–20, default 20). */
  waitTimeSeconds?: number
  /** Create `<queue>_XQ` dead-letter queues; nacked and undecodable messages go there (default true). Without, they are deleted. */
  deadLetter?: boolean
  /**
   * `maxReceiveCount` of the SQS redrive policy from `q` and `q.DQ` to `q.XQ` (default 10):
   * a message received this many times without being deleted (worker crashes, visibility
   * timeouts, requeues on shutdown) moves to the dead-letter queue. tq's retries send new
   * messages and do not count. `Infinity` sets no redrive policy.
   */
  maxReceiveCount?: number
  /** `MessageRetentionPeriod` (seconds) of the queues the broker creates (default 1 209 600, 14 days, the maximum). */
  retentionPeriod?: number
  /**
   * Largest message in bytes, body and attributes (default 262 144, 256 KiB). Larger ones are
   * refused by `send()` with `MessageTooLargeError`. AWS accepts up to 1 048 576 on queues whose
   * `MaximumMessageSize` allows it; raise this if yours do.
   */
  maxMessageSize?: number
  /** Prefetch of consumers when `consume()` is given none (default 1; the Worker passes its own). */
  prefetch?: number
  /** Milliseconds to collect acks into one `DeleteMessageBatch` call (default 5). */
  ackBatchDelay?: number
  /** `SendMessageBatch` calls `enqueueMany` runs at once (default 8). */
  sendConcurrency?: number
  /**
   * Milliseconds: a delayed message received less than this before its eta is held in memory
   * (its visibility extended) until due; one due later is sent again with the remaining delay
   * (default 30 000).
   */
  delayHoldWindow?: number
  /**
   * Milliseconds `close()` waits for long polls in flight before aborting them (default
   * `waitTimeSeconds * 1000 + 5000`, so they finish). An aborted poll may have taken messages
   * that then stay invisible until their visibility timeout passes; lower it where a fast close
   * matters more (tests).
   */
  closeTimeout?: number
  /** Longest `DelaySeconds` the broker uses (default and maximum 900, SQS's limit). Lower it in tests to exercise delay hops. */
  maxDelaySeconds?: number
}

export interface SqsJoinOptions extends JoinOptions {
  /** Consecutive checks that must all see the queues empty (default 3; SQS counts are approximate). */
  idleChecks?: number
  /** Milliseconds between checks (default 100). */
  interval?: number
}

/** SQS's approximate message counts for one queue. */
export interface SqsQueueCounts {
  /** `ApproximateNumberOfMessages`: ready to be received. */
  visible: number
  /** `ApproximateNumberOfMessagesNotVisible`: received, not yet deleted (in flight). */
  notVisible: number
  /** `ApproximateNumberOfMessagesDelayed`: sent with a delay that has not passed. */
  delayed: number
}

interface Topology {
  q: string
  dq: string
  xq: string | undefined
}

interface SendEntry {
  queueName: string
  body: SqsBody
  delaySeconds: number
}

const DEFAULT_MAX_MESSAGE_SIZE = 262_144
const SQS_MAX_DELAY_SECONDS = 900

function integerOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      `SqsBroker option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    )
  }
  return value
}

/** A small counting semaphore. */
class Limiter {
  #free: number
  readonly #waiting: Array<() => void> = []
  constructor(size: number) {
    this.#free = size
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((resolve) => this.#waiting.push(resolve))
    try {
      return await fn()
    } finally {
      const next = this.#waiting.shift()
      if (next) next()
      else this.#free++
    }
  }
}

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
export class SqsBroker extends Broker {
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
  readonly #where: Record<string, string> = {}
  readonly #ownsClient: boolean
  readonly #log: Logger
  readonly #topology = new Map<string, Promise<Topology>>()
  readonly #sqsNames = new Map<string, string>()
  readonly #consumers = new Set<SqsConsumer>()
  readonly #closingConsumers = new Set<SqsConsumer>()
  readonly #deleters = new Map<string, Batcher<string>>()
  readonly #visibility = new Map<string, Batcher<{ handle: string; seconds: number }>>()
  readonly #ackBatchDelay: number
  readonly #sendLimiter: Limiter
  readonly #host: SqsConsumerHost
  #closed = false

  constructor(options: SqsBrokerOptions = {}) {
    super(options)
    this.queuePrefix = options.queuePrefix ?? ''
    validateQueuePrefix(this.queuePrefix)
    this.visibilityTimeout = integerOption('visibilityTimeout', options.visibilityTimeout, 30, 1, 43_200)
    this.waitTimeSeconds = integerOption('waitTimeSeconds', options.waitTimeSeconds, 20, 0, 20)
    this.deadLetter = options.deadLetter ?? true
    this.maxReceiveCount =
      options.maxReceiveCount === Infinity
        ? Infinity
        : integerOption('maxReceiveCount', options.maxReceiveCount, 10, 1, 1000)
    this.retentionPeriod = integerOption('retentionPeriod', options.retentionPeriod, 1_209_600, 60, 1_209_600)
    this.maxMessageSize = integerOption(
      'maxMessageSize',
      options.maxMessageSize,
      DEFAULT_MAX_MESSAGE_SIZE,
      1024,
      1_048_576,
    )
    this.defaultPrefetch = integerOption('prefetch', options.prefetch, 1, 1, 1_000_000)
    this.delayHoldWindow = Math.max(0, options.delayHoldWindow ?? 30_000)
    this.maxDelaySeconds = integerOption('maxDelaySeconds', options.maxDelaySeconds, SQS_MAX_DELAY_SECONDS, 1, 900)
    this.#ackBatchDelay = Math.max(0, options.ackBatchDelay ?? 5)
    this.closeTimeout = Math.max(0, options.closeTimeout ?? this.waitTimeSeconds * 1000 + 5000)
    this.#sendLimiter = new Limiter(integerOption('sendConcurrency', options.sendConcurrency, 8, 1, 1000))
    // Resolved on every call: `tq worker` gives the broker its logger after construction.
    this.#log = lazyChild(() => this.logger, { component: 'sqs' })

    if (options.client) {
      if (
        options.region !== undefined ||
        options.endpoint !== undefined ||
        options.credentials !== undefined ||
        options.clientConfig !== undefined
      ) {
        throw new InvalidArgumentError(
          'SqsBroker takes `client` or `region`/`endpoint`/`credentials`/`clientConfig`, not both',
        )
      }
      this.client = options.client
      this.#ownsClient = false
    } else {
      const config: SQSClientConfig = { ...options.clientConfig }
      if (options.endpoint !== undefined) config.endpoint = options.endpoint
      if (options.region !== undefined) config.region = options.region
      // An endpoint (LocalStack, fauxqs) still needs a region to sign with.
      else if (options.endpoint !== undefined && config.region === undefined)
        config.region = process.env['AWS_REGION'] ?? 'us-east-1'
      if (options.credentials !== undefined) config.credentials = options.credentials
      this.client = new SQSClient(config)
      this.#ownsClient = true
      if (typeof config.region === 'string') this.#where.region = config.region
      if (typeof config.endpoint === 'string')
        this.#where.endpoint = config.endpoint.includes('@') ? redactUrl(config.endpoint) : config.endpoint
    }

    const currentEncoder = (): Encoder => this.encoder
    this.#host = {
      logger: this.#log,
      get encoder() {
        return currentEncoder()
      },
      visibilityTimeout: this.visibilityTimeout,
      waitTimeSeconds: this.waitTimeSeconds,
      delayHoldWindow: this.delayHoldWindow,
      maxDelaySeconds: this.maxDelaySeconds,
      classify: classifySqsError,
      receive: (queueName, max, signal) => this.#receive(queueName, max, signal),
      deleteMessage: (queueName, handle) => this.#deleter(queueName).add(handle),
      changeVisibility: (queueName, handle, seconds) => this.#visibilityBatcher(queueName).add({ handle, seconds }),
      sendRaw: (queueName, body, attributes, delaySeconds) =>
        this.#sendOne({ queueName, body: attributes ? { body, attributes } : { body }, delaySeconds }),
      deadLetter: (queueName, message, reason) => this.#deadLetter(queueName, message, reason),
      consumerClosed: (consumer) => {
        this.#consumers.delete(consumer)
        this.#closingConsumers.add(consumer)
        void consumer.finished().finally(() => this.#closingConsumers.delete(consumer))
      },
    }
  }

  /** The SQS queue name of a tq queue (`q`, `q.DQ` or `q.XQ`). */
  sqsQueueName(queueName: string): string {
    return sqsQueueName(queueName, this.queuePrefix)
  }

  /** Declare a queue; refuses names SQS cannot hold, or that collide with another declared queue after mapping. */
  override declareQueue(queueName: string): void {
    if (!this.queues.has(queueName)) {
      for (const name of [queueName, dqName(queueName), xqName(queueName)]) {
        const sqsName = this.sqsQueueName(name)
        const other = this.#sqsNames.get(sqsName)
        if (other !== undefined && other !== name) {
          throw new InvalidArgumentError(
            `Queues ${JSON.stringify(other)} and ${JSON.stringify(name)} both map to the SQS queue ${JSON.stringify(sqsName)}`,
          )
        }
      }
      for (const name of [queueName, dqName(queueName), xqName(queueName)])
        this.#sqsNames.set(this.sqsQueueName(name), name)
    }
    super.declareQueue(queueName)
  }

  protected override onDeclareQueue(queueName: string): void {
    // Create the SQS queues in the background; every use awaits the same promise.
    this.#ensure(queueName).catch((error: unknown) => {
      this.#log.warn(`Could not create the SQS queues of ${queueName} yet; retrying on first use`, {
        queue: queueName,
        ...errorMeta(error),
      })
    })
  }

  #ensure(canonical: string): Promise<Topology> {
    let topology = this.#topology.get(canonical)
    if (!topology) {
      const created = this.#createTopology(canonical)
      topology = created
      this.#topology.set(canonical, created)
      created.catch(() => {
        if (this.#topology.get(canonical) === created) this.#topology.delete(canonical)
      })
    }
    return topology
  }

  async #createTopology(canonical: string): Promise<Topology> {
    const retention = String(this.retentionPeriod)
    const base: Partial<Record<QueueAttributeName, string>> = { MessageRetentionPeriod: retention }
    if (this.maxMessageSize !== DEFAULT_MAX_MESSAGE_SIZE) base.MaximumMessageSize = String(this.maxMessageSize)
    let xq: string | undefined
    let redrive: string | undefined
    if (this.deadLetter) {
      xq = await this.#findOrCreate(this.sqsQueueName(xqName(canonical)), () => base)
      if (this.maxReceiveCount !== Infinity) {
        const arn = await this.#queueArn(xq)
        redrive = JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: String(this.maxReceiveCount) })
      }
    }
    const attributes = (): Partial<Record<QueueAttributeName, string>> =>
      redrive === undefined ? base : { ...base, RedrivePolicy: redrive }
    const [q, dq] = await Promise.all([
      this.#findOrCreate(this.sqsQueueName(canonical), attributes),
      this.#findOrCreate(this.sqsQueueName(dqName(canonical)), attributes),
    ])
    return { q, dq, xq }
  }

  /**
   * The URL of an SQS queue, created with `attributes` if missing. An existing queue is used as
   * it is (its attributes are not changed), so queues made by infrastructure code keep theirs.
   */
  async #findOrCreate(name: string, attributes: () => Partial<Record<QueueAttributeName, string>>): Promise<string> {
    try {
      const found = await this.client.send(new GetQueueUrlCommand({ QueueName: name }))
      if (found.QueueUrl) return found.QueueUrl
    } catch (error) {
      if (!isQueueMissing(error)) throw classifySqsError(error)
    }
    try {
      const created = await this.client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes() }))
      if (!created.QueueUrl) throw new BrokerError(`SQS returned no URL for queue ${name}`)
      this.#log.debug(`Created SQS queue ${name}`, { queue: name })
      return created.QueueUrl
    } catch (error) {
      const code = sqsErrorCode(error)
      if (code === 'QueueNameExists' || code === 'QueueAlreadyExists') {
        // Created meanwhile by another process with other attributes: use it.
        const found = await this.client.send(new GetQueueUrlCommand({ QueueName: name }))
        if (found.QueueUrl) return found.QueueUrl
      }
      throw classifySqsError(error)
    }
  }

  async #queueArn(url: string): Promise<string> {
    const out = await this.client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))
    const arn = out.Attributes?.QueueArn
    if (!arn) throw new BrokerError(`SQS returned no ARN for ${url}`)
    return arn
  }

  /** The URL of the SQS queue behind a tq queue name (`q`, `q.DQ` or `q.XQ`), creating the queues if needed. */
  async getQueueUrl(queueName: string): Promise<string> {
    const canonical = qName(queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    const topology = await this.#ensure(canonical)
    if (queueName.endsWith('.DQ')) return topology.dq
    if (queueName.endsWith('.XQ')) {
      if (!topology.xq)
        throw new ConfigurationError(`${canonical} has no dead-letter queue: the broker has deadLetter: false`)
      return topology.xq
    }
    return topology.q
  }

  /** Run an operation on a queue's URL; if SQS says the queue is gone, create it again and retry once. */
  async #withQueue<T>(queueName: string, fn: (url: string) => Promise<T>): Promise<T> {
    const url = await this.getQueueUrl(queueName)
    try {
      return await fn(url)
    } catch (error) {
      if (!isQueueMissing(error)) throw classifySqsError(error)
      this.#log.warn(`SQS queue of ${queueName} is gone; creating it again`, { queue: queueName })
      const canonical = qName(queueName)
      this.#topology.delete(canonical)
      try {
        return await fn(await this.getQueueUrl(queueName))
      } catch (retryError) {
        throw classifySqsError(retryError)
      }
    }
  }

  /** `DelaySeconds` for a message: whole seconds until its eta (so never late by a hop), capped. */
  #delaySeconds(message: Message): number {
    const eta = message.options.eta
    if (typeof eta !== 'number' || !Number.isFinite(eta)) return 0
    return Math.max(0, Math.min(Math.floor((eta - Date.now()) / 1000), this.maxDelaySeconds))
  }

  #checkOpen(): void {
    if (this.#closed) throw new ConnectionClosedError('The SqsBroker is closed', { retryable: false })
  }

  /** The message as it goes out, after the enqueue hooks; throws `MessageTooLargeError`. */
  async #prepare(message: Message, delay: number | undefined): Promise<{ message: Message; body: SqsBody }> {
    const canonical = qName(message.queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    if (delay !== undefined && delay !== null) {
      message = message.copy({ queueName: dqName(canonical), options: { eta: Date.now() + delay } })
    }
    await this.emitBefore('beforeEnqueue', message, delay)
    const body = toSqsBody(message.encode(this.encoder))
    const size = sqsMessageSize(body.body, body.attributes)
    if (size > this.maxMessageSize) {
      const error = new MessageTooLargeError(size, this.maxMessageSize, 'SQS')
      error.message =
        `Message ${message.messageId} to ${message.actorName} is ${size} bytes encoded; SQS takes at most ` +
        `${this.maxMessageSize} bytes (body and attributes). Store large payloads elsewhere (e.g. S3) and send a reference.`
      throw error
    }
    return { message, body }
  }

  override async enqueue(message: Message, options: EnqueueOptions = {}): Promise<Message> {
    this.#checkOpen()
    const prepared = await this.#prepare(message, options.delay)
    await this.#sendOne({
      queueName: prepared.message.queueName,
      body: prepared.body,
      delaySeconds: this.#delaySeconds(prepared.message),
    })
    await this.emitAfter('afterEnqueue', prepared.message, options.delay)
    return prepared.message
  }

  /** Send many messages with `SendMessageBatch` (10 a call, up to `sendConcurrency` calls at once). */
  override async enqueueMany(messages: readonly Message[], options: EnqueueOptions = {}): Promise<Message[]> {
    this.#checkOpen()
    const prepared: Array<{ message: Message; body: SqsBody }> = []
    for (const m of messages) prepared.push(await this.#prepare(m, options.delay))
    const byQueue = new Map<string, SendEntry[]>()
    for (const p of prepared) {
      const list = byQueue.get(p.message.queueName) ?? []
      list.push({ queueName: p.message.queueName, body: p.body, delaySeconds: this.#delaySeconds(p.message) })
      byQueue.set(p.message.queueName, list)
    }
    const batches: SendEntry[][] = []
    for (const entries of byQueue.values()) {
      let batch: SendEntry[] = []
      let bytes = 0
      for (const entry of entries) {
        const size = sqsMessageSize(entry.body.body, entry.body.attributes)
        if (batch.length === 10 || (batch.length > 0 && bytes + size > this.maxMessageSize)) {
          batches.push(batch)
          batch = []
          bytes = 0
        }
        batch.push(entry)
        bytes += size
      }
      if (batch.length > 0) batches.push(batch)
    }
    await Promise.all(batches.map((batch) => this.#sendLimiter.run(() => this.#sendBatch(batch))))
    for (const p of prepared) await this.emitAfter('afterEnqueue', p.message, options.delay)
    return prepared.map((p) => p.message)
  }

  async #sendOne(entry: SendEntry): Promise<void> {
    await this.#withQueue(entry.queueName, (url) =>
      this.client.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: entry.body.body,
          ...(entry.body.attributes ? { MessageAttributes: entry.body.attributes } : {}),
          ...(entry.delaySeconds > 0 ? { DelaySeconds: entry.delaySeconds } : {}),
        }),
      ),
    )
  }

  /** One `SendMessageBatch` call (entries of one queue); failed entries are retried, then reported. */
  async #sendBatch(entries: SendEntry[]): Promise<void> {
    const queueName = (entries[0] as SendEntry).queueName
    let pending = entries.map((entry, i) => ({ id: String(i), entry }))
    for (let attempt = 1; ; attempt++) {
      const failed: BatchResultErrorEntry[] = await this.#withQueue(queueName, async (url) => {
        const out = await this.client.send(
          new SendMessageBatchCommand({
            QueueUrl: url,
            Entries: pending.map(({ id, entry }): SendMessageBatchRequestEntry => ({
              Id: id,
              MessageBody: entry.body.body,
              ...(entry.body.attributes ? { MessageAttributes: entry.body.attributes } : {}),
              ...(entry.delaySeconds > 0 ? { DelaySeconds: entry.delaySeconds } : {}),
            })),
          }),
        )
        return out.Failed ?? []
      })
      if (failed.length === 0) return
      const fatal = failed.find((f) => f.SenderFault)
      if (fatal || attempt >= 4) {
        const f = fatal ?? failed[0]
        throw classifySqsError(
          Object.assign(
            new Error(`SendMessageBatch refused ${failed.length} message(s): ${f?.Message ?? f?.Code ?? ''}`),
            {
              name: f?.Code ?? 'Error',
              $fault: f?.SenderFault ? 'client' : 'server',
            },
          ),
        )
      }
      const ids = new Set(failed.map((f) => f.Id))
      pending = pending.filter((p) => ids.has(p.id))
      await sleep(100 * 2 ** (attempt - 1))
    }
  }

  async #receive(queueName: string, max: number, signal: AbortSignal): Promise<SqsMessage[]> {
    const out = await this.#withQueue(queueName, (url) =>
      this.client.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: this.waitTimeSeconds,
          VisibilityTimeout: this.visibilityTimeout,
          MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: signal },
      ),
    )
    return out.Messages ?? []
  }

  #deleter(queueName: string): Batcher<string> {
    let batcher = this.#deleters.get(queueName)
    if (!batcher) {
      batcher = new Batcher<string>({
        what: 'delete',
        logger: this.#log,
        delay: this.#ackBatchDelay,
        classify: classifySqsError,
        run: async (handles) => {
          try {
            const url = await this.getQueueUrl(queueName)
            const out = await this.client.send(
              new DeleteMessageBatchCommand({
                QueueUrl: url,
                Entries: handles.map((handle, i) => ({ Id: String(i), ReceiptHandle: handle })),
              }),
            )
            return batchResults(handles.length, out.Failed)
          } catch (error) {
            if (!isQueueMissing(error)) throw error
            // The queue was deleted, and its messages with it: nothing is left to delete.
            this.#log.warn(`The SQS queue of ${queueName} is gone; its messages are gone with it`, { queue: queueName })
            return handles.map(() => ({ ok: true }) as const)
          }
        },
      })
      this.#deleters.set(queueName, batcher)
    }
    return batcher
  }

  #visibilityBatcher(queueName: string): Batcher<{ handle: string; seconds: number }> {
    let batcher = this.#visibility.get(queueName)
    if (!batcher) {
      batcher = new Batcher<{ handle: string; seconds: number }>({
        what: 'visibility change',
        logger: this.#log,
        delay: this.#ackBatchDelay,
        classify: classifySqsError,
        run: async (items) => {
          try {
            const url = await this.getQueueUrl(queueName)
            const out = await this.client.send(
              new ChangeMessageVisibilityBatchCommand({
                QueueUrl: url,
                Entries: items.map((item, i) => ({
                  Id: String(i),
                  ReceiptHandle: item.handle,
                  VisibilityTimeout: item.seconds,
                })),
              }),
            )
            return batchResults(items.length, out.Failed)
          } catch (error) {
            if (!isQueueMissing(error)) throw error
            // Not retryable: the message went with its queue.
            const gone = new BrokerError(`The SQS queue of ${queueName} is gone`, ErrorCode.QUEUE_NOT_FOUND, {
              cause: error,
            })
            return items.map(() => ({ ok: false, error: gone }) as const)
          }
        },
      })
      this.#visibility.set(queueName, batcher)
    }
    return batcher
  }

  /**
   * Dead-letter a received message: send its body and attributes unchanged to `q.XQ`, then
   * delete it. (The redrive policy would only move it after `maxReceiveCount` receives; a nack
   * moves it now.) Without dead-letter queues, the message is deleted.
   */
  async #deadLetter(queueName: string, message: SqsMessage, reason: string): Promise<void> {
    const handle = message.ReceiptHandle ?? ''
    if (this.deadLetter) {
      const attributes = sendableAttributes(message.MessageAttributes)
      await this.#sendOne({
        queueName: xqName(queueName),
        body: attributes ? { body: message.Body ?? '', attributes } : { body: message.Body ?? '' },
        delaySeconds: 0,
      })
      this.#log.debug('Message dead-lettered', { queue: queueName, sqsMessageId: message.MessageId, reason })
    } else {
      this.#log.warn('Message dropped (the broker has deadLetter: false)', {
        queue: queueName,
        sqsMessageId: message.MessageId,
        reason,
      })
    }
    await this.#deleter(queueName).add(handle)
  }

  override consume(queueName: string, options: ConsumeOptions = {}): SqsConsumer {
    this.#checkOpen()
    const canonical = qName(queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    if (queueName.endsWith('.XQ')) throw new InvalidArgumentError(`Cannot consume the dead-letter queue ${queueName}`)
    const consumer = new SqsConsumer(
      this.#host,
      queueName,
      options.prefetch ?? this.defaultPrefetch,
      options.timeout ?? 1000,
    )
    this.#consumers.add(consumer)
    return consumer
  }

  /** SQS's approximate counts for one queue (`q`, `q.DQ` or `q.XQ`). */
  async messageCounts(queueName: string): Promise<SqsQueueCounts> {
    const out = await this.#withQueue(queueName, (url) =>
      this.client.send(
        new GetQueueAttributesCommand({
          QueueUrl: url,
          AttributeNames: [
            'ApproximateNumberOfMessages',
            'ApproximateNumberOfMessagesNotVisible',
            'ApproximateNumberOfMessagesDelayed',
          ],
        }),
      ),
    )
    const n = (key: string): number => Number(out.Attributes?.[key as QueueAttributeName] ?? 0) || 0
    return {
      visible: n('ApproximateNumberOfMessages'),
      notVisible: n('ApproximateNumberOfMessagesNotVisible'),
      delayed: n('ApproximateNumberOfMessagesDelayed'),
    }
  }

  /**
   * Wait until `q` and `q.DQ` hold no message (ready, in flight or delayed) for `idleChecks`
   * consecutive checks. SQS's counts are approximate (on AWS they can lag by seconds): a
   * test helper, not a synchronisation primitive.
   */
  override async join(queueName: string, options: SqsJoinOptions = {}): Promise<void> {
    const canonical = qName(queueName)
    if (!this.queues.has(canonical)) throw new QueueNotFoundError(canonical)
    const idleChecks = Math.max(1, options.idleChecks ?? 3)
    const interval = Math.max(1, options.interval ?? 100)
    const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout
    let idle = 0
    for (;;) {
      const counts = await Promise.all([this.messageCounts(canonical), this.messageCounts(dqName(canonical))])
      const total = counts.reduce((sum, c) => sum + c.visible + c.notVisible + c.delayed, 0)
      idle = total === 0 ? idle + 1 : 0
      if (idle >= idleChecks) return
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new QueueJoinTimeoutError(canonical, options.timeout ?? 0)
      await sleep(Math.min(interval, remaining))
    }
  }

  /**
   * Drop the messages of a queue and its delay queue (`PurgeQueue`), and the messages this
   * broker's consumers of them buffered. AWS allows one purge per queue every 60 seconds; when
   * one is in progress the broker receives and deletes what is visible instead. On AWS a purge
   * can take up to a minute to finish.
   */
  override async flush(queueName: string): Promise<void> {
    const canonical = qName(queueName)
    await Promise.all([this.#purge(canonical), this.#purge(dqName(canonical))])
    for (const consumer of this.#consumers) {
      if (qName(consumer.queueName) === canonical) consumer.dropBuffered()
    }
  }

  async #purge(queueName: string): Promise<void> {
    try {
      await this.#withQueue(queueName, (url) => this.client.send(new PurgeQueueCommand({ QueueUrl: url })))
    } catch (error) {
      if (sqsErrorCode((error as { cause?: unknown }).cause) !== 'PurgeQueueInProgress') throw error
      this.#log.debug(`A purge of ${queueName} is in progress; deleting its visible messages instead`)
      await this.#drain(queueName)
    }
  }

  /** Receive and delete every visible message of a queue (in-flight and delayed ones stay). */
  async #drain(queueName: string): Promise<void> {
    const url = await this.getQueueUrl(queueName)
    for (;;) {
      const out = await this.client.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          VisibilityTimeout: 30,
        }),
      )
      const messages = out.Messages ?? []
      if (messages.length === 0) return
      await this.client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: url,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
        }),
      )
    }
  }

  /** Flush every declared queue, dead-letter queues included. */
  override async flushAll(): Promise<void> {
    await Promise.all(
      [...this.queues].map(async (queue) => {
        await this.flush(queue)
        if (this.deadLetter) await this.#purge(xqName(queue))
      }),
    )
  }

  /**
   * Delete the SQS queues of a tq queue (`q`, `q_DQ`, `q_XQ`). The next use creates them again
   * (on AWS, not before 60 seconds have passed).
   */
  async deleteQueue(queueName: string): Promise<void> {
    const canonical = qName(queueName)
    const topology = this.#topology.get(canonical)
    this.#topology.delete(canonical)
    if (!topology) return
    const urls = await topology.catch(() => undefined)
    if (!urls) return
    await Promise.all(
      [urls.q, urls.dq, urls.xq].map(async (url) => {
        if (url === undefined) return
        try {
          await this.client.send(new DeleteQueueCommand({ QueueUrl: url }))
        } catch (error) {
          if (!isQueueMissing(error)) throw classifySqsError(error)
        }
      }),
    )
  }

  /** Check that SQS answers with these credentials (`ListQueues`) and create the declared queues. */
  override async connect(): Promise<void> {
    this.#checkOpen()
    try {
      await this.client.send(new ListQueuesCommand({ QueueNamePrefix: this.queuePrefix || 'tq', MaxResults: 1 }))
    } catch (error) {
      const classified = classifySqsError(error)
      if (classified.code === ErrorCode.CONFIGURATION) throw classified
      throw new BrokerConnectionError(`Could not reach SQS: ${classified.message}`, ErrorCode.CONNECTION_FAILED, {
        cause: error,
      })
    }
    await Promise.all([...this.queues].map((q) => this.#ensure(q)))
  }

  /**
   * Stop consumers (their buffered messages go back to the queues), wait for long polls in
   * flight (up to `waitTimeSeconds`) and pending acks, then destroy the client if the broker
   * built it.
   */
  /** The region and endpoint (when given to the broker, not in a client of the user's) and the queue prefix. */
  override describe(): Record<string, string | number> {
    return { ...this.#where, ...(this.queuePrefix ? { queuePrefix: this.queuePrefix } : {}) }
  }

  override async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const consumers = [...this.#consumers, ...this.#closingConsumers]
    await Promise.all([...this.#consumers].map((c) => c.close()))
    const polls = Promise.all(consumers.map((c) => c.finished()))
    let timer: NodeJS.Timeout | undefined
    const waited = await Promise.race([
      polls.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, this.closeTimeout, false))),
    ])
    clearTimeout(timer)
    if (!waited) {
      for (const c of consumers) c.abortPoll()
      await polls
    }
    for (const c of consumers) c.stopExtending()
    await Promise.all([...this.#deleters.values(), ...this.#visibility.values()].map((b) => b.drain()))
    if (this.#ownsClient) this.client.destroy()
  }

  /** Whether an error is one the worker retries an ack or nack after (connection, throttling). */
  override isRetryableError(error: unknown): boolean {
    return classifySqsError(error).retryable
  }
}

function batchResults(count: number, failed: BatchResultErrorEntry[] | undefined): EntryResult[] {
  const results: EntryResult[] = Array.from({ length: count }, () => ({ ok: true }) as const)
  for (const f of failed ?? []) {
    const index = Number(f.Id)
    if (!Number.isInteger(index) || index < 0 || index >= count) continue
    const error: TqError = classifySqsError(
      Object.assign(new Error(f.Message ?? f.Code ?? 'batch entry failed'), {
        name: f.Code ?? 'Error',
        $fault: f.SenderFault ? 'client' : 'server',
      }),
    )
    results[index] = { ok: false, error }
  }
  return results
}

/** `sqs://` URLs build an SqsBroker (see `parseSqsUrl` for the forms). */
export const brokerPlugin: BrokerPlugin = {
  name: '@tq/sqs SqsBroker',
  schemes: ['sqs'],
  create: (url?: string) => new SqsBroker(url === undefined ? {} : parseSqsUrl(url)),
}
