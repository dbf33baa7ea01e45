import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type QueueAttributeName,
  type SQSClient,
} from '@aws-sdk/client-sqs'
import {
  BrokerError,
  ConfigurationError,
  InvalidArgumentError,
  QueueNotFoundError,
  dqName,
  qName,
  xqName,
  type Logger,
} from '@tq/core'
import { classifySqsError, isQueueMissing, sqsErrorCode } from './classify-error.ts'
import { DEFAULT_MAX_MESSAGE_SIZE, type SqsSettings } from './options.ts'
import { sqsQueueName } from './queue-names.ts'

/** The URLs of the SQS queues behind one tq queue. */
interface QueueUrls {
  q: string
  dq: string
  /** Absent with `deadLetter: false`. */
  xq: string | undefined
}

export interface TopologyOptions {
  readonly client: SQSClient
  readonly logger: Logger
  readonly settings: Pick<
    SqsSettings,
    'queuePrefix' | 'deadLetter' | 'maxReceiveCount' | 'retentionPeriod' | 'maxMessageSize'
  >
  /** Whether a canonical queue was declared on the broker. */
  isDeclared(canonical: string): boolean
}

/**
 * The SQS queues behind the tq queues: their names (and the refusal of two tq queues that map to
 * one SQS name), their creation on first use with the redrive policy to `q_XQ`, their URLs, and
 * their re-creation when SQS says one is gone.
 */
export class Topology {
  readonly #client: SQSClient
  readonly #logger: Logger
  readonly #settings: TopologyOptions['settings']
  readonly #isDeclared: (canonical: string) => boolean
  readonly #urls = new Map<string, Promise<QueueUrls>>()
  /** SQS queue name → the tq queue name that claimed it. */
  readonly #claimed = new Map<string, string>()

  constructor(options: TopologyOptions) {
    this.#client = options.client
    this.#logger = options.logger
    this.#settings = options.settings
    this.#isDeclared = (canonical) => options.isDeclared(canonical)
  }

