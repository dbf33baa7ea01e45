import {
  DecodeError,
  Message,
  MessageProxy,
  Notifier,
  TqError,
  errorMeta,
  qName,
  sleep,
  xqName,
  type Consumer,
  type ReceiveOptions,
} from '@tq/core'
import { randomUUID } from 'node:crypto'
import { classifyRedisError } from './classify-error.ts'
import type { RedisBroker } from './redis-broker.ts'

/** A delivery from Redis: the message plus the id it has in the queue's list and hash. */
export class RedisMessageProxy<R = unknown> extends MessageProxy<R> {
  /** The id in `<ns>:<queue>` / `<ns>:<queue>.msgs` (normally equal to `options.redisMessageId`). */
  readonly redisId: Buffer
  /** @internal */
  readonly consumer: RedisConsumer

  constructor(message: Message<R>, redisId: Buffer, consumer: RedisConsumer) {
    super(message)
    this.redisId = redisId
    this.consumer = consumer
  }
}

interface PendingOp {
  readonly id: Buffer
  readonly key: string
  resolve(): void
  reject(error: unknown): void
}

/** Ids per script call. */
const BATCH = 1000
/** Pause after a failed fetch (doubles up to 1 s while the connection stays down). */
const FIRST_RETRY_DELAY = 50
/** Fetches of one consumer in flight at once. */
const PIPELINE = 2

const idKey = (id: Buffer): string => id.toString('latin1')

/**
 * Consumes one queue (`q` or `q.DQ`) for one worker. Fetches as many messages as there are
 * free prefetch slots in one script call; acks and nacks that arrive while a batch is in
 * flight go out together in the next one. When the queue is empty it waits for a wake-up
 * (published by tq producers) or `pollInterval`, whichever comes first.
 */
export class RedisConsumer implements Consumer {
  readonly queueName: string
  readonly #broker: RedisBroker
  readonly #prefetch: number
  readonly #timeout: number
  /** Ids fetched and not yet confirmed settled in Redis, by `idKey` (reconcile leaves these alone). */
  readonly #held = new Map<string, Buffer>()
  /** Ids delivered and not yet acked, nacked or requeued by the worker: what prefetch counts. */
  readonly #unsettled = new Set<string>()
  /** A slot freed, or a fetch landed. */
  readonly #changed = new Notifier()
  /** Fetched messages not yet handed to the worker (already counted in `#unsettled`). */
  #ready: RedisMessageProxy[] = []
  /** Fetches in flight, and the prefetch slots they asked for. */
  #fetching = 0
  #requested = 0
  readonly #inFlight = new Set<Promise<void>>()
  readonly #pipelineMin: number
  /** The last fetch's error, for the next `receive()` to act on. */
  #fetchError: TqError | undefined
  /** The wake-up generation at which a fetch found the queue empty (-1: not known empty), and when. */
  #emptyGeneration = -1
  #emptyAt = 0
  readonly #closing = new AbortController()
  readonly #wake: { generation: number; readonly notifier: Notifier }
  #acks: PendingOp[] = []
  #nacks: PendingOp[] = []
  #flushScheduled = false
  #flushDeferred = false
  #flushing: Promise<void> | undefined
  #closed = false
  #retryDelay = FIRST_RETRY_DELAY
  readonly #keys: { queue: string; msgs: string; acks: string; xq: string; xqMsgs: string; channel: string }

