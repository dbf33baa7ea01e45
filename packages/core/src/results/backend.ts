import { createHash } from 'node:crypto'
import { JSONEncoder, getEncoder, type Encoder } from '../encoder.ts'
import { ResultFailureError, ResultMissingError, ResultTimeoutError, errorMessage, errorTypeName } from '../errors.ts'
import { computeBackoff } from '../middleware/backoff.ts'
import { sleep } from '../notifier.ts'
import { qName } from '../queue-names.ts'
import type { MessageFields } from '../wire.ts'

export interface ResultGetOptions {
  /** Wait for the result instead of failing with `ResultMissingError`. */
  block?: boolean
  /** How long a blocking read waits, in ms (default 10 000). */
  timeout?: number
}

/**
 * Where actors' results are stored and read. Implementations: `StubResultBackend` (in
 * memory), `RedisResultBackend` (`@tq/results-redis`). Most extend {@link ResultBackendBase},
 * which fixes the key names and the stored format shared with Dramatiq.
 */
export interface ResultBackend {
  /**
   * Read a message's result. Throws `ResultMissingError` (non-blocking read, nothing stored),
   * `ResultTimeoutError` (blocking read, nothing stored before the timeout) or
   * `ResultFailureError` (the actor failed).
   */
  getResult(message: MessageFields, options?: ResultGetOptions): Promise<unknown>
  /** Store a successful result for `ttl` ms. */
  storeResult(message: MessageFields, result: unknown, ttl: number): Promise<void>
  /** Store a failure (Dramatiq's `{__t, exn: {type, msg}}` shape) for `ttl` ms. */
  storeException(message: MessageFields, error: unknown, ttl: number): Promise<void>
}

/** What a backend primitive returns for an absent (or expired) key. */
export const Missing: unique symbol = Symbol.for('@tq/results.Missing') as never
export type Missing = typeof Missing

/** The marker Dramatiq puts on a stored failure. */
export const FAILURE_MARKER = 'dramatiq.results.Result'

/** How a failure is stored: Dramatiq's exact shape, so a Python peer reads it as `ResultFailure`. */
export interface StoredFailure {
  __t: typeof FAILURE_MARKER
  exn: { type: string; msg: string }
}

/** Default wait of a blocking read, in ms. */
export const DEFAULT_RESULT_TIMEOUT = 10_000

export interface ResultBackendOptions {
  /** The first part of every key (default `"dramatiq-results"`, Dramatiq's). */
  namespace?: string
  /** How values are turned into bytes; defaults to the global `getEncoder()` at use time. */
  encoder?: Encoder
  /**
   * Use the plain `<namespace>:<queue>:<actor>:<messageId>` string as the key instead of its
   * MD5 hex digest (Dramatiq's `use_namespace_prefix_keys`). Both sides of a deployment must
   * agree; there is no migration between the two.
   */
  usePrefixKeys?: boolean
}

/** An encoder may offer these to encode values that are not objects (results can be `3`). */
interface ValueEncoder {
  encodeValue?(value: unknown): Uint8Array
  decodeValue?(bytes: Uint8Array): unknown
}

const utf8 = new TextDecoder('utf-8')

/**
 * The base of result backends. It owns the parts every backend must share with Dramatiq:
 *
 * - the key of a message's result: `<namespace>:<canonical queue>:<actor>:<messageId>`, used
 *   as its lowercase MD5 hex digest unless `usePrefixKeys` is set;
 * - the stored value: the encoded result, or `{"__t":"dramatiq.results.Result","exn":{"type",
 *   "msg"}}` for a failure, which reads back as a `ResultFailureError`.
 *
 * A subclass implements two primitives over encoded bytes, {@link get} and {@link store}, and
 * may override {@link waitFor} with a real blocking wait (the default polls `get` with an
 * exponential backoff between 100 ms and 2 s).
 *
 * ```ts
 * class MapBackend extends ResultBackendBase {
 *   readonly data = new Map<string, Uint8Array>()
 *   protected async get(key: string) { return this.data.get(key) ?? Missing }
 *   protected async store(key: string, value: Uint8Array) { this.data.set(key, value) }
 * }
 * ```
 */
export abstract class ResultBackendBase implements ResultBackend {
  readonly namespace: string
  readonly usePrefixKeys: boolean
  readonly #encoder: Encoder | undefined

  constructor(options: ResultBackendOptions = {}) {
    this.namespace = options.namespace ?? 'dramatiq-results'
    this.usePrefixKeys = options.usePrefixKeys ?? false
    this.#encoder = options.encoder
  }

  /** The encoder for stored values. */
  get encoder(): Encoder {
    return this.#encoder ?? getEncoder()
  }

