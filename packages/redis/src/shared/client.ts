import { ConfigurationError, errorMessage, redactUrl } from '@tq/core'
import { Redis, type RedisOptions } from 'ioredis'
import { isReplyError } from './classify-error.ts'

/** ioredis options an adapter accepts (`replyMapping` would change the replies it reads). */
export type AdapterRedisOptions = Omit<RedisOptions, 'replyMapping'>

/** How an adapter gets its connection: from a URL (it opens and closes the client) or a given client. */
export interface RedisClientSource {
  /** `redis://…` or `rediss://…`. Ignored with `client`. */
  url?: string | undefined
  /** Extra ioredis options for a client opened from `url`. Ignored with `client`. */
  redisOptions?: AdapterRedisOptions | undefined
  /** An existing ioredis client: borrowed, not closed unless `closeClient`. */
  client?: Redis | undefined
  /** Close a given `client` too when the adapter closes (default false). */
  closeClient?: boolean | undefined
}

export interface RedisClientSpec {
  /** The adapter's class name, for the error refusing a client with a `keyPrefix`. */
  owner: string
  /** Why a `keyPrefix` is refused and what to do instead, appended to that error. */
  keyPrefixAdvice: string
  /** Options under `redisOptions` for a client opened from a URL (`redisOptions` overrides them). */
  defaults?: AdapterRedisOptions
  /** Options over `redisOptions` for a client opened from a URL (they override it). */
  fixed?: AdapterRedisOptions
  /** Default `redis://127.0.0.1:6379`. */
  defaultUrl?: string
}

const DEFAULT_URL = 'redis://127.0.0.1:6379'

/**
 * An adapter's ioredis client, opened from a URL (owned) or given by the application (borrowed:
 * closed only with `closeClient`). A client with a `keyPrefix` is refused: tq's keys are
 * Dramatiq's, a prefix would hide them from Python peers.
 */
export class RedisClientHandle {
  readonly client: Redis
  /** Whether `release()` closes the client. */
  readonly owned: boolean
  /** The URL the client was opened from (undefined for a given client). */
  readonly url: string | undefined
  /** The options the client was opened with, before its connection name (undefined for a given client). */
  readonly options: AdapterRedisOptions | undefined

  constructor(source: RedisClientSource, spec: RedisClientSpec) {
    if (source.client) {
      if (source.client.options.keyPrefix) {
        throw new ConfigurationError(`${spec.owner} cannot use a client with a keyPrefix${spec.keyPrefixAdvice}`)
      }
      this.client = source.client
      this.owned = source.closeClient ?? false
      this.url = undefined
      this.options = undefined
    } else {
      this.options = { ...spec.defaults, ...source.redisOptions }
      this.url = source.url ?? spec.defaultUrl ?? DEFAULT_URL
      this.client = new Redis(this.url, { ...this.options, ...spec.fixed })
      this.owned = true
    }
  }

  /** host:port (or the socket path) of the server. */
  get address(): string {
    const { host, port, path } = this.client.options
    return path ?? `${host ?? '127.0.0.1'}:${port ?? 6379}`
  }

  /** A description of the server for messages: the URL without its password, or host:port. */
  get where(): string {
    return this.url !== undefined ? redactUrl(this.url) : this.address
  }

  /** The database the client is configured for. */
  get db(): number {
    return Number(this.client.options.db ?? 0)
  }

  /** Close the client if this adapter owns it (opened it, or was given it with `closeClient`). */
  async release(): Promise<void> {
    if (this.owned) await quit(this.client)
  }

  /**
   * Check that the configured database exists with an explicit SELECT: ioredis swallows a failed
   * SELECT of its handshake and stays on database 0. Throws `ConfigurationError` when the server
   * refuses it; other errors go through `classify`.
   */
  /**
   * `selectDatabase` once, before an adapter's first command (`undefined` on database 0): the
   * same promise for every caller; a failure other than a missing database is checked again by
   * the next caller (the server was unreachable, not misconfigured).
   */
  verifyDatabase(classify: (error: unknown) => Error): Promise<void> | undefined {
    if (this.db === 0) return undefined
    if (!this.#verified) {
      const checking = this.selectDatabase(classify)
      checking.catch((error: unknown) => {
        if (!(error instanceof ConfigurationError) && this.#verified === checking) this.#verified = undefined
      })
      this.#verified = checking
    }
    return this.#verified
  }

  #verified: Promise<void> | undefined

  async selectDatabase(classify: (error: unknown) => Error): Promise<void> {
    const db = this.db
    if (db === 0) return
    try {
      await this.client.select(db)
    } catch (error) {
      if (isReplyError(error)) {
        throw new ConfigurationError(
          `Redis at ${this.where} cannot select database ${db}: ${errorMessage(error)} ` +
            "(check the /db part of the URL and the server's `databases` setting)",
          { cause: error },
        )
      }
      throw classify(error)
    }
  }
}

/** QUIT (pending replies arrive first) and wait for the socket to end; disconnect if that stalls. */
export async function quit(client: Redis): Promise<void> {
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

/** The bytes as a Buffer, without copying (ioredis sends Buffers as they are). */
export const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
