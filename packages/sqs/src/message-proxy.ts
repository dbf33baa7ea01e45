import type { Message as SqsMessage } from '@aws-sdk/client-sqs'
import { MessageProxy, type Message } from '@tq/core'

/** A delivery from SQS: the message plus its receipt handle. */
export class SqsMessageProxy<R = unknown> extends MessageProxy<R> {
  /** The handle that deletes or changes the visibility of this delivery. */
  readonly receiptHandle: string
  /** SQS's id of the message (not tq's `messageId`). */
  readonly sqsMessageId: string
  /** SQS's `ApproximateReceiveCount` for this delivery (1 on the first). */
  readonly receiveCount: number
  /** The SQS message as received (body and attributes), for dead-lettering it unchanged. */
  readonly sqsMessage: SqsMessage

  constructor(message: Message<R>, sqsMessage: SqsMessage, receiveCount: number) {
    super(message)
    this.sqsMessage = sqsMessage
    this.receiptHandle = sqsMessage.ReceiptHandle ?? ''
    this.sqsMessageId = sqsMessage.MessageId ?? ''
    this.receiveCount = receiveCount
    this.redelivered = receiveCount > 1
  }
}

/**
 * A delivery as the consumer that received it keeps it: the proxy the worker sees, plus who
 * received it and the state of its visibility lease. The package does not export it: users see
 * an `SqsMessageProxy`.
 */
export class Delivery<R = unknown> extends SqsMessageProxy<R> {
  /** The consumer that received it: only that one settles it. */
  readonly receivedBy: object
  /** Unix ms at which the next visibility extension is due (`Infinity`: none). */
  nextExtendAt: number
  /** The visibility extension in flight, if any. */
  extension: Promise<void> | undefined = undefined

  constructor(message: Message<R>, sqsMessage: SqsMessage, receiveCount: number, receivedBy: object, extendAt: number) {
    super(message, sqsMessage, receiveCount)
    this.receivedBy = receivedBy
    this.nextExtendAt = extendAt
  }
}
