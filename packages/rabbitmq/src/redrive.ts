/**
 * Dead-letter redrive: moving the messages of `q.XQ` (dead-lettered from `q` and from `q.DQ`)
 * back to `q`. See `redriveDeadLetters`.
 */
import {
  ConnectionClosedError,
  InvalidArgumentError,
  Message,
  Notifier,
  errorMessage,
  errorMeta,
  xqName,
  type Encoder,
  type Logger,
} from '@tq/core'
import { redrivenMessage } from '@tq/core/adapter'
import type { Channel, ConsumeMessage } from 'amqplib'
import { classifyAmqpError } from './classify-error.ts'
import type { ManagedConnection } from './connection.ts'
import { validatePriority } from './options.ts'
import type { PublishItem } from './publisher.ts'

/** Dead letters taken, published and acknowledged together (the consumer's prefetch). */
export const REDRIVE_BATCH = 500

/** How long a batch waits for deliveries before asking whether the queue ran dry (ms). */
const IDLE_CHECK = 20

/** What a redrive needs of its broker. */
export interface RedriveHost {
  readonly encoder: Encoder
  readonly logger: Logger
  /**
   * The connection the dead letters are taken on: not the publishing one, so that a publish
   * the `Publisher` retries after a blip of its connection still finds its dead letters there
   * to acknowledge.
   */
  readonly connection: ManagedConnection
  /** Messages in `q.XQ` now, declaring the queue's topology if needed. */
  deadLetterCount(canonical: string): Promise<number>
  /** The enqueue template's `prepareMessage` step. */
  prepare(message: Message): Message
  beforeEnqueue(message: Message): Promise<void>
  /** `began`: when the move began (Unix ms), what tracking records as the time of the enqueue. */
  afterEnqueue(message: Message, began: number): Promise<void>
  /** Publish with the broker's `Publisher` (confirms, retries); resolves once RabbitMQ has them all. */
  publish(items: readonly PublishItem[]): Promise<void>
}

export interface RedriveOptions {
  /** At most this many (default: all) dead letters move. */
  limit?: number | undefined
  /** Dead letters per round (default `REDRIVE_BATCH`). */
  batchSize?: number | undefined
}

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * Move up to `limit` (default: all) dead letters of canonical queue `canonical` from `q.XQ`
 * back to `q`, oldest first; resolves with how many moved.
 *
 * Each round takes a batch of dead letters unacknowledged (a short-lived consumer of `q.XQ`
 * with a prefetch of the batch, on its own channel), publishes each as `redrivenMessage()`
 * makes it — the same id, timestamp and arguments, on `q`, due now, without `retries`,
 * `traceback`, `requeueTimestamp` or `eta`, encoded with the broker's encoder, with the
 * `beforeEnqueue` / `afterEnqueue` hooks and the AMQP `priority` it had — through the broker's
 * `Publisher` with confirms, and acknowledges the dead letters only once every publish of the
 * batch is confirmed. The next batch is taken while one is published, and published only once
 * that one is acknowledged. Crash safety follows: a process that dies (or a channel that
 * closes) before the acks reach RabbitMQ leaves the batch's dead letters in `q.XQ`, where
 * RabbitMQ puts them back; the messages of that batch whose publish was already confirmed (or
 * had reached `q` unconfirmed) are then in both queues — the only duplicates, at most one
 * batch. No message is ever in neither.
 *
 * Round trips per batch of `REDRIVE_BATCH` (500): `basic.consume`, `basic.cancel` and the
 * publish with its confirms (`basic.qos` only when the batch size changes; the acks, one frame,
 * need no answer), plus `queue.declare` (passive) when deliveries stop coming before the
 * batch is full. So about 3 per 500 messages, 60 for 10 000.
 *
 * A dead letter that does not decode is left in `q.XQ`: it is held unacknowledged until the end
 * (so it is not taken twice), then requeued to its place, logged and not counted. The redrive
 * takes at most the number of messages `q.XQ` had when it started, so it ends even when every
 * one of them is undecodable, and it does not chase dead letters that arrive meanwhile.
 *
 * Fails with `ConnectionClosedError` if the channel or connection goes away midway: what moved
 * before stays moved; the batch in flight is in `q.XQ` and possibly also in `q`.
 */
