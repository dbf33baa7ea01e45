import {
  SendMessageBatchCommand,
  SendMessageCommand,
  type BatchResultErrorEntry,
  type SQSClient,
  type SendMessageBatchRequestEntry,
} from '@aws-sdk/client-sqs'
import { MessageTooLargeError, sleep, type Message, type OutgoingMessage, type TqError } from '@tq/core'
import { Backoff, Semaphore } from '@tq/core/adapter'
import { sqsMessageSize, toSqsBody, type SqsBody } from './body.ts'
import { batchEntryError, classifySqsError } from './classify-error.ts'
import type { Topology } from './topology.ts'

/** One message on its way to SQS. */
export interface SendEntry {
  /** The tq queue (`q`, `q.DQ` or `q.XQ`). */
  queueName: string
  body: SqsBody
  delaySeconds: number
}

interface SizedEntry extends SendEntry {
  /** What SQS counts against its limits: body and attributes. */
  size: number
  /** Its position in the messages given to the publisher. */
  index: number
}

export interface PublisherOptions {
  readonly client: SQSClient
  readonly topology: Topology
  /** Largest message (body and attributes) and largest `SendMessageBatch` call, in bytes. */
  readonly maxMessageSize: number
  /** The longest `DelaySeconds` used (SQS: 900). */
  readonly maxDelaySeconds: number
  /** `SendMessageBatch` calls run at once. */
  readonly sendConcurrency: number
}

/** Entries per `SendMessageBatch` call (SQS's limit). */
const BATCH_ENTRIES = 10
/** Attempts of a batch's failed entries before the send fails. */
const BATCH_ATTEMPTS = 4

/**
 * `DelaySeconds` for a message due at `eta` (Unix ms): whole seconds until then, rounded down so
 * it is never late by a hop, capped at `maxDelaySeconds` (a longer delay hops through the delay
 * queue: its consumer sends it again with what remains). 0 without an eta.
 */
function delaySecondsUntil(eta: unknown, maxDelaySeconds: number): number {
  if (typeof eta !== 'number' || !Number.isFinite(eta)) return 0
  return Math.max(0, Math.min(Math.floor((eta - Date.now()) / 1000), maxDelaySeconds))
}

/**
 * Sends messages to SQS: one `SendMessage` for a single message, otherwise `SendMessageBatch`
 * calls of up to 10 messages of one queue and at most `maxMessageSize` bytes, `sendConcurrency`
 * at once, their failed entries retried. A message over `maxMessageSize` fails the whole send
 * with `MessageTooLargeError` before anything is sent.
 */
export class Publisher {
  readonly #client: SQSClient
  readonly #topology: Topology
  readonly #maxMessageSize: number
  readonly #maxDelaySeconds: number
  readonly #limiter: Semaphore

  constructor(options: PublisherOptions) {
    this.#client = options.client
    this.#topology = options.topology
    this.#maxMessageSize = options.maxMessageSize
    this.#maxDelaySeconds = options.maxDelaySeconds
    this.#limiter = new Semaphore(options.sendConcurrency)
  }

