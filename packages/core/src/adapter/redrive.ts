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

/** A delayed message as it goes to its queue once due: on the canonical queue, without `eta`. */
export function dueMessage(message: Message): Message {
  const { eta: _eta, ...options } = message.options
  const copy = message.copy({ queueName: qName(message.queueName) })
  // copy() merges options; rebuild them without the eta. Defined, not assigned: an own
  // "__proto__" key (JSON.parse makes one) must stay a key, not become the prototype.
  for (const key of Object.keys(copy.options)) delete copy.options[key]
  for (const [key, value] of Object.entries(options)) {
    Object.defineProperty(copy.options, key, { value, writable: true, enumerable: true, configurable: true })
  }
  return copy
}