export async function redriveDeadLetters(
  host: RedriveHost,
  canonical: string,
  options: RedriveOptions = {},
): Promise<number> {
  const limit = options.limit ?? Infinity
  if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) {
    throw new InvalidArgumentError(`limit must be a non-negative integer, got ${String(limit)}`)
  }
  const batchSize = options.batchSize ?? REDRIVE_BATCH
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 65535) {
    throw new InvalidArgumentError(`batchSize must be an integer from 1 to 65535, got ${String(batchSize)}`)
  }
  if (limit === 0) return 0
  let left = await host.deadLetterCount(canonical)
  if (left === 0) return 0
  const taker = await DeadLetterTaker.open(host, xqName(canonical))
  let moved = 0
  let taking: Promise<ConsumeMessage[]> | undefined = taker.take(Math.min(batchSize, limit, left))
  try {
    while (taking) {
      const batch = await taking
      taking = undefined
      if (batch.length === 0) break
      left -= batch.length
      const prepared = await prepareBatch(host, taker, canonical, batch)
      // The next batch is taken while this one is published; it is published only after this
      // one is confirmed and acknowledged, so at most one batch is ever in both queues.
      const next = Math.min(batchSize, limit - moved - prepared.messages.length, left)
      if (next > 0) {
        taking = taker.take(next)
        taking.catch(() => undefined)
      }
      moved += await publishBatch(host, taker, prepared, moved)
    }
    return moved
  } finally {
    // Its deliveries go back with the channel.
    if (taking) await taking.catch(() => undefined)
    await taker.close()
  }
}

/** The decodable dead letters of a batch and their redriven messages, ready to publish. */
interface PreparedBatch {
  readonly deadLetters: ConsumeMessage[]
  readonly messages: Message[]
  readonly items: PublishItem[]
}

/** Decode a batch and run `beforeEnqueue` on each redriven message (undecodable ones are held). */
async function prepareBatch(
  host: RedriveHost,
  taker: DeadLetterTaker,
  canonical: string,
  batch: readonly ConsumeMessage[],
): Promise<PreparedBatch> {
  const prepared: PreparedBatch = { deadLetters: [], messages: [], items: [] }
  for (const raw of batch) {
    const message = taker.decode(raw, host.encoder)
    if (message === undefined) continue
    let redriven = redrivenMessage(message)
    // A dead letter of this queue goes back to this queue, whatever queue its body names.
    if (redriven.queueName !== canonical) redriven = redriven.copy({ queueName: canonical })
    redriven = host.prepare(redriven)
    await host.beforeEnqueue(redriven)
    prepared.items.push({
      routingKey: canonical,
      canonical,
      body: toBuffer(redriven.encode(host.encoder)),
      priority: priorityOf(raw, redriven),
    })
    prepared.deadLetters.push(raw)
    prepared.messages.push(redriven)
  }
  return prepared
}

/** Publish a prepared batch to `q`, then ack its dead letters and run `afterEnqueue`; resolves with how many moved. */
async function publishBatch(
  host: RedriveHost,
  taker: DeadLetterTaker,
  prepared: PreparedBatch,
  movedBefore: number,
): Promise<number> {
  if (prepared.items.length === 0) return 0
  // Nothing is published for dead letters RabbitMQ already took back.
  taker.assertOpen(movedBefore)
  // A worker may run a redriven message before its publish is confirmed.
  const began = Date.now()
  await host.publish(prepared.items)
  taker.ack(prepared.deadLetters, movedBefore)
  for (const message of prepared.messages) await host.afterEnqueue(message, began)
  return prepared.items.length
}

/**
 * The `priority` the dead letter carried (RabbitMQ keeps a dead letter's properties), else the
 * one a tq enqueue gives its `brokerPriority` option; none when neither is valid.
 */
function priorityOf(raw: ConsumeMessage, message: Message): number | undefined {
  const property: unknown = raw.properties.priority
  if (typeof property === 'number' && Number.isInteger(property) && property >= 0 && property <= 255) return property
  try {
    return validatePriority(message.options.brokerPriority)
  } catch {
    return undefined
  }
}

/**
 * Takes the dead letters of one `q.XQ`, a batch at a time, on a channel of its own: one
 * consumer per batch with a prefetch of the batch's size (so RabbitMQ never hands out more),
 * cancelled once the batch is complete or the queue has no more ready messages. Nothing is
 * acknowledged but what `ack` is given; closing the channel returns the rest to `q.XQ`.
 */
class DeadLetterTaker {
  readonly #channel: Channel
  readonly #queue: string
  readonly #logger: Logger
  /** Undecodable dead letters, held unacknowledged until `close()` requeues them. */
  readonly #held: ConsumeMessage[] = []
  readonly #changed = new Notifier()
  #prefetch = 0
  /** RabbitMQ cancelled a consumer: the queue was deleted, nothing more to take. */
  #gone = false
  #closed = false
  #closeError: unknown

