import type { AnyActor } from './actor.ts'
import type { Broker, Consumer } from './broker.ts'
import { ActorNotFoundError, ShutdownError, SkipMessage, TqError } from './errors.ts'
import { Heap } from './internal/heap.ts'
import { Notifier, sleep } from './notifier.ts'
import { errorMeta, type Logger } from './logger.ts'
import type { MessageProxy } from './message-proxy.ts'
import type { Middleware } from './middleware/middleware.ts'
import { isDelayQueue, qName } from './queue-names.ts'
import { logActorFailure } from './worker/failure-log.ts'
import { runActor } from './worker/run-actor.ts'
import { settleMessage, type SettleContext } from './worker/settle.ts'

export interface WorkerOptions {
  /** Canonical queue names to consume (with their delay queues). Default: every declared queue. */
  queues?: Iterable<string>
  /** Messages processed at once in this process (default 8). */
  concurrency?: number
  /** Milliseconds a consumer waits for a message before checking for shutdown (default 1000). */
  workerTimeout?: number
  /** Unacked messages per queue consumer (default `concurrency * 2`). */
  queuePrefetch?: number
  /** Unacked messages per delay-queue consumer (default `min(concurrency * 1000, 65535)`). */
  delayPrefetch?: number
  /** Milliseconds to wait before restarting a consumer that failed (default 3000). */
  consumerRestartDelay?: number
  /**
   * Longest pause (ms) between retries of an ack/nack that hit a connection error (default
   * 5000). The first retry comes after 100 ms and the pause doubles up to this, so a blip costs
   * milliseconds while a long outage is not hammered.
   */
  ackRetryDelay?: number
  logger?: Logger
}

export interface WorkerStopOptions {
  /** Milliseconds to let in-flight messages finish (default 600 000). */
  timeout?: number
}

/** Counters a worker keeps, for status lines and metrics. */
export interface WorkerStats {
  processed: number
  failed: number
  skipped: number
  inFlight: number
  queued: number
  delayed: number
}

interface ConsumerState {
  queueName: string
  consumer: Consumer
  running: boolean
  loop: Promise<void> | undefined
  /** Delayed messages held until their eta. */
  delayed: Heap<{ eta: number; proxy: MessageProxy }>
  delayTimer: NodeJS.Timeout | undefined
  delayTimerAt: number
  stopSignal: AbortController
}

interface WorkItem {
  priority: number
  seq: number
  proxy: MessageProxy
  actor: AnyActor
  state: ConsumerState
}

const MAX_TIMER = 2 ** 31 - 1

/**
 * Consumes messages from a broker's queues and runs their actors, up to `concurrency` at once.
 * Messages are processed in actor `priority` order (lower first), FIFO within a priority.
 * Delayed messages are held until their eta and then moved to their queue.
 */
export class Worker {
  readonly broker: Broker
  readonly concurrency: number
  readonly workerTimeout: number
  readonly queuePrefetch: number
  readonly delayPrefetch: number
  readonly logger: Logger
  readonly #whitelist: Set<string> | undefined
  readonly #consumerRestartDelay: number
  readonly #settleContext: SettleContext
  readonly #consumers = new Map<string, ConsumerState>()
  readonly #work = new Heap<WorkItem>((a, b) => a.priority < b.priority || (a.priority === b.priority && a.seq < b.seq))
  readonly #inFlight = new Set<WorkItem>()
  /** Acks and nacks handed to their consumer and not yet confirmed (or given up on). */
  readonly #settling = new Set<Promise<void>>()
  readonly #settlingLimit: number
  #stopDeadline = Infinity
  readonly #changed = new Notifier()
  readonly #resumed = new Notifier()
  #seq = 0
  #started = false
  #stopping = false
  #paused = false
  #pumping = false
  #hook: Middleware | undefined
  readonly #stats = { processed: 0, failed: 0, skipped: 0 }

