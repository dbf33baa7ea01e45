import {
  Broker,
  type BrokerOptions,
  type ConsumeOptions,
  type Consumer,
  type OutgoingMessage,
  type QueueCounts,
  type JoinOptions,
  type ReceiveOptions,
} from '../broker.ts'
import { QueueJoinTimeoutError, QueueNotFoundError, errorMessage } from '../errors.ts'
import type { BrokerPlugin } from '../global.ts'
import { decodeOrReport, type DecodeResult } from '../adapter/decode.ts'
import { foreignMessageError } from '../adapter/foreign.ts'
import { redrivenMessage } from '../adapter/redrive.ts'
import { Fifo } from '../internal/fifo.ts'
import { Notifier } from '../notifier.ts'
import type { Message } from '../message.ts'
import { MessageProxy } from '../message-proxy.ts'
import { dqName, qName } from '../queue-names.ts'

export interface StubBrokerOptions extends BrokerOptions {
  /** Whether `join()` rethrows the first dead-lettered message's error by default (default true). */
  failFastDefault?: boolean
}

/** A payload the consumer could not decode, kept instead of being delivered. */
export interface RejectedPayload {
  queueName: string
  body: Uint8Array
  reason: string
}

class StubQueue {
  readonly items: Fifo<Uint8Array> = new Fifo()
  /** Messages put and not yet acked or nacked (requeues do not change it). */
  unfinished = 0
  /** Wakes consumers when a message arrives. */
  readonly arrived = new Notifier()
  /** Wakes joiners when `unfinished` drops. */
  readonly finished = new Notifier()

  put(body: Uint8Array): void {
    this.items.push(body)
    this.unfinished++
    this.arrived.notify()
  }

  taskDone(): void {
    this.unfinished = Math.max(0, this.unfinished - 1)
    this.finished.notify()
  }
}

class StubMessageProxy extends MessageProxy {
  readonly body: Uint8Array
  readonly consumer: StubConsumer
  constructor(message: Message, body: Uint8Array, consumer: StubConsumer) {
    super(message)
    this.body = body
    this.consumer = consumer
  }
}

/**
 * An in-memory broker for tests and for running without a server. Messages are encoded on
 * enqueue and decoded on delivery, as with a real broker, so what cannot travel fails here too.
 */
export class StubBroker extends Broker {
  /** Dead-lettered deliveries by the consumer's queue name (`q` or `q.DQ`). */
  readonly deadLettersByQueue: Map<string, MessageProxy[]> = new Map()
  /** Payloads no consumer could decode. */
  readonly rejected: RejectedPayload[] = []
  readonly failFastDefault: boolean
  readonly #queues = new Map<string, StubQueue>()

  constructor(options: StubBrokerOptions = {}) {
    super(options)
    this.failFastDefault = options.failFastDefault ?? true
  }

  /** Every dead-lettered delivery. */
  get deadLetters(): MessageProxy[] {
    return [...this.deadLettersByQueue.values()].flat()
  }

  protected override onDeclareQueue(queueName: string): void {
    this.#queues.set(queueName, new StubQueue())
    this.#queues.set(dqName(queueName), new StubQueue())
  }

