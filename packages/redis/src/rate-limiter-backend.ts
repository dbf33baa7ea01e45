import { randomUUID } from 'node:crypto'
import { ConfigurationError, type RateLimiterBackend } from '@tq/core'
import { Redis, type RedisOptions } from 'ioredis'
import { classifyRedisError } from './classify-error.ts'
import { defineScripts, runScript, type ScriptArg, type ScriptName } from './scripts.ts'

export interface RedisRateLimiterBackendOptions {
  /** `redis://…` URL (default `redis://127.0.0.1:6379`). Ignored with `client`. */
  url?: string
  /** Extra ioredis options for the connections this backend opens. Ignored with `client`. */
  redisOptions?: Omit<RedisOptions, 'replyMapping'>
  /** An existing ioredis client; blocking waits use duplicates of it. Not closed unless `closeClient`. */
  client?: Redis
  /** Close `client` on `close()` (default false for a given client). */
  closeClient?: boolean
}

/** Idle connections kept for blocking `wait` calls. */
const IDLE_WAITERS = 4

/**
 * Rate limiters and barriers on Redis, sharing keys with Dramatiq's `RedisBackend`: no prefix,
 * counters are decimal strings with a PX ttl (`<key>` for concurrency, `<key>@<ms>` buckets,
 * `<key>@<unix s>` windows), and a barrier's events are a list of `"x"` at `<key>@events`.
 * Every read-modify-write is one Lua script, so it is atomic without WATCH retries.
 *
 * `wait` blocks on its own connection (BRPOPLPUSH), so waiting never holds up other commands.
 */
export class RedisRateLimiterBackend implements RateLimiterBackend {
  readonly client: Redis
  readonly #ownsClient: boolean
  readonly #id = randomUUID()
  readonly #idle: Redis[] = []
  readonly #busy = new Set<Redis>()
  #closed = false

  constructor(options: RedisRateLimiterBackendOptions = {}) {
    if (options.client) {
      if (options.client.options.keyPrefix) {
        throw new ConfigurationError(
          'RedisRateLimiterBackend cannot use a client with a keyPrefix (keys are shared with Dramatiq)',
        )
      }
      this.client = options.client
      this.#ownsClient = options.closeClient ?? false
    } else {
      this.client = new Redis(options.url ?? 'redis://127.0.0.1:6379', {
        lazyConnect: true,
        ...options.redisOptions,
        connectionName: `tq:limiter:${this.#id}`,
      })
      this.#ownsClient = true
    }
    defineScripts(this.client)
  }

  async #run(name: ScriptName, keys: ScriptArg[], args: ScriptArg[]): Promise<unknown> {
    try {
      return await runScript(this.client, name, keys, args)
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  async add(key: string, value: number, ttl: number): Promise<boolean> {
    try {
      return (await this.client.set(key, String(value), 'PX', Math.ceil(ttl), 'NX')) === 'OK'
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  async incr(key: string, amount: number, maximum: number, ttl: number): Promise<boolean> {
    return Number(await this.#run('limiterIncr', [key], [amount, maximum, Math.ceil(ttl)])) === 1
  }

  async decr(key: string, amount: number, minimum: number, ttl: number): Promise<boolean> {
    return Number(await this.#run('limiterDecr', [key], [amount, minimum, Math.ceil(ttl)])) === 1
  }

  async incrAndSum(key: string, keys: () => string[], amount: number, maximum: number, ttl: number): Promise<boolean> {
    return Number(await this.#run('limiterIncrAndSum', [key, ...keys()], [amount, maximum, Math.ceil(ttl)])) === 1
  }

  /**
   * `BRPOPLPUSH key key <seconds>` (as Dramatiq), so the `"x"` stays for later waiters. Waits
   * forever without `timeout`; Redis takes fractions of a second, so any `timeout` works.
   */
  async wait(key: string, timeout?: number): Promise<boolean> {
    const seconds = timeout === undefined ? 0 : Math.max(0.001, timeout / 1000)
    const connection = this.#waiter()
    try {
      const event = await connection.brpoplpush(key, key, seconds)
      return event === 'x'
    } catch (error) {
      throw classifyRedisError(error)
    } finally {
      this.#release(connection)
    }
  }

  async waitNotify(key: string, ttl: number): Promise<void> {
    await this.#run('limiterNotify', [key], [Math.ceil(ttl)])
  }

  #waiter(): Redis {
    const connection =
      this.#idle.pop() ?? this.client.duplicate({ lazyConnect: true, connectionName: `tq:limiter:${this.#id}:wait` })
    this.#busy.add(connection)
    return connection
  }

  #release(connection: Redis): void {
    this.#busy.delete(connection)
    if (this.#closed || this.#idle.length >= IDLE_WAITERS) connection.disconnect()
    else this.#idle.push(connection)
  }

  /** Close the connections this backend opened (a given `client` only with `closeClient`); pending waits fail. */
  async close(): Promise<void> {
    this.#closed = true
    for (const connection of [...this.#idle.splice(0), ...this.#busy]) connection.disconnect()
    if (this.#ownsClient && this.client.status !== 'end') {
      try {
        await this.client.quit()
      } catch {
        this.client.disconnect()
      }
    }
  }
}
