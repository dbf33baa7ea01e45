import { BrokerError, ConnectionClosedError, ErrorCode, errorMeta, sleep, type Logger, type TqError } from '@tq/core'
import { OutageLog, computeBackoff } from '@tq/core/adapter'
import type { Channel, ConfirmChannel, Message as AmqpMessage } from 'amqplib'
import { classifyAmqpError } from './classify-error.ts'
import type { ManagedConnection } from './connection.ts'

/** One message to publish to the default exchange. */
export interface PublishItem {
  /** The queue it goes to (`q` or `q.DQ`): the routing key. */
  readonly routingKey: string
  /** Its canonical queue, whose topology must exist first. */
  readonly canonical: string
  readonly body: Buffer
  /** The AMQP `priority` property (from the `brokerPriority` option). */
  readonly priority?: number | undefined
}

export interface PublisherOptions {
  connection: ManagedConnection
  /** Use publisher confirms (and `mandatory`, so a publish to a vanished queue comes back). */
  confirm: boolean
  /** Attempts per publish before it fails with `ConnectionClosedError`. */
  attempts: number
  /** Milliseconds before the second attempt; doubles per attempt up to `maxRetryDelay`. */
  retryDelay: number
  maxRetryDelay: number
  logger: Logger
  /** Make sure a canonical queue's topology exists (cached by the caller). */
  declare(canonical: string): Promise<void>
  /** Forget that a canonical queue was declared (it vanished). */
  invalidate(canonical: string): void
}

interface Pending {
  readonly item: PublishItem
  returned: boolean
}

interface Outcome {
  readonly item: PublishItem
  readonly error?: unknown
}

/** amqplib's channel internals used to publish without an (empty) `headers` table; see `send`. */
interface ChannelInternals {
  sendMessage?: (fields: Record<string, unknown>, properties: Record<string, unknown>, content: Buffer) => boolean
  pushConfirmCallback?: (cb: (error: unknown) => void) => void
}

/**
 * Publishes persistent messages on one (confirm) channel of the publishing connection. A publish
 * that fails because the channel or connection went away, that RabbitMQ nacks, or that comes
 * back unroutable (its queue was deleted: it is re-declared) is published again, up to
 * `attempts` times; then the caller gets a `ConnectionClosedError`. Nothing is dropped silently
 * while confirms are on.
 */
export class Publisher {
  readonly #options: PublisherOptions
  readonly #outage: OutageLog
  #channel: Promise<Channel> | undefined
  readonly #pending = new Map<Channel, Set<Pending>>()
  /** Messages being published, by canonical queue (for `join`). */
  readonly inFlight = new Map<string, number>()

  constructor(options: PublisherOptions) {
    this.#options = options
    this.#outage = new OutageLog(options.logger)
    options.connection.onClose(() => {
      this.#channel = undefined
    })
  }

  /** How many publishes to `canonical` are not settled yet. */
  pendingFor(canonical: string): number {
    return this.inFlight.get(canonical) ?? 0
  }

  async publish(items: readonly PublishItem[]): Promise<void> {
    if (items.length === 0) return
    for (const item of items) this.inFlight.set(item.canonical, (this.inFlight.get(item.canonical) ?? 0) + 1)
    try {
      await this.#publishWithRetries(items)
    } finally {
      for (const item of items) {
        const left = (this.inFlight.get(item.canonical) ?? 1) - 1
        if (left > 0) this.inFlight.set(item.canonical, left)
        else this.inFlight.delete(item.canonical)
      }
    }
  }