  #queue(name: string): StubQueue {
    const queue = this.#queues.get(name)
    if (!queue) throw new QueueNotFoundError(name)
    return queue
  }

  protected override transmit(messages: readonly OutgoingMessage[]): void {
    for (const { message, body } of messages) this.#queue(message.queueName).put(body)
  }

  /** Put raw bytes on a queue, bypassing encoding (for tests of hostile input). */
  putRaw(queueName: string, body: Uint8Array): void {
    this.#queue(queueName).put(body)
  }

  protected override openConsumer(queueName: string, options: ConsumeOptions): Consumer {
    return new StubConsumer(
      this.#host,
      queueName,
      this.#queue(queueName),
      options.prefetch ?? 1,
      options.timeout ?? 100,
    )
  }

  /** Counts of a queue: ready and delayed messages, delivered-not-settled ones, dead letters. */
  override async queueCounts(queueName: string): Promise<QueueCounts> {
    const canonical = qName(queueName)
    const queue = this.#queue(canonical)
    const delay = this.#queue(dqName(canonical))
    const ready = queue.items.length
    const delayed = delay.items.length
    const running = queue.unfinished - ready + (delay.unfinished - delayed)
    return { ready, delayed, running, dead: this.deadLetteredBodies(canonical).length }
  }

  /** Move dead letters (decodable ones) back to their queue, oldest first, with the enqueue hooks. */
  override async redriveDeadLetters(queueName: string, options: { limit?: number } = {}): Promise<number> {
    const canonical = qName(queueName)
    let left = options.limit ?? Infinity
    let moved = 0
    for (const name of [canonical, dqName(canonical)]) {
      const list = this.deadLettersByQueue.get(name) ?? []
      while (left > 0 && list.length > 0) {
        const message = redrivenMessage((list.shift() as MessageProxy).message)
        await this.emitBefore('beforeEnqueue', message, undefined)
        this.#queue(canonical).put(message.encode(this.encoder))
        await this.emitAfter('afterEnqueue', message, undefined)
        left--
        moved++
      }
    }
    return moved
  }

  /** Number of messages waiting (not delivered) in a queue. */
  size(queueName: string): number {
    return this.#queue(queueName).items.length
  }

  override async flush(queueName: string): Promise<void> {
    for (const name of [qName(queueName), dqName(queueName)]) {
      const queue = this.#queue(name)
      const dropped = queue.items.clear().length
      for (let i = 0; i < dropped; i++) queue.taskDone()
    }
  }

  override async flushAll(): Promise<void> {
    for (const queue of this.queues) await this.flush(queue)
    // Cleared in place so consumers holding references keep valid ones.
    for (const list of this.deadLettersByQueue.values()) list.length = 0
    this.rejected.length = 0
  }

  /**
   * Wait until `queueName` and its delay queue have no unfinished messages. With `failFast`
   * (default true), then rethrow the error of the first message dead-lettered from this queue.
   */
  override async join(queueName: string, options: JoinOptions & { failFast?: boolean } = {}): Promise<void> {
    const canonical = qName(queueName)
    const queues = [this.#queue(canonical), this.#queue(dqName(canonical))]
    const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout
    for (;;) {
      let pending: StubQueue | undefined
      for (const q of queues) if (q.unfinished > 0) pending = q
      if (!pending) break
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new QueueJoinTimeoutError(canonical, options.timeout ?? 0)
      await pending.finished.wait(remaining)
    }
    if (options.failFast ?? this.failFastDefault) {
      const dead = [
        ...(this.deadLettersByQueue.get(canonical) ?? []),
        ...(this.deadLettersByQueue.get(dqName(canonical)) ?? []),
      ]
      const first = dead[0]
      if (first) {
        if (first.exception instanceof Error) throw first.exception
        throw new Error(
          `Message failed with ${first.exception === undefined ? 'unknown error' : errorMessage(first.exception)}`,
        )
      }
    }
  }

  /**
   * The bytes dead-lettered from a canonical queue (and its delay queue), undecodable payloads
   * included: what was last written to the queue, as a real broker's dead-letter queue holds it.
   */
  deadLetteredBodies(queueName: string): Uint8Array[] {
    const canonical = qName(queueName)
    const proxies = [
      ...(this.deadLettersByQueue.get(canonical) ?? []),
      ...(this.deadLettersByQueue.get(dqName(canonical)) ?? []),
    ]
    const bodies = proxies.map((p) => (p instanceof StubMessageProxy ? p.body : p.message.encode(this.encoder)))
    for (const r of this.rejected) if (qName(r.queueName) === canonical) bodies.push(r.body)
    return bodies
  }

  /** What a StubConsumer needs of its broker. */
  readonly #host: StubConsumerHost = {
    decode: (body, meta) => decodeOrReport(body, this.encoder, this.logger, meta),
    reject: (payload) => void this.rejected.push(payload),
    deadLetter: (queueName, proxy) => {
      let list = this.deadLettersByQueue.get(queueName)
      if (!list) this.deadLettersByQueue.set(queueName, (list = []))
      list.push(proxy)
    },
  }
}

interface StubConsumerHost {
  decode(body: Uint8Array, meta: Record<string, unknown>): DecodeResult
  reject(payload: RejectedPayload): void
  deadLetter(queueName: string, proxy: MessageProxy): void
}

class StubConsumer implements Consumer {
  readonly queueName: string
  readonly #host: StubConsumerHost
  readonly #queue: StubQueue
  readonly #prefetch: number
  readonly #timeout: number
  #outstanding = 0
  #closed = false
  readonly #slotFreed = new Notifier()

  constructor(host: StubConsumerHost, queueName: string, queue: StubQueue, prefetch: number, timeout: number) {
    this.#host = host
    this.queueName = queueName
    this.#queue = queue
    this.#prefetch = Math.max(1, prefetch)
    this.#timeout = timeout
  }

  async receive(options: ReceiveOptions = {}): Promise<MessageProxy[]> {
    const deadline = Date.now() + this.#timeout
    const signal = options.signal
    for (;;) {
      if (this.#closed || signal?.aborted) return []
      const free = this.#prefetch - this.#outstanding
      if (free > 0 && this.#queue.items.length > 0) {
        const out: MessageProxy[] = []
        for (const body of this.#queue.items.take(free)) {
          const decoded = this.#host.decode(body, { queue: this.queueName })
          if (decoded.ok) {
            out.push(new StubMessageProxy(decoded.message, body, this))
          } else {
            this.#host.reject({ queueName: this.queueName, body, reason: decoded.reason })
            this.#queue.taskDone()
          }
        }
        this.#outstanding += out.length
        if (out.length > 0) return out
        continue
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) return []
      await (free > 0 ? this.#queue.arrived : this.#slotFreed).wait(remaining, signal)
    }
  }

  #settle(): void {
    this.#outstanding = Math.max(0, this.#outstanding - 1)
    this.#slotFreed.notify()
  }

  #own(message: MessageProxy): StubMessageProxy {
    if (message instanceof StubMessageProxy && message.consumer === this) return message
    throw foreignMessageError('StubConsumer', this.queueName, message)
  }

  async ack(message: MessageProxy): Promise<void> {
    this.#own(message)
    this.#settle()
    this.#queue.taskDone()
  }

  async nack(message: MessageProxy): Promise<void> {
    this.#own(message)
    this.#settle()
    this.#host.deadLetter(this.queueName, message)
    this.#queue.taskDone()
  }

  async requeue(messages: readonly MessageProxy[]): Promise<void> {
    const own = messages.map((m) => this.#own(m))
    for (const message of own) {
      this.#settle()
      this.#queue.items.push(message.body)
    }
    if (messages.length > 0) this.#queue.arrived.notify()
  }

  async close(): Promise<void> {
    this.#closed = true
    // Wake a pending receive() so it sees the consumer is closed.
    this.#queue.arrived.notify()
    this.#slotFreed.notify()
  }
}

/** `stub://` URLs build a StubBroker. */
export const stubBrokerPlugin: BrokerPlugin = {
  name: '@tq/core StubBroker',
  schemes: ['stub'],
  create: () => new StubBroker(),
}
