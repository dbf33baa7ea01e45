import { ReceiveMessageCommand, type SQSClient, type Message as SqsMessage } from '@aws-sdk/client-sqs'
import {
  InvalidArgumentError,
  Message,
  errorMeta,
  qName,
  xqName,
  type Encoder,
  type Logger,
  type OutgoingMessage,
} from '@tq/core'
import { redrivenMessage } from '@tq/core/adapter'
import { fromSqsBody } from './body.ts'
import type { SqsQueueCounts } from './inspection.ts'
import type { Publisher } from './publisher.ts'
import type { Receipts } from './receipts.ts'
import type { Topology } from './topology.ts'

/** What a redrive needs of its broker (kept off the broker's public surface). */
export interface RedriveHost {
  readonly client: SQSClient
  readonly topology: Pick<Topology, 'withQueue'>
  /** Sends the redriven messages (`SendMessageBatch`, as every enqueue does). */
  readonly publisher: Pick<Publisher, 'transmitEach'>
  /** Deletes the moved dead letters and makes the ones left visible again. */
  readonly receipts: Pick<Receipts, 'delete' | 'changeVisibility'>
  readonly logger: Logger
  readonly encoder: Encoder
  /** Whether the queues have a `q.XQ` (else there is nothing to redrive). */
  readonly deadLetter: boolean
  /** Seconds the dead letters being moved stay invisible (the broker's `visibilityTimeout`). */
  readonly visibilityTimeout: number
  /** SQS's approximate counts of one queue. */
  messageCounts(queueName: string): Promise<SqsQueueCounts>
  /** The broker's `beforeEnqueue` hooks (a throw leaves the dead letter where it is). */
  beforeEnqueue(message: Message): Promise<void>
  /** The broker's `afterEnqueue` hooks (they never throw). */
  afterEnqueue(message: Message, began: number): Promise<void>
}

/** Messages per `ReceiveMessage` (SQS's limit, and the size of a `SendMessageBatch`). */
const BATCH = 10
/**
 * Seconds a receive waits when the dead-letter queue looks empty: a long poll asks every SQS
 * server (a short poll only some, and can come back empty while messages remain), and returns
 * at once when there are messages.
 */
const WAIT_SECONDS = 1

/** What happened to a dead letter received during one redrive, by its SQS message id. */
type Fate =
  /** Left in `q.XQ` (undecodable, or its move failed): made visible again at the end. */
  | { left: true; handle: string }
  /** Sent to `q`: never touched again by this redrive. */
  | { left: false }

/**
 * Moves the dead letters of a queue (`<prefix>q_XQ`, where SQS's redrive policy and tq's nacks
 * put the dead letters of `q` and `q.DQ` alike) back to `q`, 10 at a time:
 *
 * 1. `ReceiveMessage` takes up to 10 dead letters; they stay in `q_XQ`, invisible for the
 *    broker's `visibilityTimeout`.
 * 2. Each is decoded and rebuilt by `redrivenMessage()` (same id, timestamp and arguments; due
 *    now; no retry history), `beforeEnqueue` runs, and the batch goes to `q` in one
 *    `SendMessageBatch` through the publisher (the body encoding of every tq enqueue).
 * 3. `afterEnqueue` runs for each message SQS took, and the dead letters of those are deleted
 *    (`DeleteMessageBatch`) while the next batch is received; the next batch is sent once
 *    they are deleted.
 *
 * A message is deleted from `q_XQ` only after SQS confirmed the copy in `q`, so a crash at any
 * point leaves it in `q_XQ` (it becomes visible again after the visibility timeout), in `q`, or
 * — a crash between the send and the delete, or a delete that failed — in both: the next redrive
 * then moves that dead letter again and `q` holds the message twice (at most the batch of 10
 * that was between its two calls). Dead letters that cannot be decoded, whose `beforeEnqueue`
 * threw, or whose send failed stay in `q_XQ` and are made visible again at the end.
 *
 * The redrive takes at most as many dead letters as `q_XQ` held at its start (so it cannot chase
 * messages that fail and die again while it runs) and stops earlier when a receive brings
 * nothing it has not seen (an empty dead-letter queue costs one count, no receive). A failed
 * receive rejects, after the batch in flight was settled and what was left made visible again.
 * SQS standard queues have no order: each batch is sent oldest first (by the time SQS got
 * the dead letter), the batches in the order SQS hands them out.
 */
export class Redriver {
  readonly #host: RedriveHost

  constructor(host: RedriveHost) {
    this.#host = host
  }