  async #publishWithRetries(items: readonly PublishItem[]): Promise<void> {
    const { attempts } = this.#options
    let remaining = items
    let lastError: TqError | undefined
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const channel = await this.#getChannel()
        for (const canonical of new Set(remaining.map((i) => i.canonical))) await this.#options.declare(canonical)
        const failed = await this.#publishOnce(channel, remaining)
        if (failed.length === 0) {
          this.#outage.recovered('Publishing to RabbitMQ again')
          return
        }
        remaining = failed.map((f) => f.item)
        lastError = classifyAmqpError(failed[0]?.error)
        if (!lastError.retryable) throw lastError
      } catch (error) {
        lastError = classifyAmqpError(error)
        if (!lastError.retryable) throw lastError
      }
      if (this.#options.connection.closed) throw this.#options.connection.closedError()
      if (attempt < attempts) {
        this.#outage.failed(
          `Publishing ${remaining.length} message(s) failed; trying again (attempt ${attempt + 1} of ${attempts})`,
          errorMeta(lastError),
        )
        if (attempt > 1 || !this.#options.connection.isOpen) await sleep(this.#retryDelay(attempt))
      }
    }
    throw new ConnectionClosedError(
      `Could not publish ${remaining.length} message(s) to RabbitMQ after ${attempts} attempts` +
        (lastError ? `: ${lastError.message}` : ''),
      {
        cause: lastError,
      },
    )
  }

  /** The wait before attempt `attempt + 1`: `retryDelay`, doubling per attempt up to `maxRetryDelay`. */
  #retryDelay(attempt: number): number {
    const { retryDelay, maxRetryDelay } = this.#options
    return computeBackoff(attempt - 1, { factor: retryDelay, maxBackoff: maxRetryDelay, jitter: false })
  }

  #getChannel(): Promise<Channel> {
    if (!this.#channel) {
      const opening = this.#openChannel()
      this.#channel = opening
      opening.catch(() => {
        if (this.#channel === opening) this.#channel = undefined
      })
    }
    return this.#channel
  }

  async #openChannel(): Promise<Channel> {
    const model = await this.#options.connection.get()
    const channel: Channel = this.#options.confirm ? await model.createConfirmChannel() : await model.createChannel()
    const pending = new Set<Pending>()
    this.#pending.set(channel, pending)
    channel.on('error', (error: unknown) =>
      this.#options.logger.warn('RabbitMQ closed the publishing channel', errorMeta(error)),
    )
    channel.on('close', () => {
      this.#pending.delete(channel)
      // Only forget the channel if it is still the current one.
      void this.#channel?.then(
        (current) => {
          if (current === channel) this.#channel = undefined
        },
        () => undefined,
      )
    })
    channel.on('return', (message: AmqpMessage) => {
      // RabbitMQ returns a mandatory message it could not route before it confirms it.
      for (const p of pending) {
        if (!p.returned && p.item.routingKey === message.fields.routingKey && p.item.body.equals(message.content)) {
          p.returned = true
          break
        }
      }
    })
    return channel
  }

  /** Publish every item once; resolves with the ones that must be published again. */
  async #publishOnce(channel: Channel, items: readonly PublishItem[]): Promise<Outcome[]> {
    const confirm = this.#options.confirm
    const pending = this.#pending.get(channel) ?? new Set<Pending>()
    const failed: Outcome[] = []
    // One promise for the whole batch: it resolves when every confirm callback has run.
    let unsettled = 0
    let sent = false
    let allSettled!: () => void
    const settledAll = new Promise<void>((resolve) => (allSettled = resolve))
    const settle = (): void => {
      if (--unsettled === 0 && sent) allSettled()
    }
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as PublishItem
      let writable: boolean
      try {
        if (confirm) {
          const entry: Pending = { item, returned: false }
          pending.add(entry)
          unsettled++
          try {
            writable = send(channel, item, true, (error: unknown) => {
              pending.delete(entry)
              if (error) failed.push({ item, error })
              else if (entry.returned) {
                this.#options.invalidate(item.canonical)
                failed.push({
                  item,
                  error: new BrokerError(
                    `Queue ${item.routingKey} vanished; declaring it again`,
                    ErrorCode.QUEUE_NOT_FOUND,
                    {
                      retryable: true,
                    },
                  ),
                })
              }
              settle()
            })
          } catch (error) {
            pending.delete(entry)
            unsettled--
            throw error
          }
        } else {
          writable = send(channel, item, false)
        }
      } catch (error) {
        // The channel is gone: this item and the rest go again on a new one.
        for (const rest of items.slice(i)) failed.push({ item: rest, error })
        break
      }
      if (!writable) await drained(channel)
    }
    sent = true
    if (unsettled > 0) await settledAll
    return failed
  }

  async close(): Promise<void> {
    const opening = this.#channel
    this.#channel = undefined
    if (!opening) return
    try {
      const channel = await opening
      await channel.close()
    } catch {
      // Already closed with its connection.
    }
  }
}

/**
 * Publish one message as Dramatiq does: default exchange, routing key = queue, `delivery_mode`
 * 2 and, when set, `priority`, and no other property. amqplib's `publish` always adds an empty
 * `headers` table; this goes one level down (the same call `publish` makes) so the properties
 * are exactly Dramatiq's (fixture rabbitmq-enqueue: property flags 0x1000 / 0x1800), and falls
 * back to `publish` if those internals ever change.
 */
function send(channel: Channel, item: PublishItem, confirm: boolean, callback?: (error: unknown) => void): boolean {
  const internals = channel as unknown as ChannelInternals
  const fields: Record<string, unknown> = {
    exchange: '',
    routingKey: item.routingKey,
    mandatory: confirm,
    immediate: false,
    deliveryMode: 2,
    priority: item.priority,
  }
  if (
    typeof internals.sendMessage === 'function' &&
    (!confirm || typeof internals.pushConfirmCallback === 'function')
  ) {
    const writable = internals.sendMessage.call(channel, fields, fields, item.body)
    if (confirm)
      (internals.pushConfirmCallback as NonNullable<ChannelInternals['pushConfirmCallback']>).call(
        channel,
        callback ?? (() => undefined),
      )
    return writable
  }
  const options = {
    deliveryMode: 2,
    mandatory: confirm,
    ...(item.priority === undefined ? {} : { priority: item.priority }),
  }
  if (confirm) return (channel as ConfirmChannel).publish('', item.routingKey, item.body, options, callback)
  return channel.publish('', item.routingKey, item.body, options)
}

/** Resolves when the channel's write buffer drains (or the channel closes). */
function drained(channel: Channel): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      channel.off('drain', done)
      channel.off('close', done)
      resolve()
    }
    channel.on('drain', done)
    channel.on('close', done)
  })
}
