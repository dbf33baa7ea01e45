import { InvalidArgumentError, type BrokerOptions, type JoinOptions } from '@tq/core'
import type { ChannelModel, SocketOptions } from 'amqplib'

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

/**
 * Messages in a queue's three RabbitMQ queues (ready ones only: AMQP does not report
 * unacknowledged), as the deprecated `getQueueMessageCounts` returns them; see `QueueCounts`.
 */
export interface QueueMessageCounts {
  /** Ready in `q`. */
  ready: number
  /** Ready in `q.DQ`. */
  delayed: number
  /** In `q.XQ`. */
  dead: number
}

const DEFAULT_URL = 'amqp://127.0.0.1:5672'

/** The server URLs of `url` or `urls`, checked, each with the `heartbeat` option applied. */
export function brokerUrls(options: RabbitmqBrokerOptions): string[] {
  return parseUrls(options).map((u) => withHeartbeat(u, options.heartbeat))
}

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

/** The AMQP `priority` property of a message's `brokerPriority` option (0–255), if it has one. */
export function validatePriority(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 255) {
    throw new InvalidArgumentError(`brokerPriority must be an integer from 0 to 255, got ${JSON.stringify(value)}`)
  }
  return value
}