  constructor(broker: Broker, options: WorkerOptions = {}) {
    this.broker = broker
    this.concurrency = Math.max(1, options.concurrency ?? 8)
    this.workerTimeout = options.workerTimeout ?? 1000
    this.queuePrefetch = options.queuePrefetch ?? Math.min(this.concurrency * 2, 65535)
    this.delayPrefetch = options.delayPrefetch ?? Math.min(this.concurrency * 1000, 65535)
    this.#whitelist = options.queues ? new Set([...options.queues].map(qName)) : undefined
    this.#consumerRestartDelay = options.consumerRestartDelay ?? 3000
    // Unconfirmed acks only pile up when the broker stops confirming: stop taking work then.
    this.#settlingLimit = this.concurrency + this.queuePrefetch
    this.logger = (options.logger ?? broker.logger).child({ component: 'worker' })
    this.#settleContext = {
      broker,
      logger: this.logger,
      ackRetryDelay: options.ackRetryDelay ?? 5000,
      deadline: () => this.#stopDeadline,
    }
  }

  get stats(): WorkerStats {
    let delayed = 0
    for (const s of this.#consumers.values()) delayed += s.delayed.size
    return { ...this.#stats, inFlight: this.#inFlight.size, queued: this.#work.size, delayed }
  }

  /** The queues (canonical and delay) this worker consumes. */
  get consumedQueues(): string[] {
    return [...this.#consumers.keys()]
  }

  get paused(): boolean {
    return this.#paused
  }

  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.broker.emitBefore('beforeWorkerBoot', this)
    // Consumers follow queue declarations, including ones made after start (replayed by addMiddleware).
    this.#hook = {
      afterDeclareQueue: (_b, queueName) => this.#addConsumer(queueName),
      afterDeclareDelayQueue: (_b, queueName) => this.#addConsumer(queueName),
    }
    this.broker.addMiddleware(this.#hook)
    await this.broker.emitAfter('afterWorkerBoot', this)
    this.logger.debug('Worker started', { queues: this.consumedQueues, concurrency: this.concurrency })
  }

  #addConsumer(queueName: string): void {
    if (this.#stopping || this.#consumers.has(queueName)) return
    if (this.#whitelist && !this.#whitelist.has(qName(queueName))) return
    const delay = isDelayQueue(queueName)
    const consumer = this.broker.consume(queueName, {
      prefetch: delay ? this.delayPrefetch : this.queuePrefetch,
      timeout: this.workerTimeout,
    })
    const state: ConsumerState = {
      queueName,
      consumer,
      running: true,
      loop: undefined,
      delayed: new Heap((a, b) => a.eta < b.eta),
      delayTimer: undefined,
      delayTimerAt: Infinity,
      stopSignal: new AbortController(),
    }
    this.#consumers.set(queueName, state)
    state.loop = this.#consumeLoop(state)
  }

  async #consumeLoop(state: ConsumerState): Promise<void> {
    // Fetch from the next turn of the event loop: what follows `await worker.start()` (a boot
    // log line, signal handlers) runs before the first actor, even on an in-memory broker.
    await new Promise((resolve) => setImmediate(resolve))
    while (state.running) {
      if (this.#paused) {
        await this.#resumed.wait(this.workerTimeout, state.stopSignal.signal)
        continue
      }
      let batch: MessageProxy[]
      try {
        batch = await state.consumer.receive({ signal: state.stopSignal.signal })
      } catch (error) {
        if (!state.running) break
        this.logger.error(`Consumer of ${state.queueName} failed; restarting in ${this.#consumerRestartDelay} ms`, {
          queue: state.queueName,
          ...errorMeta(error),
        })
        await sleep(this.#consumerRestartDelay, state.stopSignal.signal)
        continue
      }
      // Queue the whole batch before starting any of it, so priorities apply across the batch.
      for (const proxy of batch) {
        const holding = this.#handleDelivery(state, proxy)
        if (holding) await holding
      }
      this.#pump()
    }
  }

  /** Queue a delivery for work (or hold a delayed one): a promise only when a delay hook waits. */
  #handleDelivery(state: ConsumerState, proxy: MessageProxy): Promise<void> | undefined {
    const options = proxy.options
    if ('eta' in options) {
      const eta = options.eta as unknown
      if (eta === null || eta === undefined) delete options.eta
      else return this.#hold(state, proxy, eta)
    }
    const actor = this.broker.actors.get(proxy.actorName)
    if (!actor) {
      const error = new ActorNotFoundError(proxy.actorName)
      this.logger.error(`Dead-lettering message for unknown actor ${proxy.actorName}`, {
        messageId: proxy.messageId,
        queue: state.queueName,
        ...errorMeta(error),
      })
      proxy.fail()
      proxy.stuffException(error)
      this.#settle(state, proxy)
      return undefined
    }
    this.#work.push({ priority: actor.priority, seq: this.#seq++, proxy, actor, state })
    return undefined
  }

  async #hold(state: ConsumerState, proxy: MessageProxy, eta: unknown): Promise<void> {
    if (typeof eta !== 'number' || !Number.isFinite(eta)) {
      this.logger.warn('Message has a non-numeric eta; running it now', { messageId: proxy.messageId, eta })
      eta = Date.now()
    }
    await this.broker.emitBefore('beforeDelayMessage', proxy)
    state.delayed.push({ eta: eta as number, proxy })
    this.#scheduleDelayed(state)
  }

  #scheduleDelayed(state: ConsumerState): void {
    const next = state.delayed.peek()
    if (!next || !state.running) return
    if (state.delayTimer && state.delayTimerAt <= next.eta) return
    if (state.delayTimer) clearTimeout(state.delayTimer)
    state.delayTimerAt = next.eta
    state.delayTimer = setTimeout(
      () => {
        state.delayTimer = undefined
        state.delayTimerAt = Infinity
        void this.#promoteDue(state)
      },
      Math.min(MAX_TIMER, Math.max(0, next.eta - Date.now())),
    )
  }

  async #promoteDue(state: ConsumerState): Promise<void> {
    const now = Date.now()
    const due: MessageProxy[] = []
    while (state.delayed.size > 0 && (state.delayed.peek() as { eta: number }).eta <= now) {
      due.push((state.delayed.pop() as { proxy: MessageProxy }).proxy)
    }
    for (const proxy of due) {
      try {
        await this.broker.promoteDelayed(state.consumer, proxy)
      } catch (error) {
        // Leave it unacked: the broker redelivers it (at worst the copy ran and it runs again).
        this.logger.error('Failed to move a delayed message to its queue', {
          messageId: proxy.messageId,
          ...errorMeta(error),
        })
      }
    }
    this.#changed.notify()
    this.#scheduleDelayed(state)
  }

  #pump(): void {
    // A message that finishes synchronously (skipped by a before hook) pumps again: the loop
    // below picks that up instead of recursing.
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (
        !this.#paused &&
        !this.#stopping &&
        this.#inFlight.size < this.concurrency &&
        this.#work.size > 0 &&
        this.#settling.size < this.#settlingLimit
      ) {
        const item = this.#work.pop() as WorkItem
        this.#inFlight.add(item)
        this.#process(item)
      }
    } finally {
      this.#pumping = false
    }
  }

  /**
   * Run one message: the before hooks, the actor, the after hooks, then hand it to its consumer
   * to settle. Written as callbacks rather than one async function: with the default stack's
   * synchronous hooks a message costs the actor's promise and one more, not one per hook.
   * Never throws.
   */
  #process(item: WorkItem): void {
    let before: Promise<void> | undefined
    try {
      before = this.broker.runBefore('beforeProcessMessage', item.proxy)
    } catch (caught) {
      this.#failed(item, caught)
      return
    }
    if (before === undefined) this.#run(item)
    else
      before.then(
        () => this.#run(item),
        (caught: unknown) => this.#failed(item, caught),
      )
  }

  #run(item: WorkItem): void {
    // A before hook may have failed the message without SkipMessage: its actor does not run.
    if (item.proxy.failed) {
      this.#succeeded(item, undefined)
      return
    }
    runActor(this.broker, item.actor, item.proxy).then(
      (result) => this.#succeeded(item, result),
      (caught: unknown) => this.#failed(item, caught),
    )
  }

  #succeeded(item: WorkItem, result: unknown): void {
    this.#stats.processed++
    this.#afterHooks(item, this.broker.runAfter('afterProcessMessage', item.proxy, { result }))
  }

  #failed(item: WorkItem, caught: unknown): void {
    const { proxy, actor } = item
    let after: Promise<void> | undefined
    try {
      if (caught instanceof SkipMessage) {
        this.#stats.skipped++
        this.logger.debug('Message skipped', { messageId: proxy.messageId })
        after = this.broker.runAfter('afterSkipMessage', proxy)
      } else {
        const error = caught === undefined || caught === null ? new Error(`Actor threw ${String(caught)}`) : caught
        this.#stats.failed++
        proxy.stuffException(error)
        logActorFailure(this.logger, actor, proxy, error)
        after = this.broker.runAfter('afterProcessMessage', proxy, { exception: error })
      }
    } catch {
      // Only a logger that throws gets here. The message still settles and frees its slot, and
      // is dead-lettered rather than acked: its retry may not have been sent.
      proxy.fail()
      after = undefined
    }
    this.#afterHooks(item, after)
  }

  /** Once the after hooks are done (`after` never rejects), settle the message and free its slot. */
  #afterHooks(item: WorkItem, after: Promise<void> | undefined): void {
    if (after === undefined) this.#finish(item)
    else void after.then(() => this.#finish(item))
  }

  // The slot frees once the ack is handed to the consumer, not when the broker confirms it
  // (as Dramatiq's worker threads do): at low concurrency the next message runs during the
  // ack's round trip, and the consumer can send the ack together with its next fetch.
  #finish(item: WorkItem): void {
    this.#settle(item.state, item.proxy)
    this.#inFlight.delete(item)
    this.#changed.notify()
    this.#pump()
  }

  #settle(state: ConsumerState, proxy: MessageProxy): void {
    const done = (): void => {
      this.#settling.delete(settled)
      this.#changed.notify()
      this.#pump()
    }
    // settleMessage never rejects.
    const settled: Promise<void> = settleMessage(this.#settleContext, state.consumer, proxy).then(done, done)
    this.#settling.add(settled)
  }

  /** Stop taking new messages from the work queue (consumers stop fetching too). */
  pause(): void {
    this.#paused = true
  }

  resume(): void {
    this.#paused = false
    this.#resumed.notify()
    this.#pump()
  }

  /**
   * Wait until every received message is processed and no delayed message is held. Meant for
   * tests, usually after `broker.join(queue)`.
   */
  async join(options: { timeout?: number } = {}): Promise<void> {
    const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout
    for (;;) {
      let delayed = 0
      for (const s of this.#consumers.values()) delayed += s.delayed.size
      if (this.#work.size === 0 && this.#inFlight.size === 0 && this.#settling.size === 0 && delayed === 0) return
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new TqError('Worker did not become idle in time')
      await this.#changed.wait(Math.min(remaining, 1000))
    }
  }

  /**
   * Stop gracefully: shutdown hooks run (opted-in actors see their signal fire), every message
   * received but not started — including delayed ones — goes back to the broker at once, and
   * in-flight messages get `timeout` ms to finish.
   */
  async stop(options: WorkerStopOptions = {}): Promise<void> {
    if (!this.#started || this.#stopping) return
    const timeout = options.timeout ?? 600_000
    this.#stopping = true
    this.logger.debug('Worker stopping', { inFlight: this.#inFlight.size, queued: this.#work.size })
    await this.broker.emitBefore('beforeWorkerShutdown', this)
    if (this.#hook) this.broker.removeMiddleware(this.#hook)

    // 1. Consumers stop fetching; a batch that arrives meanwhile is handled like any other.
    for (const state of this.#consumers.values()) {
      state.running = false
      state.stopSignal.abort()
      if (state.delayTimer) clearTimeout(state.delayTimer)
    }
    await Promise.all([...this.#consumers.values()].map((s) => s.loop ?? Promise.resolve()))
    await Promise.all(
      [...this.#consumers.values()].map(async (state) => {
        try {
          await state.consumer.stopReceiving?.()
        } catch (error) {
          this.logger.warn(`Failed to stop receiving from ${state.queueName}`, errorMeta(error))
        }
      }),
    )

    // 2. Everything received but not started goes back to its queue now, not after the running
    //    messages finish: other workers can take it meanwhile, and a forced exit strands nothing.
    const byConsumer = new Map<ConsumerState, MessageProxy[]>()
    for (const item of this.#work.drain()) {
      const list = byConsumer.get(item.state) ?? []
      list.push(item.proxy)
      byConsumer.set(item.state, list)
    }
    for (const state of this.#consumers.values()) {
      const list = byConsumer.get(state) ?? []
      for (const d of state.delayed.drain()) list.push(d.proxy)
      if (list.length > 0) {
        try {
          await state.consumer.requeue(list)
        } catch (error) {
          this.logger.error(
            `Failed to requeue ${list.length} message(s) of ${state.queueName}; the broker will redeliver them`,
            errorMeta(error),
          )
        }
      }
    }
    // 3. In-flight messages finish and their acks are confirmed (or the timeout passes).
    const deadline = Date.now() + timeout
    this.#stopDeadline = deadline
    while (this.#inFlight.size > 0) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) {
        this.logger.warn(
          `${this.#inFlight.size} message(s) still running after ${timeout} ms; the broker will redeliver them`,
        )
        for (const item of this.#inFlight)
          item.proxy.abort(new ShutdownError('Worker stopped before the message finished'))
        break
      }
      await this.#changed.wait(remaining)
    }
    while (this.#settling.size > 0) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) {
        this.logger.warn(
          `${this.#settling.size} ack(s)/nack(s) not confirmed after ${timeout} ms; the broker will redeliver those messages`,
        )
        break
      }
      await this.#changed.wait(remaining)
    }

    await Promise.all(
      [...this.#consumers.values()].map(async (state) => {
        try {
          await state.consumer.close()
        } catch (error) {
          this.logger.warn(`Failed to close consumer of ${state.queueName}`, errorMeta(error))
        }
      }),
    )
    this.#consumers.clear()
    this.#changed.notify()
    await this.broker.emitAfter('afterWorkerShutdown', this)
    this.logger.debug('Worker stopped', { ...this.#stats })
  }
}
