import { InvalidArgumentError } from '../errors.ts'
import type { MessageProxy } from '../message-proxy.ts'

/**
 * The error a consumer throws when asked to ack, nack or requeue a message it did not deliver
 * (another consumer's, another broker's, or one built by hand).
 */
export function foreignMessageError(consumer: string, queueName: string, message: MessageProxy): InvalidArgumentError {
  return new InvalidArgumentError(
    `Message ${message.messageId} was not delivered by this ${consumer} of ${queueName}: settle a message through the consumer that received it`,
  )
}