  /** Move up to `limit` (default all) dead letters of a canonical queue back to it; resolves with how many moved. */
  async redrive(queueName: string, options: { limit?: number } = {}): Promise<number> {
    const limit = options.limit ?? Infinity
    if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) {
      throw new InvalidArgumentError(`limit must be a non-negative integer, got ${String(limit)}`)
    }
    const host = this.#host
    if (!host.deadLetter || limit === 0) return 0
    const canonical = qName(queueName)
    const xq = xqName(canonical)
    const { visible } = await host.messageCounts(xq)
    const fates = new Map<string, Fate>()
    /**
     * The deletes (and `afterEnqueue` hooks) of the last batch sent: they overlap the next
     * receive, and end before the next send (so at most one batch is in both queues at once).
     */
    let settling = Promise.resolve()
    let moved = 0
    let taken = 0
    try {
      while (moved < limit && taken < visible) {
        const received = await this.#receive(xq, Math.min(BATCH, limit - moved, visible - taken))
        const fresh: SqsMessage[] = []
        for (const m of received) {
          const fate = fates.get(m.MessageId ?? '')
          // Seen already: its visibility timeout ran out while the redrive went on. One left
          // keeps its newest receipt handle; a moved one is not moved again.
          if (fate?.left) fate.handle = m.ReceiptHandle ?? fate.handle
          else if (!fate) fresh.push(m)
        }
        if (fresh.length === 0) break
        taken += fresh.length
        await settling
        const { sent, settled } = await this.#move(canonical, fresh, fates)
        moved += sent
        settling = settled
      }
    } finally {
      await settling
      await this.#release(xq, fates)
    }
    host.logger.debug(`Redrove ${moved} dead letter(s) of ${canonical}`, { queue: canonical, moved })
    return moved
  }

  async #receive(xq: string, max: number): Promise<SqsMessage[]> {
    const { client, topology, visibilityTimeout } = this.#host
    const out = await topology.withQueue(xq, (url) =>
      client.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: WAIT_SECONDS,
          VisibilityTimeout: visibilityTimeout,
          MessageAttributeNames: ['All'],
          MessageSystemAttributeNames: ['SentTimestamp'],
        }),
      ),
    )
    return out.Messages ?? []
  }

  /**
   * Send one batch of received dead letters to `canonical`; resolves, once SQS took them, with
   * how many it took and the deletion of their dead letters (which never rejects).
   */
  async #move(
    canonical: string,
    received: SqsMessage[],
    fates: Map<string, Fate>,
  ): Promise<{ sent: number; settled: Promise<void> }> {
    const host = this.#host
    const xq = xqName(canonical)
    const leave = (m: SqsMessage): void =>
      void fates.set(m.MessageId ?? '', { left: true, handle: m.ReceiptHandle ?? '' })
    const sentAt = (m: SqsMessage): number => Number(m.Attributes?.SentTimestamp ?? 0) || 0
    const batch: Array<{ raw: SqsMessage; out: OutgoingMessage }> = []
    for (const raw of received.sort((a, b) => sentAt(a) - sentAt(b))) {
      const meta = { queue: xq, sqsMessageId: raw.MessageId }
      let message: Message
      let body: Uint8Array
      try {
        message = redrivenMessage(Message.decode(fromSqsBody(raw), host.encoder))
        if (message.queueName !== canonical) message = message.copy({ queueName: canonical })
        await host.beforeEnqueue(message)
        body = message.encode(host.encoder)
      } catch (error) {
        host.logger.warn('A dead letter could not be redriven; it stays in the dead-letter queue', {
          ...meta,
          ...errorMeta(error),
        })
        leave(raw)
        continue
      }
      batch.push({ raw, out: { message, body, canonical, delay: undefined } })
    }
    if (batch.length === 0) return { sent: 0, settled: Promise.resolve() }
    // A worker may run a redriven message before SQS answers the send.
    const began = Date.now()
    const results = await host.publisher.transmitEach(batch.map((b) => b.out))
    const sent = batch.filter((b, i) => {
      const error = results[i]
      if (error === undefined) return true
      host.logger.warn('A dead letter could not be sent back to its queue; it stays in the dead-letter queue', {
        queue: xq,
        sqsMessageId: b.raw.MessageId,
        messageId: b.out.message.messageId,
        ...errorMeta(error),
      })
      leave(b.raw)
      return false
    })
    for (const b of sent) fates.set(b.raw.MessageId ?? '', { left: false })
    const settled = Promise.all([
      (async () => {
        for (const b of sent) await host.afterEnqueue(b.out.message, began)
      })(),
      ...sent.map(async (b) => {
        try {
          await host.receipts.delete(xq, b.raw.ReceiptHandle ?? '')
        } catch (error) {
          // In `q` already; its dead letter comes back after the visibility timeout, and a
          // later redrive would send it again.
          host.logger.warn('A redriven dead letter could not be deleted; the message is in both queues', {
            queue: xq,
            sqsMessageId: b.raw.MessageId,
            messageId: b.out.message.messageId,
            ...errorMeta(error),
          })
        }
      }),
    ]).then(() => undefined)
    return { sent: sent.length, settled }
  }

  /** Make the dead letters left in `q.XQ` visible again (if this fails, their visibility timeout does it). */
  async #release(xq: string, fates: Map<string, Fate>): Promise<void> {
    const host = this.#host
    await Promise.all(
      [...fates.values()].map(async (fate) => {
        if (!fate.left) return
        try {
          await host.receipts.changeVisibility(xq, fate.handle, 0)
        } catch (error) {
          host.logger.debug('A dead letter left in the dead-letter queue comes back after its visibility timeout', {
            queue: xq,
            ...errorMeta(error),
          })
        }
      }),
    )
  }
}