  /** The key under which a message's result is stored. */
  buildMessageKey(message: Pick<MessageFields, 'queueName' | 'actorName' | 'messageId'>): string {
    const key = `${this.namespace}:${qName(message.queueName)}:${message.actorName}:${message.messageId}`
    if (this.usePrefixKeys) return key
    return createHash('md5').update(key, 'utf8').digest('hex')
  }

  async getResult(message: MessageFields, options: ResultGetOptions = {}): Promise<unknown> {
    const key = this.buildMessageKey(message)
    const timeout = options.timeout ?? DEFAULT_RESULT_TIMEOUT
    const data = options.block ? await this.waitFor(key, Math.max(0, timeout)) : await this.get(key)
    if (data === Missing) {
      if (options.block) {
        throw new ResultTimeoutError(`Timed out after ${timeout} ms waiting for the result of ${describe(message)}`)
      }
      throw new ResultMissingError(`No result is stored for ${describe(message)}`)
    }
    return this.unwrapResult(this.decodeValue(data))
  }

  async storeResult(message: MessageFields, result: unknown, ttl: number): Promise<void> {
    await this.store(this.buildMessageKey(message), this.encodeValue(this.wrapResult(result)), ttl)
  }

  async storeException(message: MessageFields, error: unknown, ttl: number): Promise<void> {
    await this.store(this.buildMessageKey(message), this.encodeValue(this.wrapException(error)), ttl)
  }

  /** The stored form of a result: the result itself (`undefined` becomes `null`, as Python's `None`). */
  protected wrapResult(result: unknown): unknown {
    return result === undefined ? null : result
  }

  /** The stored form of a failure. */
  protected wrapException(error: unknown): StoredFailure {
    return { __t: FAILURE_MARKER, exn: { type: errorTypeName(error), msg: errorMessage(error) } }
  }

  /** The result a stored value stands for; throws `ResultFailureError` for a stored failure. */
  protected unwrapResult(stored: unknown): unknown {
    if (isStoredFailure(stored)) {
      const { type, msg } = stored.exn
      throw new ResultFailureError(`actor raised ${type}: ${msg}`, type, msg)
    }
    return stored
  }

  /** Encode a value with the backend's encoder (JSON by default: compact, non-ASCII escaped). */
  protected encodeValue(value: unknown): Uint8Array {
    const encoder = this.encoder as Encoder & ValueEncoder
    if (typeof encoder.encodeValue === 'function') return encoder.encodeValue(value)
    return encoder.encode(value as Record<string, unknown>)
  }

  /** Decode bytes written by {@link encodeValue} (or by a Python peer with the same encoder). */
  protected decodeValue(bytes: Uint8Array): unknown {
    const encoder = this.encoder as Encoder & ValueEncoder
    if (typeof encoder.decodeValue === 'function') return encoder.decodeValue(bytes)
    // JSONEncoder.decode only accepts objects (it decodes messages); a result may be any JSON value.
    if (encoder instanceof JSONEncoder) return JSON.parse(utf8.decode(bytes)) as unknown
    return encoder.decode(bytes)
  }

  /** Read a key; `Missing` when it is absent or expired. */
  protected abstract get(key: string): Promise<Uint8Array | Missing>

  /** Write a key that expires after `ttl` ms, replacing any previous value. */
  protected abstract store(key: string, value: Uint8Array, ttl: number): Promise<void>

  /**
   * Wait up to `timeoutMs` for a key to exist and return its value (at once if it already
   * exists); `Missing` when the time runs out. The default polls {@link get} with an
   * exponential backoff (100 ms doubling, jittered, at most 2 s); backends that can block on
   * the server or be notified override it.
   */
  protected async waitFor(key: string, timeoutMs: number): Promise<Uint8Array | Missing> {
    const deadline = Date.now() + timeoutMs
    for (let attempt = 0; ; attempt++) {
      const data = await this.get(key)
      if (data !== Missing) return data
      const remaining = deadline - Date.now()
      if (remaining <= 0) return Missing
      await sleep(Math.min(remaining, computeBackoff(attempt, { factor: 100, maxBackoff: 2000 })))
    }
  }
}

/** Whether a stored value is Dramatiq's failure wrapper. */
export function isStoredFailure(value: unknown): value is StoredFailure {
  if (typeof value !== 'object' || value === null) return false
  const v = value as { __t?: unknown; exn?: unknown }
  if (v.__t !== FAILURE_MARKER || typeof v.exn !== 'object' || v.exn === null) return false
  const exn = v.exn as { type?: unknown; msg?: unknown }
  return typeof exn.type === 'string' && typeof exn.msg === 'string'
}

function describe(message: Pick<MessageFields, 'actorName' | 'messageId'>): string {
  return `message ${message.messageId} (actor ${message.actorName})`
}