  static async open(host: RedriveHost, queue: string): Promise<DeadLetterTaker> {
    try {
      const model = await host.connection.get()
      return new DeadLetterTaker(await model.createChannel(), queue, host.logger)
    } catch (error) {
      throw classifyAmqpError(error)
    }
  }

  private constructor(channel: Channel, queue: string, logger: Logger) {
    this.#channel = channel
    this.#queue = queue
    this.#logger = logger
    channel.on('error', (error: unknown) => {
      this.#closeError = error
      logger.warn(`RabbitMQ closed the channel redriving ${queue}`, errorMeta(classifyAmqpError(error)))
    })
    channel.on('close', () => {
      this.#closed = true
      this.#changed.notify()
    })
  }

  /**
   * Up to `count` dead letters, oldest first, delivered and not acknowledged; fewer when the
   * queue runs dry (none when it is empty).
   */
  async take(count: number): Promise<ConsumeMessage[]> {
    this.assertOpen(undefined)
    const got: ConsumeMessage[] = []
    if (this.#gone) return got
    let cancelled = false
    try {
      if (this.#prefetch !== count) {
        // Per consumer (global false): it applies to the consumer opened next.
        await this.#channel.prefetch(count, false)
        this.#prefetch = count
      }
      const { consumerTag } = await this.#channel.consume(
        this.#queue,
        (raw) => {
          if (raw === null) cancelled = this.#gone = true
          else got.push(raw)
          if (cancelled || got.length >= count) this.#changed.notify()
        },
        { noAck: false },
      )
      while (got.length < count && !cancelled && !this.#closed) {
        if (await this.#changed.wait(IDLE_CHECK)) continue
        if (got.length >= count || cancelled || this.#closed) break
        // Quiet for a while: stop if nothing is left to deliver (a dead letter expired, or
        // another redrive took some).
        const { messageCount } = await this.#channel.checkQueue(this.#queue)
        if (messageCount === 0) break
      }
      // Deliveries that arrive before the cancel is confirmed join the batch (never more than
      // `count`: the prefetch holds the rest back).
      if (!cancelled && !this.#closed) await this.#channel.cancel(consumerTag)
    } catch (error) {
      throw classifyAmqpError(error)
    }
    this.assertOpen(undefined)
    if (this.#gone) this.#logger.warn(`RabbitMQ cancelled the redrive of ${this.#queue} (queue deleted?)`)
    return got
  }

  /** The message in a dead letter, or undefined (logged, held for requeueing) if it does not decode. */
  decode(raw: ConsumeMessage, encoder: Encoder): Message | undefined {
    try {
      return Message.decode(raw.content, encoder)
    } catch (error) {
      this.#held.push(raw)
      const amqpMessageId: unknown = raw.properties.messageId
      this.#logger.warn(`Leaving an undecodable dead letter in ${this.#queue}`, {
        ...(typeof amqpMessageId === 'string' ? { amqpMessageId } : {}),
        reason: errorMessage(error),
      })
      return undefined
    }
  }

  /** Throws `ConnectionClosedError` if the channel closed (RabbitMQ took its deliveries back). */
  assertOpen(moved: number | undefined): void {
    if (this.#closed) throw this.#closedError(moved, this.#closeError)
  }

  /** Acknowledge dead letters whose redriven copies RabbitMQ confirmed. */
  ack(messages: readonly ConsumeMessage[], movedBefore: number): void {
    const last = messages[messages.length - 1]
    if (last === undefined) return
    if (this.#closed) throw this.#closedError(movedBefore, this.#closeError, true)
    try {
      // One frame for the batch, unless an undecodable dead letter held below it must stay.
      if (this.#held.length === 0) this.#channel.ack(last, true)
      else for (const message of messages) this.#channel.ack(message)
    } catch (error) {
      throw this.#closedError(movedBefore, error, true)
    }
  }

  /** Requeue the undecodable dead letters to their places, and close the channel. */
  async close(): Promise<void> {
    if (this.#closed) return
    try {
      for (const raw of this.#held) this.#channel.nack(raw, false, true)
      // Answered once RabbitMQ has handled the acks before it.
      await this.#channel.close()
    } catch (error) {
      this.#logger.debug(`Closing the channel redriving ${this.#queue} failed (already closed?)`, errorMeta(error))
    }
  }

  #closedError(moved: number | undefined, cause: unknown, published = false): ConnectionClosedError {
    const so = moved === undefined ? '' : `${moved} moved before; `
    const batch = published
      ? 'the batch in flight is back in the dead-letter queue and also in the queue'
      : 'the batch in flight is back in the dead-letter queue'
    return new ConnectionClosedError(`The channel redriving ${this.#queue} closed: ${so}${batch}`, { cause })
  }
}