  constructor(broker: RedisBroker, queueName: string, options: { prefetch: number; timeout: number }) {
    this.#broker = broker
    this.queueName = queueName
    this.#prefetch = Math.max(1, options.prefetch)
    this.#pipelineMin = Math.max(1, Math.floor(this.#prefetch / 4))
    this.#timeout = options.timeout
    const xq = xqName(qName(queueName))
    this.#keys = {
      queue: broker.key(queueName),
      msgs: broker.key(`${queueName}.msgs`),
      acks: broker.acksKey(queueName),
      xq: broker.key(xq),
      xqMsgs: broker.key(`${xq}.msgs`),
      channel: broker.wakeups ? broker.wakeupChannel(queueName) : '',
    }
    this.#wake = broker.subscribeWakeups(queueName)
  }

  /** Messages delivered and not yet acked, nacked or requeued. */
  get outstanding(): number {
    return this.#unsettled.size
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  /** @internal How many fetched ids Redis has not yet seen settled. */
  get heldCount(): number {
    return this.#held.size
  }

  /** @internal Ids this consumer fetched and Redis has not yet seen settled. */
  heldIds(): IterableIterator<Buffer> {
    return this.#held.values()
  }

  // The worker passes the same signal to every receive(): combine it with ours once. A fresh
  // AbortSignal.any() per call leaks on Node 20 (a long-lived signal never drops its dependants,
  // nodejs/node#55351), which grew a worker's memory by tens of MB per million messages.
  #callerSignal: AbortSignal | undefined
  #combinedSignal: AbortSignal | undefined

  #receiveSignal(caller: AbortSignal | undefined): AbortSignal {
    if (!caller) return this.#closing.signal
    if (caller !== this.#callerSignal || !this.#combinedSignal) {
      this.#callerSignal = caller
      this.#combinedSignal = AbortSignal.any([caller, this.#closing.signal])
    }
    return this.#combinedSignal
  }

  async receive(options: ReceiveOptions = {}): Promise<MessageProxy[]> {
    const deadline = Date.now() + this.#timeout
    const signal = this.#receiveSignal(options.signal)
    for (;;) {
      if (this.#closed || signal.aborted) return []
      if (this.#ready.length > 0) {
        const batch = this.#ready
        this.#ready = []
        // The next batch is on its way while the worker runs this one.
        this.#readAhead()
        return batch
      }
      if (this.#fetchError !== undefined) {
        const error = this.#fetchError
        this.#fetchError = undefined
        if (!error.retryable) throw error
        this.#broker.connectionLost(this.queueName)
        this.#broker.logger.debug('Fetch failed; retrying', { queue: this.queueName, ...errorMeta(error) })
        const remaining = deadline - Date.now()
        if (remaining <= 0) return []
        await sleep(Math.min(remaining, this.#retryDelay), signal)
        this.#retryDelay = Math.min(1000, this.#retryDelay * 2)
        continue
      }
      this.#readAhead()
      const remaining = deadline - Date.now()
      if (remaining <= 0) return []
      if (this.#fetching > 0 || this.#free() <= 0) {
        // A fetch lands, or a slot frees (and another fetch may start).
        await this.#changed.wait(remaining, signal)
        continue
      }
      // Nothing in flight and room to fetch: the queue was empty. Wait for a wake-up (published
      // by tq producers) or the poll interval, then fetch again.
      const idle = this.#emptyAt + this.#broker.pollInterval - Date.now()
      if (idle > 0) await this.#wake.notifier.wait(Math.min(remaining, idle), signal)
      this.#emptyGeneration = -1
    }
  }

  /** Prefetch slots neither holding a delivery nor promised to a fetch in flight. */
  #free(): number {
    return this.#prefetch - this.#unsettled.size - this.#requested
  }

  /**
   * Start fetches for the free prefetch slots. Up to `PIPELINE` fetches travel at once, so the
   * worker is not left idle for a round trip each time its batch runs out: the first fetch takes
   * any free slot, a pipelined one waits until a quarter of the prefetch is free (no trickle of
   * one-message fetches). Nothing starts while the queue is known to be empty.
   */
  #readAhead(): void {
    while (!this.#closed && this.#fetchError === undefined && this.#fetching < PIPELINE) {
      if (this.#emptyGeneration === this.#wake.generation) return
      const free = this.#free()
      if (free <= 0 || (this.#fetching > 0 && free < this.#pipelineMin)) return
      this.#startFetch(free)
    }
  }

  #startFetch(count: number): void {
    const generation = this.#wake.generation
    this.#fetching++
    this.#requested += count
    // Not abortable: a fetch that reached Redis must hand its messages to someone.
    const done = this.#fetch(count).then(
      async (batch) => {
        this.#retryDelay = FIRST_RETRY_DELAY
        if (this.#closed) {
          await this.requeue(batch)
          return
        }
        if (batch.length > 0) {
          for (const proxy of batch) this.#ready.push(proxy)
        } else if (this.#wake.generation === generation) {
          // Empty, and no wake-up arrived since the fetch was sent: wait for one.
          this.#emptyGeneration = generation
          this.#emptyAt = Date.now()
        }
      },
      (error: unknown) => {
        this.#fetchError = classifyRedisError(error)
      },
    )
    const settled = done
      .catch((error: unknown) => {
        this.#broker.logger.warn('Could not requeue messages fetched after close; they stay in flight', {
          queue: this.queueName,
          ...errorMeta(error),
        })
      })
      .finally(() => {
        this.#fetching--
        this.#requested -= count
        this.#inFlight.delete(settled)
        this.#changed.notify()
        if (this.#flushDeferred) {
          this.#flushDeferred = false
          if (this.#acks.length > 0) this.#scheduleFlush()
        }
      })
    this.#inFlight.add(settled)
  }

  /**
   * One fetch. A reconcile of the queue (after a lost connection) waits until no fetch of it by
   * this broker is in flight, so it sees every id its consumers hold and no reply on its way.
   */
  #fetch(count: number): Promise<RedisMessageProxy[]> {
    return this.#broker.sharedFetch(this.queueName, () => this.#fetchNow(count))
  }

  async #fetchNow(count: number): Promise<RedisMessageProxy[]> {
    const broker = this.#broker
    const keys = this.#keys
    // Any pending reconcile already ran in `sharedFetch`, with no other fetch in flight.
    // Maintenance and fetch are written back to back: one round trip.
    const maintenance = broker.rollMaintenance()
      ? broker.maintain(this.queueName).catch((error: unknown) => {
          broker.logger.warn('Redis maintenance failed', { queue: this.queueName, ...errorMeta(error) })
        })
      : undefined
    // Acks waiting for their flush ride on this fetch (one script call instead of two).
    const acks = this.#acks.splice(0, BATCH)
    const call = broker.run(
      'fetch',
      [keys.queue, keys.msgs, keys.acks],
      acks.length === 0 ? [count] : [count, ...acks.map((op) => op.id)],
      true,
    )
    const settling = acks.length === 0 ? undefined : this.#settle(acks, call)
    const reply = (await call) as Array<Buffer | null>
    await settling
    await maintenance
    const out: RedisMessageProxy[] = []
    const undecodable: RedisMessageProxy[] = []
    for (let i = 0; i < reply.length; i += 2) {
      const id = reply[i] as Buffer
      const body = reply[i + 1]
      if (!body) {
        // Dramatiq #266: an id without a payload (the script already dropped it from the ack set).
        broker.logger.warn('Dropped a message id with no payload in Redis', {
          queue: this.queueName,
          redisMessageId: id.toString(),
        })
        continue
      }
      const key = idKey(id)
      this.#held.set(key, id)
      this.#unsettled.add(key)
      let message: Message
      try {
        message = Message.decode(body, broker.encoder)
      } catch (error) {
        const reason = error instanceof DecodeError ? error.message : String(error)
        broker.logger.error('Dead-lettering an undecodable message', {
          queue: this.queueName,
          redisMessageId: id.toString(),
          reason,
          ...errorMeta(error),
        })
        undecodable.push(new RedisMessageProxy(new Message({ queueName: this.queueName, actorName: '' }), id, this))
        continue
      }
      out.push(new RedisMessageProxy(message, id, this))
    }
    for (const proxy of undecodable) {
      this.nack(proxy).catch((error: unknown) => {
        broker.logger.warn('Could not dead-letter an undecodable message; it stays in flight', {
          queue: this.queueName,
          redisMessageId: proxy.redisId.toString(),
          ...errorMeta(error),
        })
      })
    }
    return out
  }

  #own(message: MessageProxy): RedisMessageProxy {
    if (!(message instanceof RedisMessageProxy) || message.consumer !== this) {
      throw new TqError(`Message ${message.messageId} was not delivered by this consumer of ${this.queueName}`)
    }
    return message
  }

  ack(message: MessageProxy): Promise<void> {
    return this.#enqueueOp(this.#acks, this.#own(message))
  }

  nack(message: MessageProxy): Promise<void> {
    return this.#enqueueOp(this.#nacks, this.#own(message))
  }

  #enqueueOp(list: PendingOp[], proxy: RedisMessageProxy): Promise<void> {
    const key = idKey(proxy.redisId)
    // The prefetch slot frees now, so the next fetch can travel with this ack; the id stays
    // held until Redis confirms.
    if (this.#unsettled.delete(key)) this.#changed.notify()
    return new Promise<void>((resolve, reject) => {
      list.push({ id: proxy.redisId, key, resolve, reject })
      this.#scheduleFlush()
    })
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#flushing) return
    this.#flushScheduled = true
    // Everything acked in this turn of the event loop goes out in one call.
    setImmediate(() => {
      this.#flushScheduled = false
      // Acks alone (no nacks) wait for the fetch in flight to land: the next fetch carries them,
      // or, if none starts, the flush scheduled when it lands sends them.
      if (this.#fetching > 0 && this.#nacks.length === 0 && !this.#closed) {
        this.#flushDeferred = true
        return
      }
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = undefined
        // Ops that arrived after the last batch was taken but before this ran.
        if (this.#acks.length > 0 || this.#nacks.length > 0) this.#scheduleFlush()
      })
    })
  }

  async #flush(): Promise<void> {
    const keys = this.#keys
    // Ops that arrive while a batch is in flight go out together in the next one.
    while (this.#acks.length > 0 || this.#nacks.length > 0) {
      const acks = this.#acks
      const nacks = this.#nacks
      this.#acks = []
      this.#nacks = []
      const calls: Promise<void>[] = []
      for (let i = 0; i < acks.length; i += BATCH) {
        const chunk = acks.slice(i, i + BATCH)
        calls.push(
          this.#settle(
            chunk,
            this.#broker.run(
              'ack',
              [keys.acks, keys.msgs],
              chunk.map((op) => op.id),
            ),
          ),
        )
      }
      for (let i = 0; i < nacks.length; i += BATCH) {
        const chunk = nacks.slice(i, i + BATCH)
        calls.push(
          this.#settle(
            chunk,
            this.#broker.run(
              'nack',
              [keys.acks, keys.msgs, keys.xq, keys.xqMsgs],
              chunk.map((op) => op.id),
            ),
          ),
        )
      }
      await Promise.all(calls)
    }
  }

  async #settle(ops: PendingOp[], call: Promise<unknown>): Promise<void> {
    try {
      await call
    } catch (error) {
      // Still held: a retried ack finds the id, and reconcile leaves it alone.
      for (const op of ops) op.reject(error)
      return
    }
    for (const op of ops) {
      this.#held.delete(op.key)
      op.resolve()
    }
    this.#broker.settled()
  }

  /**
   * Move a due delayed message (delivered by this `.DQ` consumer) to its queue and forget the
   * delivery in one script call, so a crash cannot leave it both promoted and in flight.
   */
  async promote(message: MessageProxy, due: Message): Promise<Message> {
    const proxy = this.#own(message)
    const canonical = qName(this.queueName)
    // Like any enqueue, the promoted message gets a new Redis id (in its original position).
    const enqueued = due.copy({ options: { redisMessageId: randomUUID() } })
    const key = idKey(proxy.redisId)
    if (this.#unsettled.delete(key)) this.#changed.notify()
    try {
      await this.#broker.run(
        'promote',
        [this.#keys.acks, this.#keys.msgs, this.#broker.key(canonical), this.#broker.key(`${canonical}.msgs`)],
        [
          this.#broker.wakeups ? this.#broker.wakeupChannel(canonical) : '',
          proxy.redisId,
          enqueued.options.redisMessageId as string,
          Buffer.from(enqueued.encode(this.#broker.encoder)),
        ],
      )
    } catch (error) {
      throw classifyRedisError(error)
    }
    this.#held.delete(key)
    this.#broker.settled()
    return enqueued
  }

  /** Put messages back at the tail of this consumer's queue (delayed ones back on `.DQ`). */
  async requeue(messages: readonly MessageProxy[]): Promise<void> {
    const proxies = messages.map((m) => this.#own(m))
    const keys = this.#keys
    for (let i = 0; i < proxies.length; i += BATCH) {
      const chunk = proxies.slice(i, i + BATCH)
      await this.#broker.run(
        'requeue',
        [keys.acks, keys.queue, keys.msgs],
        [keys.channel, ...chunk.map((p) => p.redisId)],
      )
      for (const proxy of chunk) {
        this.#held.delete(idKey(proxy.redisId))
        this.#unsettled.delete(idKey(proxy.redisId))
      }
    }
    if (proxies.length > 0) {
      this.#changed.notify()
      this.#broker.settled()
    }
  }

  /**
   * Stop receiving. Messages fetched ahead and not yet handed to the worker go back to the
   * queue (so do those of a fetch still on its way); pending acks still go out; messages the
   * worker holds stay in flight until it settles them.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#closing.abort()
    this.#broker.unsubscribeWakeups(this.queueName)
    const ready = this.#ready
    this.#ready = []
    try {
      if (ready.length > 0) await this.requeue(ready)
    } catch (error) {
      this.#broker.logger.warn('Could not requeue messages fetched ahead; they stay in flight', {
        queue: this.queueName,
        ...errorMeta(error),
      })
    }
    await Promise.all(this.#inFlight)
    this.#broker.consumerClosed(this)
    if (this.#flushing) await this.#flushing.catch(() => undefined)
  }
}
