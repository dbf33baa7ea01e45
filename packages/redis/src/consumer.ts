import {
  Message,
  Notifier,
  qName,
  sleep,
  errorMeta,
  type Consumer,
  type Encoder,
  type Logger,
  type MessageProxy,
  type ReceiveOptions,
  type TqError,
} from '@tq/core'
import { Backoff, SignalCombiner, decodeOrReport, foreignMessageError } from '@tq/core/adapter'
import { classifyRedisError } from './classify-error.ts'
import type { FetchGate, HeldIds } from './fetch-gate.ts'
import type { Heartbeat } from './heartbeat.ts'
import type { QueueKeys, RedisKeys } from './keys.ts'
import { RedisMessageProxy, isDeliveryOf, redisMessageId, withNewRedisId } from './message-proxy.ts'
import type { RunScript } from './scripts.ts'
import { BATCH, SettleBatcher } from './settle-batcher.ts'
import type { WakeState, Wakeups } from './wakeups.ts'

/** What a consumer needs of its broker. */
export interface ConsumerHost {
  /** The broker's encoder now (it may be the global one, which can change). */
  encoder(): Encoder
  readonly logger: Logger
  readonly keys: RedisKeys
  /** Milliseconds between fetches of an idle consumer. */
  readonly pollInterval: number
  /** Run a script (with the heartbeat arguments; errors classified). */
  readonly run: RunScript
  readonly gate: FetchGate
  readonly heartbeat: Heartbeat
  readonly wakeups: Wakeups
  /** A consumer settled something: `join()` looks again. */
  settled(): void
  /** A consumer closed (its fetches landed). */
  consumerClosed(consumer: RedisConsumer): void
}

/** Pause after a failed fetch (doubles up to 1 s while the connection stays down). */
const FIRST_RETRY_DELAY = 50
const MAX_RETRY_DELAY = 1000
/** Fetches of one consumer in flight at once. */
const PIPELINE = 2

/**
 * Consumes one queue (`q` or `q.DQ`) for one worker. Fetches as many messages as there are
 * free prefetch slots in one script call; acks and nacks that arrive while a batch is in
 * flight go out together in the next one. When the queue is empty it waits for a wake-up
 * (published by tq producers) or `pollInterval`, whichever comes first.
 */
export class RedisConsumer implements Consumer {
  readonly queueName: string
  readonly #host: ConsumerHost
  readonly #prefetch: number
  readonly #timeout: number
  /** Ids fetched and not yet confirmed settled in Redis (reconcile leaves these alone). */
  readonly #held: HeldIds
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
  readonly #signals = new SignalCombiner(this.#closing.signal)
  readonly #retry = new Backoff({ initial: FIRST_RETRY_DELAY, max: MAX_RETRY_DELAY })
  readonly #wake: WakeState
  readonly #settles: SettleBatcher
  #closed = false
  /** `stopReceiving()` was called: no new fetches, and what a fetch in flight brings back goes back. */
  #stopped = false
  readonly #keys: QueueKeys

