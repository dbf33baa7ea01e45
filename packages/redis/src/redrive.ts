import { existsSync, readFileSync } from 'node:fs'
import {
  InvalidArgumentError,
  Message,
  errorMeta,
  qName,
  validateQueueName,
  xqName,
  type Encoder,
  type Logger,
} from '@tq/core'
import { redrivenMessage } from '@tq/core/adapter'
import type { Redis } from 'ioredis'
import { classifyRedisError } from './classify-error.ts'
import type { RedisKeys } from './keys.ts'
import { redisMessageId, withNewRedisId } from './message-proxy.ts'

/** Dead letters read, and moved, per script call. */
export const REDRIVE_BATCH = 500

/** What the redrive needs of the broker. */
export interface RedriveHost {
  readonly keys: RedisKeys
  readonly client: Redis
  readonly logger: Logger
  /** The broker's encoder (read at each redrive: it may be the global one). */
  encoder(): Encoder
  /** Wait for the connection to be ready (see `RedisConnection.ready`). */
  ready(): Promise<void> | undefined
  /** The command, or a `ConnectionFailedError` once the connection has been down for `connectTimeout`. */
  bounded<T>(promise: Promise<T>): Promise<T>
  /** The broker's `beforeEnqueue` and `afterEnqueue` hooks, with no delay. */
  beforeEnqueue(message: Message): Promise<void>
  /** `began`: when the move began (Unix ms), what tracking records as the time of the enqueue. */
  afterEnqueue(message: Message, began: number): Promise<void>
}

export interface RedriveOptions {
  /** Dead letters per script call (default `REDRIVE_BATCH`). */
  readonly batch?: number
}

/** The reply of `redrive.lua`: a flag per dead letter sent, the zset's size, the next batch (id, payload, …). */
type ScriptReply = [moved: number[], dead: number, batch: Array<Buffer | null>]

/** One dead letter on its way back: the id it has in `.XQ` and the message as it goes to the queue. */
interface Pending {
  readonly deadId: Buffer
  readonly message: Message
  readonly body: Buffer
}

/** The client-side command the script is defined under (none of `scripts.ts` uses it). */
const COMMAND = 'tqRedriveDeadLetters'
const SCRIPT_KEYS = 5

let source: string | undefined

/**
 * `redrive.lua`, read once: next to this module when it runs from `src/` (tests, the
 * `@tq/source` condition), in `../src/lua/` when it runs from `dist/` (the package ships `src/`).
 */
function scriptSource(): string {
  if (source !== undefined) return source
  for (const candidate of ['./lua/redrive.lua', '../src/lua/redrive.lua']) {
    const url = new URL(candidate, import.meta.url)
    if (existsSync(url)) return (source = readFileSync(url, 'utf8'))
  }
  throw new Error(`@tq/redis: cannot find its Lua script redrive.lua next to ${import.meta.url}`)
}

type ScriptFn = (...args: Array<string | number | Buffer>) => Promise<unknown>

/**
 * Dead-letter redrive: moves the dead letters of a canonical queue (`<q>.XQ`, which also holds
 * those of `<q>.DQ`) back to `<q>`, oldest first.
 *
 * Each round trip is one `redrive.lua` call that moves the batch read by the previous call and
 * reads the next one; in between, each dead letter is decoded, made into `redrivenMessage()` with
 * a new Redis id (as every enqueue gets one), passed through `beforeEnqueue` and encoded with the
 * broker's encoder, so a Dramatiq worker reads it like any other enqueue. The move of a batch is
 * atomic: a crash before the call leaves the batch dead, a crash after leaves it moved. Dead
 * letters that are gone by the time of the move (someone else took them) are skipped; undecodable
 * ones stay where they are. Only the dead letters there were when the redrive started are
 * considered, so a message that dies again meanwhile (a worker is running) is not redriven twice.
 */
export class Redrive {
  readonly #host: RedriveHost
  readonly #batch: number

  constructor(host: RedriveHost, options: RedriveOptions = {}) {
    this.#host = host
    this.#batch = options.batch ?? REDRIVE_BATCH
  }

  /** Move up to `limit` (default: all) dead letters of `queueName` back to it; resolves with how many moved. */
  async redrive(queueName: string, options: { limit?: number } = {}): Promise<number> {
    const limit = options.limit ?? Infinity
    if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) {
      throw new InvalidArgumentError(`limit must be a non-negative integer, got ${String(limit)}`)
    }
    const queue = qName(queueName)
    validateQueueName(queue)
    const { keys, logger } = this.#host
    const encoder = this.#host.encoder()
    const scriptKeys = [
      keys.heartbeats,
      keys.key(xqName(queue)),
      keys.msgs(xqName(queue)),
      keys.key(queue),
      keys.msgs(queue),
    ]
    const channel = keys.channel(queue)

    let moved = 0
    /** Dead letters left in place ahead of the next read (undecodable or without a payload). */
    let offset = 0
    /** Dead letters there were at the start, not read yet (known after the first call). */
    let unread = Infinity
    let first = true
    let pending: Pending[] = []
    for (;;) {
      const want = Math.max(0, Math.min(this.#batch, limit - moved - pending.length, unread))
      if (want === 0 && pending.length === 0) break
      const began = Date.now()
      const args: Array<string | number | Buffer> = [began, keys.brokerId, channel, offset, want]
      for (const { deadId, message, body } of pending) args.push(deadId, redisMessageId(message) as string, body)
      const [flags, dead, batch] = await this.#call(scriptKeys, args)

      for (let i = 0; i < pending.length; i++) {
        if (flags[i] !== 1) continue
        moved++
        await this.#host.afterEnqueue((pending[i] as Pending).message, began)
      }
      pending = []
      if (first) {
        unread = dead
        first = false
      }
      if (batch.length === 0) {
        // Nothing more to read (when some was asked for), or only the move was asked for: look again.
        if (want > 0) break
        continue
      }
      unread -= batch.length / 2

      for (let i = 0; i + 1 < batch.length; i += 2) {
        const deadId = batch[i] as Buffer
        const payload = batch[i + 1]
        let message: Message
        try {
          if (!payload) throw new Error('the dead letter has no payload')
          const decoded = Message.decode(payload, encoder)
          message = withNewRedisId(redrivenMessage(decoded))
          if (message.queueName !== queue) message = message.copy({ queueName: queue })
        } catch (error) {
          offset++
          logger.warn('Undecodable dead letter left in place', {
            queueName: queue,
            redisMessageId: deadId.toString(),
            ...errorMeta(error),
          })
          continue
        }
        await this.#host.beforeEnqueue(message)
        pending.push({ deadId, message, body: Buffer.from(message.encode(encoder)) })
      }
    }
    return moved
  }

  async #call(keys: string[], args: Array<string | number | Buffer>): Promise<ScriptReply> {
    const { client } = this.#host
    const commands = client as unknown as Record<string, ScriptFn | undefined>
    if (typeof commands[COMMAND] !== 'function') {
      client.defineCommand(COMMAND, { numberOfKeys: SCRIPT_KEYS, lua: scriptSource() })
    }
    const ready = this.#host.ready()
    if (ready) await ready
    try {
      const fn = commands[`${COMMAND}Buffer`] as ScriptFn
      return (await this.#host.bounded(fn.call(client, ...keys, ...args))) as ScriptReply
    } catch (error) {
      throw classifyRedisError(error)
    }
  }
}
