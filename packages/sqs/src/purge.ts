import {
  DeleteMessageBatchCommand,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs'
import type { Logger } from '@tq/core'
import { sqsErrorCode } from './classify-error.ts'
import type { Topology } from './topology.ts'

export interface PurgerOptions {
  readonly client: SQSClient
  readonly topology: Topology
  readonly logger: Logger
}

/**
 * Drops the messages of an SQS queue: `PurgeQueue`, or — while a purge of it is in progress
 * (AWS allows one per queue every 60 seconds) — receiving and deleting what is visible.
 */
export class Purger {
  readonly #options: PurgerOptions

  constructor(options: PurgerOptions) {
    this.#options = options
  }

  /** Purge one queue (`q`, `q.DQ` or `q.XQ`). */
  async purge(queueName: string): Promise<void> {
    const { client, topology, logger } = this.#options
    try {
      await topology.withQueue(queueName, (url) => client.send(new PurgeQueueCommand({ QueueUrl: url })))
    } catch (error) {
      if (sqsErrorCode((error as { cause?: unknown }).cause) !== 'PurgeQueueInProgress') throw error
      logger.debug(`A purge of ${queueName} is in progress; deleting its visible messages instead`)
      await this.#deleteVisible(queueName)
    }
  }

  /** Receive and delete every visible message of a queue (in-flight and delayed ones stay). */
  async #deleteVisible(queueName: string): Promise<void> {
    const { client, topology } = this.#options
    const url = await topology.url(queueName)
    for (;;) {
      const out = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          VisibilityTimeout: 30,
        }),
      )
      const messages = out.Messages ?? []
      if (messages.length === 0) return
      await client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: url,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
        }),
      )
    }
  }
}
