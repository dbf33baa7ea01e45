import { QueueNotFoundError, dqName, errorMeta, xqName, type Logger, type QueueCounts } from '@tq/core'
import type { Channel } from 'amqplib'
import { classifyAmqpError } from './classify-error.ts'
import type { ManagedConnection } from './connection.ts'
import type { QueueDeclaration } from './topology.ts'

export interface QueueAdminOptions {
  /** The publishing connection: the admin channel lives on it. */
  connection: ManagedConnection
  logger: Logger
  /** The queues (name and arguments) of a canonical queue, in declaration order. */
  declarations(canonical: string): readonly QueueDeclaration[]
}

/**
 * The server side of a broker's queues: declaring a canonical queue's three queues (once per
 * connection, again after they vanished), counting and purging them, on an admin channel (a
 * plain channel of the publishing connection).
 */
export class QueueAdmin {
  readonly #options: QueueAdminOptions
  readonly #declared = new Map<string, Promise<void>>()
  #channel: Promise<Channel> | undefined
  #closed = false

  constructor(options: QueueAdminOptions) {
    this.#options = options
    options.connection.onClose(() => {
      this.#declared.clear()
      this.#channel = undefined
    })
  }

  /** Declare a canonical queue's topology on `channel`. */
  async declareOn(channel: Channel, canonical: string): Promise<void> {
    for (const q of this.#options.declarations(canonical)) {
      await channel.assertQueue(q.name, {
        durable: q.durable,
        exclusive: q.exclusive,
        autoDelete: q.autoDelete,
        arguments: q.arguments,
      })
    }
  }

  /** Declare a queue's topology on the server once per connection (again after it vanished). */
  ensureDeclared(canonical: string): Promise<void> {
    let declaring = this.#declared.get(canonical)
    if (!declaring) {
      declaring = this.#run((channel) => this.declareOn(channel, canonical))
      this.#declared.set(canonical, declaring)
      declaring.catch(() => {
        if (this.#declared.get(canonical) === declaring) this.#declared.delete(canonical)
      })
    }
    return declaring
  }

  /** Forget that a canonical queue was declared (it vanished): the next use declares it again. */
  forget(canonical: string): void {
    this.#declared.delete(canonical)
  }

  /**
   * Ready messages in `q`, `q.DQ` and `q.XQ` (declaring them if needed, again if they vanished);
   * `running` is unknown: AMQP does not report unacknowledged deliveries.
   */
  async counts(canonical: string): Promise<QueueCounts> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.ensureDeclared(canonical)
        return await this.#run(async (channel) => {
          const ready = await channel.checkQueue(canonical)
          const delayed = await channel.checkQueue(dqName(canonical))
          const dead = await channel.checkQueue(xqName(canonical))
          return {
            ready: ready.messageCount,
            delayed: delayed.messageCount,
            running: undefined,
            dead: dead.messageCount,
          }
        })
      } catch (error) {
        // A queue deleted behind our back: declare it again, once.
        if (attempt >= 2 || !(error instanceof QueueNotFoundError)) throw error
        this.forget(canonical)
      }
    }
  }

  /** Drop the ready messages of `q`, `q.DQ` and `q.XQ`. */
  async purge(canonical: string): Promise<void> {
    await this.ensureDeclared(canonical)
    await this.#run(async (channel) => {
      for (const q of this.#options.declarations(canonical)) await channel.purgeQueue(q.name)
    })
  }

  /** Close the admin channel; later operations fail with `BrokerClosedError`. */
  async close(): Promise<void> {
    this.#closed = true
    const channel = this.#channel
    this.#channel = undefined
    if (channel) await channel.then((c) => c.close()).catch(() => undefined)
  }

  /** Run `fn` on the admin channel, opening it if needed; errors come out classified. */
  async #run<T>(fn: (channel: Channel) => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#options.connection.closedError()
    if (!this.#channel) {
      const opening = (async () => {
        const model = await this.#options.connection.get()
        const channel = await model.createChannel()
        channel.on('error', (error: unknown) =>
          this.#options.logger.debug('RabbitMQ closed the admin channel', errorMeta(error)),
        )
        channel.on('close', () => {
          if (this.#channel === opening) this.#channel = undefined
        })
        return channel
      })()
      this.#channel = opening
      opening.catch(() => {
        if (this.#channel === opening) this.#channel = undefined
      })
    }
    const channel = await this.#channel
    try {
      return await fn(channel)
    } catch (error) {
      throw classifyAmqpError(error)
    }
  }
}
