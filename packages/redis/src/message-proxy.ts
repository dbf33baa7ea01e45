import { randomUUID } from 'node:crypto'
import { MessageProxy, type Message } from '@tq/core'

/**
 * The id a message has in Redis (`options.redisMessageId`, `redis_message_id` on the wire): the
 * member of the queue's list and the field of its payload hash. Every enqueue assigns a new one.
 */
export function redisMessageId(message: Message): string | undefined {
  const id = message.options['redisMessageId']
  return typeof id === 'string' ? id : undefined
}

/** `message` as enqueued to Redis: a copy with a new Redis id (a retry is a new Redis message). */
export function withNewRedisId(message: Message): Message {
  return message.copy({ options: { redisMessageId: randomUUID() } })
}

/** The consumer a delivery came from (this package's modules only). */
let consumerOf!: (proxy: RedisMessageProxy) => object

/** A delivery from Redis: the message plus the id it has in the queue's list and hash. */
export class RedisMessageProxy<R = unknown> extends MessageProxy<R> {
  /** The id in `<ns>:<queue>` / `<ns>:<queue>.msgs` (normally equal to `options.redisMessageId`). */
  readonly redisId: Buffer
  /** `redisId` as a Map key (`idKey`), made once: the consumer looks it up when it settles. */
  readonly key: string
  /** The consumer that delivered it: a message is settled only through it. */
  readonly #consumer: object

  static {
    consumerOf = (proxy) => proxy.#consumer
  }

  constructor(message: Message<R>, redisId: Buffer, consumer: object) {
    super(message)
    this.redisId = redisId
    this.key = idKey(redisId)
    this.#consumer = consumer
  }
}

/** Whether `message` is a delivery of `consumer`. */
export function isDeliveryOf(message: MessageProxy, consumer: object): message is RedisMessageProxy {
  return message instanceof RedisMessageProxy && consumerOf(message) === consumer
}

/** A Redis id as a Map key. */
export const idKey = (id: Buffer): string => id.toString('latin1')
