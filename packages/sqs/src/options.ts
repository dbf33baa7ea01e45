import { SQSClient, type SQSClientConfig } from '@aws-sdk/client-sqs'
import { InvalidArgumentError, redactUrl, type BrokerOptions } from '@tq/core'
import { validateQueuePrefix } from './queue-names.ts'

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

/** SQS's default (and the broker's) largest message: 256 KiB. */
export const DEFAULT_MAX_MESSAGE_SIZE = 262_144
/** SQS's longest `DelaySeconds`: 15 minutes. */
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

/** The options of an SqsBroker, checked and with their defaults. */
export type SqsSettings = Readonly<ReturnType<typeof resolveSettings>>

/** Check the options and fill in the defaults; throws `InvalidArgumentError` for a value out of range. */
export function resolveSettings(options: SqsBrokerOptions) {
  const queuePrefix = options.queuePrefix ?? ''
  validateQueuePrefix(queuePrefix)
  const visibilityTimeout = integerOption('visibilityTimeout', options.visibilityTimeout, 30, 1, 43_200)
  const waitTimeSeconds = integerOption('waitTimeSeconds', options.waitTimeSeconds, 20, 0, 20)
  return {
    queuePrefix,
    visibilityTimeout,
    waitTimeSeconds,
    deadLetter: options.deadLetter ?? true,
    maxReceiveCount:
      options.maxReceiveCount === Infinity
        ? Infinity
        : integerOption('maxReceiveCount', options.maxReceiveCount, 10, 1, 1000),
    retentionPeriod: integerOption('retentionPeriod', options.retentionPeriod, 1_209_600, 60, 1_209_600),
    maxMessageSize: integerOption('maxMessageSize', options.maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE, 1024, 1_048_576),
    defaultPrefetch: integerOption('prefetch', options.prefetch, 1, 1, 1_000_000),
    delayHoldWindow: Math.max(0, options.delayHoldWindow ?? 30_000),
    maxDelaySeconds: integerOption('maxDelaySeconds', options.maxDelaySeconds, SQS_MAX_DELAY_SECONDS, 1, 900),
    ackBatchDelay: Math.max(0, options.ackBatchDelay ?? 5),
    closeTimeout: Math.max(0, options.closeTimeout ?? waitTimeSeconds * 1000 + 5000),
    sendConcurrency: integerOption('sendConcurrency', options.sendConcurrency, 8, 1, 1000),
  }
}

/** The client a broker talks through, whether it destroys it on close, and where it points (for `describe()`). */
export interface ClientChoice {
  readonly client: SQSClient
  readonly owned: boolean
  readonly where: Readonly<Record<string, string>>
}

/** The user's client, or one built from `region`, `endpoint`, `credentials` and `clientConfig` (not both). */
export function chooseClient(options: SqsBrokerOptions): ClientChoice {
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
    return { client: options.client, owned: false, where: {} }
  }
  const config: SQSClientConfig = { ...options.clientConfig }
  if (options.endpoint !== undefined) config.endpoint = options.endpoint
  if (options.region !== undefined) config.region = options.region
  // An endpoint (LocalStack, fauxqs) still needs a region to sign with.
  else if (options.endpoint !== undefined && config.region === undefined)
    config.region = process.env['AWS_REGION'] ?? 'us-east-1'
  if (options.credentials !== undefined) config.credentials = options.credentials
  const where: Record<string, string> = {}
  if (typeof config.region === 'string') where.region = config.region
  if (typeof config.endpoint === 'string')
    where.endpoint = config.endpoint.includes('@') ? redactUrl(config.endpoint) : config.endpoint
  return { client: new SQSClient(config), owned: true, where }
}