  /** Send encoded messages (the broker's transport step); throws `MessageTooLargeError` before sending any. */
  async transmit(outgoing: readonly OutgoingMessage[]): Promise<void> {
    const entries: SizedEntry[] = []
    for (const [index, out] of outgoing.entries()) {
      const entry = this.#entry(out, index)
      if (entry instanceof MessageTooLargeError) throw entry
      entries.push(entry)
    }
    if (entries.length === 1) return this.send(entries[0] as SizedEntry)
    const batches = this.#batches(entries)
    await Promise.all(batches.map((batch) => this.#limiter.run(() => this.#sendBatch(batch))))
  }

  /**
   * Send encoded messages like `transmit` (batches of 10, `sendConcurrency` at once, failed
   * entries retried), but report each message instead of failing the whole send: `undefined`
   * where SQS took it, else why not (too large, refused, or the batch call failed — in that last
   * case SQS may still have taken it).
   */
  async transmitEach(outgoing: readonly OutgoingMessage[]): Promise<Array<TqError | undefined>> {
    const results: Array<TqError | undefined> = outgoing.map(() => undefined)
    const entries: SizedEntry[] = []
    for (const [index, out] of outgoing.entries()) {
      const entry = this.#entry(out, index)
      if (entry instanceof MessageTooLargeError) results[index] = entry
      else entries.push(entry)
    }
    await Promise.all(
      this.#batches(entries).map((batch) =>
        this.#limiter.run(async () => {
          const { failed, error } = await this.#attemptBatch(batch)
          for (const f of failed) {
            const entry = batch[Number(f.Id)]
            if (!entry) continue
            results[entry.index] =
              error === undefined
                ? batchEntryError(f, `SendMessageBatch refused the message: ${f.Message ?? f.Code ?? ''}`)
                : error
          }
        }),
      ),
    )
    return results
  }

  /** One `SendMessage` call, bypassing the size check (for bodies SQS already took once). */
  async send(entry: SendEntry): Promise<void> {
    await this.#topology.withQueue(entry.queueName, (url) =>
      this.#client.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: entry.body.body,
          ...(entry.body.attributes ? { MessageAttributes: entry.body.attributes } : {}),
          ...(entry.delaySeconds > 0 ? { DelaySeconds: entry.delaySeconds } : {}),
        }),
      ),
    )
  }

  /** The SQS entry of an encoded message, or the error if it is over `maxMessageSize`. */
  #entry({ message, body: bytes }: OutgoingMessage, index: number): SizedEntry | MessageTooLargeError {
    const body = toSqsBody(bytes)
    const size = sqsMessageSize(body.body, body.attributes)
    if (size > this.#maxMessageSize) return this.#tooLarge(message, size)
    const delaySeconds = delaySecondsUntil(message.options.eta, this.#maxDelaySeconds)
    return { queueName: message.queueName, body, delaySeconds, size, index }
  }

  #tooLarge(message: Message, size: number): MessageTooLargeError {
    const error = new MessageTooLargeError(size, this.#maxMessageSize, 'SQS')
    error.message =
      `Message ${message.messageId} to ${message.actorName} is ${size} bytes encoded; SQS takes at most ` +
      `${this.#maxMessageSize} bytes (body and attributes). Store large payloads elsewhere (e.g. S3) and send a reference.`
    return error
  }

  /** The entries by queue, in batches SQS takes: at most 10 entries and `maxMessageSize` bytes each. */
  #batches(entries: readonly SizedEntry[]): SizedEntry[][] {
    const byQueue = new Map<string, SizedEntry[]>()
    for (const entry of entries) {
      const list = byQueue.get(entry.queueName)
      if (list) list.push(entry)
      else byQueue.set(entry.queueName, [entry])
    }
    const batches: SizedEntry[][] = []
    for (const list of byQueue.values()) {
      let batch: SizedEntry[] = []
      let bytes = 0
      for (const entry of list) {
        if (batch.length === BATCH_ENTRIES || (batch.length > 0 && bytes + entry.size > this.#maxMessageSize)) {
          batches.push(batch)
          batch = []
          bytes = 0
        }
        batch.push(entry)
        bytes += entry.size
      }
      if (batch.length > 0) batches.push(batch)
    }
    return batches
  }

  /** One `SendMessageBatch` call (entries of one queue); failed entries are retried, then reported. */
  async #sendBatch(entries: readonly SendEntry[]): Promise<void> {
    const { failed, error } = await this.#attemptBatch(entries)
    if (error !== undefined) throw error
    if (failed.length === 0) return
    const f = failed.find((e) => e.SenderFault) ?? failed[0]
    throw batchEntryError(f, `SendMessageBatch refused ${failed.length} message(s): ${f?.Message ?? f?.Code ?? ''}`)
  }

  /**
   * One `SendMessageBatch` call (entries of one queue), its failed entries retried; resolves with
   * the entries not sent (their `Id` is their position in `entries`): all that failed once one
   * of them failed for good (`SenderFault`) or after the last attempt, or — with the `error` a
   * call threw — the entries that call carried (SQS may have taken them; earlier ones it did).
   */
  async #attemptBatch(entries: readonly SendEntry[]): Promise<{ failed: BatchResultErrorEntry[]; error?: TqError }> {
    const queueName = (entries[0] as SendEntry).queueName
    let pending = entries.map((entry, i) => ({ id: String(i), entry }))
    // 100, 200 and 400 ms before the second, third and fourth attempts.
    const backoff = new Backoff({ initial: 100, max: 400 })
    for (let attempt = 1; ; attempt++) {
      let failed: BatchResultErrorEntry[]
      try {
        failed = await this.#topology.withQueue(queueName, async (url) => {
          const out = await this.#client.send(
            new SendMessageBatchCommand({
              QueueUrl: url,
              Entries: pending.map(({ id, entry }): SendMessageBatchRequestEntry => ({
                Id: id,
                MessageBody: entry.body.body,
                ...(entry.body.attributes ? { MessageAttributes: entry.body.attributes } : {}),
                ...(entry.delaySeconds > 0 ? { DelaySeconds: entry.delaySeconds } : {}),
              })),
            }),
          )
          return out.Failed ?? []
        })
      } catch (error) {
        const failed = pending.map(({ id }) => ({ Id: id, Code: 'Error', SenderFault: false }))
        return { failed, error: classifySqsError(error) }
      }
      if (failed.length === 0 || failed.some((f) => f.SenderFault) || attempt >= BATCH_ATTEMPTS) return { failed }
      const ids = new Set(failed.map((f) => f.Id))
      pending = pending.filter((p) => ids.has(p.id))
      await sleep(backoff.next())
    }
  }
}
