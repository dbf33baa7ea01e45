import { ConfigurationError, type BrokerOptions, type JoinOptions } from '@tq/core'
import type { Redis } from 'ioredis'
import type { AdapterRedisOptions } from './shared/client.ts'

export interface RedisBrokerOptions extends BrokerOptions {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://…` (default `redis://127.0.0.1:6379`). Ignored with `client`. */
  url?: string
  /** Extra ioredis options for the connections this broker opens. Ignored with `client`. */
  redisOptions?: AdapterRedisOptions
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

const WEEK_MS = 7 * 24 * 60 * 60 * 1000

/** The options with their defaults, checked (the broker's public fields of the same names). */
export type RedisBrokerSettings = Readonly<
  Required<
    Pick<
      RedisBrokerOptions,
      | 'namespace'
      | 'heartbeatTimeout'
      | 'heartbeatInterval'
      | 'deadMessageTtl'
      | 'maintenanceChance'
      | 'maintenanceInterval'
      | 'pollInterval'
      | 'wakeups'
      | 'connectTimeout'
    >
  >
>

/** Apply the defaults; `ConfigurationError` for values that cannot work. */
export function brokerSettings(options: RedisBrokerOptions): RedisBrokerSettings {
  const heartbeatTimeout = options.heartbeatTimeout ?? 60_000
  const settings: RedisBrokerSettings = {
    namespace: options.namespace ?? 'dramatiq',
    heartbeatTimeout,
    heartbeatInterval: options.heartbeatInterval ?? Math.max(10, Math.floor(heartbeatTimeout / 4)),
    deadMessageTtl: options.deadMessageTtl ?? WEEK_MS,
    maintenanceChance: options.maintenanceChance ?? 1000,
    maintenanceInterval: options.maintenanceInterval ?? heartbeatTimeout,
    pollInterval: options.pollInterval ?? 1000,
    wakeups: options.wakeups ?? true,
    connectTimeout: options.connectTimeout ?? 5000,
  }
  if (!(settings.connectTimeout > 0)) {
    throw new ConfigurationError(`connectTimeout must be a positive number of ms, got ${settings.connectTimeout}`)
  }
  if (settings.heartbeatInterval >= settings.heartbeatTimeout) {
    throw new ConfigurationError(
      `heartbeatInterval (${settings.heartbeatInterval} ms) must be shorter than heartbeatTimeout (${settings.heartbeatTimeout} ms)`,
    )
  }
  return settings
}
