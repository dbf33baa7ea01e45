import { randomUUID } from 'node:crypto'
import type { RateLimiterBackend } from '@tq/core'
import type { Redis } from 'ioredis'
import { classifyRedisError } from './classify-error.ts'
import { defineScripts, runScript, type ScriptArg, type ScriptName } from './scripts.ts'
import { BlockingPool } from './shared/blocking-pool.ts'
import { RedisClientHandle, type AdapterRedisOptions } from './shared/client.ts'

export interface RedisRateLimiterBackendOptions {
  /** `redis://…` URL (default `redis://127.0.0.1:6379`). Ignored with `client`. */
  url?: string
  /** Extra ioredis options for the connections this backend opens. Ignored with `client`. */
  redisOptions?: AdapterRedisOptions
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
  readonly #handle: RedisClientHandle
  readonly #id = randomUUID()
  readonly #waiters: BlockingPool
  #closed = false

  constructor(options: RedisRateLimiterBackendOptions = {}) {
    this.#handle = new RedisClientHandle(options, {
      owner: 'RedisRateLimiterBackend',
      keyPrefixAdvice: ' (keys are shared with Dramatiq)',
      defaults: { lazyConnect: true },
      fixed: { connectionName: `tq:limiter:${this.#id}` },
    })
    this.client = this.#handle.client
    defineScripts(this.client)
    this.#waiters = new BlockingPool(
      () => this.client.duplicate({ lazyConnect: true, connectionName: `tq:limiter:${this.#id}:wait` }),
      { maxIdle: IDLE_WAITERS },
    )
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
    // The pool has no cap: there is always a connection.
    const connection = this.#waiters.acquire() as Redis
    try {
      const event = await connection.brpoplpush(key, key, seconds)
      return event === 'x'
    } catch (error) {
      throw classifyRedisError(error)
    } finally {
      if (this.#closed) this.#waiters.discard(connection)
      else this.#waiters.release(connection)
    }
  }

  async waitNotify(key: string, ttl: number): Promise<void> {
    await this.#run('limiterNotify', [key], [Math.ceil(ttl)])
  }

  /** Close the connections this backend opened (a given `client` only with `closeClient`); pending waits fail. */
  async close(): Promise<void> {
    this.#closed = true
    this.#waiters.close()
    await this.#handle.release()
  }
}