  /** The SQS queue name of a tq queue (`q`, `q.DQ` or `q.XQ`). */
  sqsName(queueName: string): string {
    return sqsQueueName(queueName, this.#settings.queuePrefix)
  }

  /** Reserve the SQS names of a canonical queue; throws if another tq queue maps to one of them. */
  claim(canonical: string): void {
    const names = [canonical, dqName(canonical), xqName(canonical)]
    for (const name of names) {
      const sqsName = this.sqsName(name)
      const other = this.#claimed.get(sqsName)
      if (other !== undefined && other !== name) {
        throw new InvalidArgumentError(
          `Queues ${JSON.stringify(other)} and ${JSON.stringify(name)} both map to the SQS queue ${JSON.stringify(sqsName)}`,
        )
      }
    }
    for (const name of names) this.#claimed.set(this.sqsName(name), name)
  }

  /** The queues of a canonical queue, created if missing; every caller awaits the same promise. */
  ensure(canonical: string): Promise<QueueUrls> {
    let urls = this.#urls.get(canonical)
    if (!urls) {
      const created = this.#create(canonical)
      urls = created
      this.#urls.set(canonical, created)
      created.catch(() => {
        if (this.#urls.get(canonical) === created) this.#urls.delete(canonical)
      })
    }
    return urls
  }

  /** The URL of the SQS queue behind a tq queue name (`q`, `q.DQ` or `q.XQ`), creating the queues if needed. */
  async url(queueName: string): Promise<string> {
    const canonical = qName(queueName)
    if (!this.#isDeclared(canonical)) throw new QueueNotFoundError(canonical)
    const urls = await this.ensure(canonical)
    if (queueName.endsWith('.DQ')) return urls.dq
    if (queueName.endsWith('.XQ')) {
      if (!urls.xq)
        throw new ConfigurationError(`${canonical} has no dead-letter queue: the broker has deadLetter: false`)
      return urls.xq
    }
    return urls.q
  }

  /** Run an operation on a queue's URL; if SQS says the queue is gone, create it again and retry once. */
  async withQueue<T>(queueName: string, fn: (url: string) => Promise<T>): Promise<T> {
    const url = await this.url(queueName)
    try {
      return await fn(url)
    } catch (error) {
      if (!isQueueMissing(error)) throw classifySqsError(error)
      this.#logger.warn(`SQS queue of ${queueName} is gone; creating it again`, { queue: queueName })
      this.#urls.delete(qName(queueName))
      try {
        return await fn(await this.url(queueName))
      } catch (retryError) {
        throw classifySqsError(retryError)
      }
    }
  }

  /** Delete the SQS queues of a tq queue (those this broker created or found); the next use creates them again. */
  async delete(queueName: string): Promise<void> {
    const canonical = qName(queueName)
    const known = this.#urls.get(canonical)
    this.#urls.delete(canonical)
    if (!known) return
    const urls = await known.catch(() => undefined)
    if (!urls) return
    await Promise.all(
      [urls.q, urls.dq, urls.xq].map(async (url) => {
        if (url === undefined) return
        try {
          await this.#client.send(new DeleteQueueCommand({ QueueUrl: url }))
        } catch (error) {
          if (!isQueueMissing(error)) throw classifySqsError(error)
        }
      }),
    )
  }

  async #create(canonical: string): Promise<QueueUrls> {
    const settings = this.#settings
    const base: Partial<Record<QueueAttributeName, string>> = {
      MessageRetentionPeriod: String(settings.retentionPeriod),
    }
    if (settings.maxMessageSize !== DEFAULT_MAX_MESSAGE_SIZE) base.MaximumMessageSize = String(settings.maxMessageSize)
    let xq: string | undefined
    let redrive: string | undefined
    if (settings.deadLetter) {
      xq = await this.#findOrCreate(this.sqsName(xqName(canonical)), () => base)
      if (settings.maxReceiveCount !== Infinity) {
        const arn = await this.#queueArn(xq)
        redrive = JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: String(settings.maxReceiveCount) })
      }
    }
    const attributes = (): Partial<Record<QueueAttributeName, string>> =>
      redrive === undefined ? base : { ...base, RedrivePolicy: redrive }
    const [q, dq] = await Promise.all([
      this.#findOrCreate(this.sqsName(canonical), attributes),
      this.#findOrCreate(this.sqsName(dqName(canonical)), attributes),
    ])
    return { q, dq, xq }
  }

  /**
   * The URL of an SQS queue, created with `attributes` if missing. An existing queue is used as
   * it is (its attributes are not changed), so queues made by infrastructure code keep theirs.
   */
  async #findOrCreate(name: string, attributes: () => Partial<Record<QueueAttributeName, string>>): Promise<string> {
    try {
      const found = await this.#client.send(new GetQueueUrlCommand({ QueueName: name }))
      if (found.QueueUrl) return found.QueueUrl
    } catch (error) {
      if (!isQueueMissing(error)) throw classifySqsError(error)
    }
    try {
      const created = await this.#client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes() }))
      if (!created.QueueUrl) throw new BrokerError(`SQS returned no URL for queue ${name}`)
      this.#logger.debug(`Created SQS queue ${name}`, { queue: name })
      return created.QueueUrl
    } catch (error) {
      const code = sqsErrorCode(error)
      if (code === 'QueueNameExists' || code === 'QueueAlreadyExists') {
        // Created meanwhile by another process with other attributes: use it.
        const found = await this.#client.send(new GetQueueUrlCommand({ QueueName: name }))
        if (found.QueueUrl) return found.QueueUrl
      }
      throw classifySqsError(error)
    }
  }

  async #queueArn(url: string): Promise<string> {
    const out = await this.#client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))
    const arn = out.Attributes?.QueueArn
    if (!arn) throw new BrokerError(`SQS returned no ARN for ${url}`)
    return arn
  }
}
