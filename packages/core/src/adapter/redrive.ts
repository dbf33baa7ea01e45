import { Message } from '../message.ts'
import { qName } from '../queue-names.ts'

/** Options a redriven message starts again without: its retry history and its due time. */
const RESET_OPTIONS = ['retries', 'traceback', 'requeueTimestamp', 'eta'] as const

/**
 * A dead letter as it goes back to its queue: on the canonical queue, due now, with its retry
 * count reset (no `retries`, `traceback`, `requeueTimestamp` or `eta`); same id, timestamp,
 * arguments and other options.
 */
export function redrivenMessage(message: Message): Message {
  const options: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(message.options)) {
    if ((RESET_OPTIONS as readonly string[]).includes(key)) continue
    // Defined, not assigned: an own "__proto__" key must stay a key.
    Object.defineProperty(options, key, { value, writable: true, enumerable: true, configurable: true })
  }
  return new Message({
    queueName: qName(message.queueName),
    actorName: message.actorName,
    args: message.args,
    kwargs: message.kwargs,
    options,
    messageId: message.messageId,
    messageTimestamp: message.messageTimestamp,
  })
}
