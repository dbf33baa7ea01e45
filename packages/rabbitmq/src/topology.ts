/**
 * Dramatiq's RabbitMQ topology, declared exactly as Python Dramatiq 2.x declares it so both can
 * share queues (see fixtures/dramatiq-wire/rabbitmq-enqueue.json):
 *
 * | queue  | durable | exclusive | auto-delete | arguments                                                                  |
 * |--------|---------|-----------|-------------|----------------------------------------------------------------------------|
 * | `q`    | yes     | no        | no          | `x-dead-letter-exchange: ""`, `x-dead-letter-routing-key: "q.XQ"` (longstr), `x-max-priority` (int32, only when set) |
 * | `q.DQ` | yes     | no        | no          | the same as `q`                                                             |
 * | `q.XQ` | yes     | no        | no          | `x-message-ttl: 604800000` (int32)                                          |
 *
 * They are declared in the order `q`, `q.DQ`, `q.XQ`, on the default exchange (no bindings).
 */
import { dqName, xqName } from '@tq/core'

/** How long dead-lettered messages stay in `q.XQ` (7 days, Dramatiq's default). */
export const DEAD_MESSAGE_TTL = 604_800_000

/** An AMQP field-table integer with an explicit type: amqplib's `{ '!': type, value }` form. */
export interface TypedTableValue {
  readonly '!': 'int' | 'long'
  readonly value: number
}

export type QueueArgumentValue = string | TypedTableValue

export interface QueueDeclaration {
  readonly name: string
  readonly durable: true
  readonly exclusive: false
  readonly autoDelete: false
  /** In declaration order. */
  readonly arguments: Readonly<Record<string, QueueArgumentValue>>
}

export interface TopologyOptions {
  maxPriority?: number | undefined
  deadMessageTtl?: number | undefined
}

/**
 * Integers are encoded as signed 32-bit (`I`), as pika does, so a queue tq declares is
 * byte-for-byte the queue Dramatiq declares. (RabbitMQ compares values, not widths, so a queue
 * declared with other widths is used as it is too: fixture rabbitmq-queue-arg-equivalence.)
 */
function int(value: number): TypedTableValue {
  return { '!': value >= -0x8000_0000 && value < 0x8000_0000 ? 'int' : 'long', value }
}

/** The three queues of canonical queue `queueName`, in the order they are declared. */
export function queueDeclarations(queueName: string, options: TopologyOptions = {}): QueueDeclaration[] {
  const deadLetter: Record<string, QueueArgumentValue> = {
    'x-dead-letter-exchange': '',
    'x-dead-letter-routing-key': xqName(queueName),
  }
  if (options.maxPriority !== undefined) deadLetter['x-max-priority'] = int(options.maxPriority)
  const base = { durable: true, exclusive: false, autoDelete: false } as const
  return [
    { name: queueName, ...base, arguments: { ...deadLetter } },
    { name: dqName(queueName), ...base, arguments: { ...deadLetter } },
    {
      name: xqName(queueName),
      ...base,
      arguments: { 'x-message-ttl': int(options.deadMessageTtl ?? DEAD_MESSAGE_TTL) },
    },
  ]
}