  constructor(host: ConsumerHost, queueName: string, held: HeldIds, options: { prefetch: number; timeout: number }) {
    this.#host = host
    this.queueName = queueName
    this.#held = held
    this.#prefetch = Math.max(1, options.prefetch)
    this.#pipelineMin = Math.max(1, Math.floor(this.#prefetch / 4))
    this.#timeout = options.timeout
    this.#keys = host.keys.queueKeys(queueName)
    this.#settles = new SettleBatcher({
      keys: this.#keys,
      run: host.run,
      held,
      fetchWillCarry: () => this.#fetching > 0 && !this.#closed,
      settled: () => host.settled(),
    })
    this.#wake = host.wakeups.subscribe(queueName)
  }

  /** Messages delivered and not yet acked, nacked or requeued. */
  get outstanding(): number {
    return this.#unsettled.size
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed
  }

  async receive(options: ReceiveOptions = {}): Promise<MessageProxy[]> {
    const deadline = Date.now() + this.#timeout
    // The worker passes the same signal to every receive(): combined with ours once.
    const signal = this.#signals.with(options.signal)
    if (signal !== this.#hooked) {
      // One listener per signal (the worker passes the same one every time), not one per wait.
      this.#hooked = signal
      signal.addEventListener('abort', this.#notifyChanged, { once: true })
    }
    // Whether this call waited for a wake-up: the batch then ends an idle spell, and its first
    // message should not wait behind the next fetch's write.
    let woken = false
    for (;;) {
      if (this.#closed || this.#stopped || signal.aborted) return []
      if (this.#ready.length > 0) {
        const batch = this.#ready
        this.#ready = []
        // The next batch is on its way while the worker runs this one. After an idle spell it
        // is sent once the worker has started this batch (the socket write costs tens of µs).
        if (woken) setImmediate(this.#readAheadLater)
        else this.#readAhead()
        return batch
      }
      if (this.#fetchError !== undefined) {
        const error = this.#fetchError
        this.#fetchError = undefined
        if (!error.retryable) throw error
        this.#host.gate.connectionLost(this.queueName)
        this.#host.logger.debug('Fetch failed; retrying', { queue: this.queueName, ...errorMeta(error) })
        const remaining = deadline - Date.now()
        if (remaining <= 0) return []
        await sleep(Math.min(remaining, this.#retry.next()), signal)
        continue
      }
      this.#readAhead()
      const remaining = deadline - Date.now()
      if (remaining <= 0) return []
      if (this.#fetching > 0 || this.#free() <= 0) {
        // A fetch lands, or a slot frees (and another fetch may start); an abort notifies too.
        // A fetch always lands (or fails), so waiting for one needs no timer.
        await this.#changed.wait(this.#fetching > 0 ? undefined : remaining)
        continue
      }
      // Nothing in flight and room to fetch: the queue was empty. Wait for a wake-up (published
      // by tq producers) or the poll interval, then fetch again.
      const idle = this.#emptyAt + this.#host.pollInterval - Date.now()
      if (idle > 0) woken = await this.#wake.notifier.wait(Math.min(remaining, idle), signal)
      this.#emptyGeneration = -1
    }
  }

  readonly #readAheadLater = (): void => this.#readAhead()
  readonly #notifyChanged = (): void => this.#changed.notify()
  /** The receive signal whose abort notifies `#changed`. */
  #hooked: AbortSignal | undefined

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
    while (!this.#closed && !this.#stopped && this.#fetchError === undefined && this.#fetching < PIPELINE) {
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
    const landed = (): void => {
      this.#fetching--
      this.#requested -= count
      this.#inFlight.delete(settled)
      this.#changed.notify()
      this.#settles.fetchLanded()
    }
    // Not abortable: a fetch that reached Redis must hand its messages to someone. A reconcile
    // of the queue (after a lost connection) waits, in the gate, until no fetch of it by this
    // broker is in flight, so it sees every id its consumers hold and no reply on its way.
    // One `then` and no async frame between the reply and the waiting receive(): this is on
    // the path of every batch.
    const settled: Promise<void> = this.#host.gate
      .fetch(this.queueName, () => this.#fetch(count))
      .then(
        (batch) => {
          this.#retry.reset()
          if (this.#closed || this.#stopped)
            return this.#requeueOrWarn(batch, 'fetched after receiving stopped').then(landed)
          if (batch.length > 0) {
            for (const proxy of batch) this.#ready.push(proxy)
          } else if (this.#wake.generation === generation) {
            // Empty, and no wake-up arrived since the fetch was sent: wait for one.
            this.#emptyGeneration = generation
            this.#emptyAt = Date.now()
          }
          landed()
          return undefined
        },
        (error: unknown) => {
          this.#fetchError = classifyRedisError(error)
          landed()
        },
      )
    this.#inFlight.add(settled)
  }

  /** Put `batch` back on the queue, or log that it stays in flight. Never rejects. */
  #requeueOrWarn(batch: RedisMessageProxy[], what: string): Promise<void> {
    return this.requeue(batch).catch((error: unknown) => {
      this.#host.logger.warn(`Could not requeue messages ${what}; they stay in flight`, {
        queue: this.queueName,
        ...errorMeta(error),
      })
    })
  }

  #fetch(count: number): Promise<RedisMessageProxy[]> {
    const host = this.#host
    const keys = this.#keys
    // Any pending reconcile already ran in the gate, with no other fetch in flight.
    // Maintenance and fetch are written back to back: one round trip.
    const maintenance = host.heartbeat.roll() ? host.heartbeat.maintainQuietly(this.queueName) : undefined
    // Acks waiting for their flush ride on this fetch (one script call instead of two).
    const acks = this.#settles.take()
    const call = host.run(
      'fetch',
      [keys.queue, keys.msgs, keys.acks],
      acks.length === 0 ? [count] : [count, ...acks.map((op) => op.id)],
      true,
    )
    // The carried acks are settled by a reaction to `call` registered here, before the one
    // below: by the time the deliveries are handed over, their acks are confirmed.
    if (acks.length > 0) void this.#settles.settle(acks, call)
    if (maintenance === undefined) return call.then((reply) => this.#deliver(reply as Array<Buffer | null>))
    return this.#fetchWithMaintenance(call, maintenance)
  }

  async #fetchWithMaintenance(call: Promise<unknown>, maintenance: Promise<void>): Promise<RedisMessageProxy[]> {
    const reply = (await call) as Array<Buffer | null>
    await maintenance
    return this.#deliver(reply)
  }

  /** The fetched messages as deliveries (undecodable ones dead-lettered). */
  #deliver(reply: Array<Buffer | null>): RedisMessageProxy[] {
    const host = this.#host
    const out: RedisMessageProxy[] = []
    const undecodable: RedisMessageProxy[] = []
    const encoder = host.encoder()
    // What an undecodable message is logged with; the id is only turned into a string then.
    let current: Buffer | undefined
    const meta = {
      queue: this.queueName,
      get redisMessageId() {
        return current?.toString()
      },
    }
    for (let i = 0; i < reply.length; i += 2) {
      const id = reply[i] as Buffer
      const body = reply[i + 1]
      if (!body) {
        // Dramatiq #266: an id without a payload (the script already dropped it from the ack set).
        host.logger.warn('Dropped a message id with no payload in Redis', {
          queue: this.queueName,
          redisMessageId: id.toString(),
        })
        continue
      }
      current = id
      const decoded = decodeOrReport(body, encoder, host.logger, meta)
      const proxy = new RedisMessageProxy(
        decoded.ok ? decoded.message : new Message({ queueName: this.queueName, actorName: '' }),
        id,
        this,
      )
      this.#held.ids.set(proxy.key, id)
      this.#unsettled.add(proxy.key)
      if (decoded.ok) out.push(proxy)
      else undecodable.push(proxy)
    }
    for (const proxy of undecodable) {
      this.nack(proxy).catch((error: unknown) => {
        host.logger.warn('Could not dead-letter an undecodable message; it stays in flight', {
          queue: this.queueName,
          redisMessageId: proxy.redisId.toString(),
          ...errorMeta(error),
        })
      })
    }
    return out
  }

  /** `message` as this consumer's delivery; `InvalidArgumentError` for any other. */
  #own(message: MessageProxy): RedisMessageProxy {
    if (!isDeliveryOf(message, this)) throw foreignMessageError('RedisConsumer', this.queueName, message)
    return message
  }

  ack(message: MessageProxy): Promise<void> {
    if (!isDeliveryOf(message, this)) return this.#foreign(message)
    return this.#settles.ack(message.redisId, this.#release(message))
  }

  nack(message: MessageProxy): Promise<void> {
    if (!isDeliveryOf(message, this)) return this.#foreign(message)
    return this.#settles.nack(message.redisId, this.#release(message))
  }

  #foreign(message: MessageProxy): Promise<never> {
    return Promise.reject(foreignMessageError('RedisConsumer', this.queueName, message))
  }

  /**
   * The prefetch slot of a delivery frees now, so the next fetch can travel with its ack; the
   * id stays held until Redis confirms. Returns its key.
   */
  #release(proxy: RedisMessageProxy): string {
    const key = proxy.key
    if (this.#unsettled.delete(key)) this.#changed.notify()
    return key
  }

  /**
   * Move a due delayed message (delivered by this `.DQ` consumer) to its queue and forget the
   * delivery in one script call, so a crash cannot leave it both promoted and in flight.
   */
  async promote(message: MessageProxy, due: Message): Promise<Message> {
    const proxy = this.#own(message)
    const { keys, run } = this.#host
    const canonical = qName(this.queueName)
    // Like any enqueue, the promoted message gets a new Redis id (in its original position).
    const enqueued = withNewRedisId(due)
    const key = this.#release(proxy)
    try {
      await run(
        'promote',
        [this.#keys.acks, this.#keys.msgs, keys.key(canonical), keys.msgs(canonical)],
        [
          keys.channel(canonical),
          proxy.redisId,
          redisMessageId(enqueued) as string,
          Buffer.from(enqueued.encode(this.#host.encoder())),
        ],
      )
    } catch (error) {
      throw classifyRedisError(error)
    }
    this.#held.ids.delete(key)
    this.#host.settled()
    return enqueued
  }

  /** Put messages back at the tail of this consumer's queue (delayed ones back on `.DQ`). */
  async requeue(messages: readonly MessageProxy[]): Promise<void> {
    const proxies = messages.map((m) => this.#own(m))
    const keys = this.#keys
    for (let i = 0; i < proxies.length; i += BATCH) {
      const chunk = proxies.slice(i, i + BATCH)
      await this.#host.run(
        'requeue',
        [keys.acks, keys.queue, keys.msgs],
        [keys.channel, ...chunk.map((p) => p.redisId)],
      )
      for (const proxy of chunk) {
        this.#held.ids.delete(proxy.key)
        this.#unsettled.delete(proxy.key)
      }
    }
    if (proxies.length > 0) {
      this.#changed.notify()
      this.#host.settled()
    }
  }

  /**
   * The worker stops taking messages: no new fetch, messages fetched ahead go back to the queue
   * now, and so do those of a fetch still on its way when it lands — not after the messages
   * still running finish (`close()`). Acks and nacks keep working until `close()`.
   */
  async stopReceiving(): Promise<void> {
    if (this.#stopped || this.#closed) return
    this.#stopped = true
    this.#changed.notify()
    await this.#returnReady()
  }

  /** Messages fetched ahead and not handed to the worker go back to the queue. Never rejects. */
  #returnReady(): Promise<void> {
    const ready = this.#ready
    this.#ready = []
    return ready.length === 0 ? Promise.resolve() : this.#requeueOrWarn(ready, 'fetched ahead')
  }

  /**
   * Stop receiving. Messages fetched ahead and not yet handed to the worker go back to the
   * queue (so do those of a fetch still on its way); pending acks still go out; messages the
   * worker holds stay in flight until it settles them.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#held.closed = true
    this.#closing.abort()
    this.#host.wakeups.unsubscribe(this.queueName)
    await this.#returnReady()
    await Promise.all(this.#inFlight)
    this.#host.consumerClosed(this)
    const flushing = this.#settles.flushing
    if (flushing) await flushing.catch(() => undefined)
  }
}
