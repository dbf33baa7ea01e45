import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type BatchResultErrorEntry,
  type SQSClient,
  type Message as SqsMessage,
} from '@aws-sdk/client-sqs'
import { BrokerError, ErrorCode, xqName, type Logger } from '@tq/core'
import { Batcher, type EntryResult } from './batcher.ts'
import { resendableBody } from './body.ts'
import { batchEntryError, classifySqsError, isQueueMissing } from './classify-error.ts'
import type { Publisher } from './publisher.ts'
import type { Topology } from './topology.ts'

interface VisibilityChange {
  handle: string
  seconds: number
}

export interface ReceiptsOptions {
  readonly client: SQSClient
  readonly topology: Topology
  readonly publisher: Publisher
  readonly logger: Logger
  /** Milliseconds to collect operations into one batch call. */
  readonly batchDelay: number
  /** Whether nacked messages go to `q.XQ` (else they are deleted). */
  readonly deadLetter: boolean
}

/**
 * What is done with the receipt handles of received messages: delete them (an ack), change
 * their visibility (an extension, or 0 for a requeue) and dead-letter them. Deletes and
 * visibility changes issued close together are coalesced into `DeleteMessageBatch` and
 * `ChangeMessageVisibilityBatch` calls, one coalescer per queue.
 */
export class Receipts {
  readonly #client: SQSClient
  readonly #topology: Topology
  readonly #publisher: Publisher
  readonly #logger: Logger
  readonly #batchDelay: number
  readonly #deadLetter: boolean
  readonly #deletes = new Map<string, Batcher<string>>()
  readonly #visibility = new Map<string, Batcher<VisibilityChange>>()

  constructor(options: ReceiptsOptions) {
    this.#client = options.client
    this.#topology = options.topology
    this.#publisher = options.publisher
    this.#logger = options.logger
    this.#batchDelay = options.batchDelay
    this.#deadLetter = options.deadLetter
  }

  /** Delete a received message (resolves once SQS confirmed it, with retries). */
  delete(queueName: string, handle: string): Promise<void> {
    return (this.#deletes.get(queueName) ?? this.#deleter(queueName)).add(handle)
  }

  /** Set a received message's visibility timeout to `seconds` from now (0: visible again). */
  changeVisibility(queueName: string, handle: string, seconds: number): Promise<void> {
    return (this.#visibility.get(queueName) ?? this.#visibilityChanger(queueName)).add({ handle, seconds })
  }

  /**
   * Dead-letter a received message: send its body and attributes unchanged to `q.XQ`, then
   * delete it. (The redrive policy would only move it after `maxReceiveCount` receives; a nack
   * moves it now.) Without dead-letter queues, the message is deleted.
   */
  async deadLetter(queueName: string, message: SqsMessage, reason: string): Promise<void> {
    if (this.#deadLetter) {
      await this.#publisher.send({ queueName: xqName(queueName), body: resendableBody(message), delaySeconds: 0 })
      this.#logger.debug('Message dead-lettered', { queue: queueName, sqsMessageId: message.MessageId, reason })
    } else {
      this.#logger.warn('Message dropped (the broker has deadLetter: false)', {
        queue: queueName,
        sqsMessageId: message.MessageId,
        reason,
      })
    }
    await this.delete(queueName, message.ReceiptHandle ?? '')
  }

  /** Send what is pending and wait for every batch call in flight (retries included). */
  async drain(): Promise<void> {
    await Promise.all([...this.#deletes.values(), ...this.#visibility.values()].map((b) => b.drain()))
  }

  #deleter(queueName: string): Batcher<string> {
    return this.#coalescer(this.#deletes, queueName, 'delete', {
      send: (url, handles) =>
        this.#client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: url,
            Entries: handles.map((handle, i) => ({ Id: String(i), ReceiptHandle: handle })),
          }),
        ),
      gone: (handles) => {
        // The queue was deleted, and its messages with it: nothing is left to delete.
        this.#logger.warn(`The SQS queue of ${queueName} is gone; its messages are gone with it`, { queue: queueName })
        return handles.map(() => ({ ok: true }) as const)
      },
    })
  }

  #visibilityChanger(queueName: string): Batcher<VisibilityChange> {
    return this.#coalescer(this.#visibility, queueName, 'visibility change', {
      send: (url, items) =>
        this.#client.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: url,
            Entries: items.map(({ handle, seconds }, i) => ({
              Id: String(i),
              ReceiptHandle: handle,
              VisibilityTimeout: seconds,
            })),
          }),
        ),
      gone: (items, error) => {
        // Not retryable: the message went with its queue.
        const gone = new BrokerError(`The SQS queue of ${queueName} is gone`, ErrorCode.QUEUE_NOT_FOUND, {
          cause: error,
        })
        return items.map(() => ({ ok: false, error: gone }) as const)
      },
    })
  }

  /** A batcher of one queue's operations, kept in `batchers`; `gone` answers for a queue SQS says is deleted. */
  #coalescer<T>(
    batchers: Map<string, Batcher<T>>,
    queueName: string,
    what: string,
    call: {
      /** One batch call; SQS answers with the entries that failed. */
      send: (url: string, items: T[]) => Promise<{ Failed?: BatchResultErrorEntry[] | undefined }>
      gone: (items: T[], error: unknown) => EntryResult[]
    },
  ): Batcher<T> {
    const batcher = new Batcher<T>({
      what,
      logger: this.#logger,
      delay: this.#batchDelay,
      classify: classifySqsError,
      run: async (items) => {
        try {
          const out = await call.send(await this.#topology.url(queueName), items)
          return entryResults(items.length, out.Failed)
        } catch (error) {
          if (!isQueueMissing(error)) throw error
          return call.gone(items, error)
        }
      },
    })
    batchers.set(queueName, batcher)
    return batcher
  }
}

/** One result per entry of a batch call of `count` entries, from the entries SQS reports as failed. */
function entryResults(count: number, failed: BatchResultErrorEntry[] | undefined): EntryResult[] {
  const results: EntryResult[] = Array.from({ length: count }, () => ({ ok: true }) as const)
  for (const f of failed ?? []) {
    const index = Number(f.Id)
    if (!Number.isInteger(index) || index < 0 || index >= count) continue
    results[index] = { ok: false, error: batchEntryError(f, f.Message ?? f.Code ?? 'batch entry failed') }
  }
  return results
}
