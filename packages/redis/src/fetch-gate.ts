import { Notifier, type Logger } from '@tq/core'
import type { RedisKeys } from './keys.ts'
import type { RunScript } from './scripts.ts'

/** The ids one consumer fetched and Redis has not yet seen settled, by `idKey` (reconcile leaves these alone). */
export class HeldIds {
  readonly queueName: string
  readonly ids: Map<string, Buffer> = new Map()
  /** Set when the consumer closed: it is forgotten once its last acks are confirmed. */
  closed = false

  constructor(queueName: string) {
    this.queueName = queueName
  }
}

interface Gate {
  /** Fetches of the queue in flight. */
  active: number
  readonly drained: Notifier
  reconciling: Promise<void> | undefined
}

export interface FetchGateOptions {
  readonly keys: RedisKeys
  readonly logger: Logger
  readonly run: RunScript
}

/**
 * Fetches of each queue pass a gate, so that a lost connection is repaired without a race:
 * fetches run concurrently, but after a command on the queue may have lost its reply, a
 * reconcile first waits for every fetch in flight to settle, runs alone — requeueing ids in this
 * broker's ack set that none of its consumers holds, what a fetch whose reply was lost left
 * behind — and only then lets new fetches start.
 */
export class FetchGate {
  readonly #options: FetchGateOptions
  /** Queues whose ack set may hold ids no consumer knows about. */
  readonly #lost = new Set<string>()
  readonly #gates = new Map<string, Gate>()
  /** The ids of consumers that may hold fetched ids (open ones, and closed ones with acks in flight). */
  readonly #holders = new Set<HeldIds>()

  constructor(options: FetchGateOptions) {
    this.#options = options
  }

  /** The held ids of a new consumer of `queueName`, which reconciles leave alone. */
  holder(queueName: string): HeldIds {
    const held = new HeldIds(queueName)
    this.#holders.add(held)
    return held
  }

  /** A command on `queueName` may have lost its reply: reconcile before the next fetch. */
  connectionLost(queueName: string): void {
    this.#lost.add(queueName)
  }

  /** Run a fetch of `queueName` through its gate. */
  fetch<T>(queueName: string, fetch: () => Promise<T>): Promise<T> {
    let gate = this.#gates.get(queueName)
    if (!gate) {
      gate = { active: 0, drained: new Notifier(), reconciling: undefined }
      this.#gates.set(queueName, gate)
    }
    // Nearly always: no reconcile pending or running, and the fetch starts at once.
    if (!gate.reconciling && !this.#lost.has(queueName)) return this.#enter(gate, fetch)
    return this.#reconcileThenFetch(gate, queueName, fetch)
  }

  async #reconcileThenFetch<T>(gate: Gate, queueName: string, fetch: () => Promise<T>): Promise<T> {
    for (;;) {
      if (gate.reconciling) {
        await gate.reconciling
        continue
      }
      if (!this.#lost.has(queueName)) break
      if (gate.active > 0) {
        await gate.drained.wait()
        continue
      }
      const reconciling = this.#reconcile(queueName)
      // Others wait for it whatever its outcome; only this caller sees its error.
      gate.reconciling = reconciling.catch(() => undefined)
      try {
        await reconciling
      } finally {
        gate.reconciling = undefined
      }
    }
    return this.#enter(gate, fetch)
  }

  /** Run `fetch` counted as active in the gate (synchronously from the last check). */
  #enter<T>(gate: Gate, fetch: () => Promise<T>): Promise<T> {
    gate.active++
    const leave = (): void => {
      gate.active--
      if (gate.active === 0) gate.drained.notify()
    }
    let running: Promise<T>
    try {
      running = fetch()
    } catch (error) {
      leave()
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the fetch's error, as thrown
      return Promise.reject(error)
    }
    return running.then(
      (value) => {
        leave()
        return value
      },
      (error: unknown) => {
        leave()
        throw error
      },
    )
  }

  async #reconcile(queueName: string): Promise<void> {
    if (!this.#lost.delete(queueName)) return
    const { keys, run, logger } = this.#options
    const held: Buffer[] = []
    for (const holder of this.#holders) {
      // A closed consumer still holds ids until its last acks are confirmed.
      if (holder.closed && holder.ids.size === 0) this.#holders.delete(holder)
      else if (holder.queueName === queueName) held.push(...holder.ids.values())
    }
    let requeued: number
    try {
      requeued = Number(
        await run(
          'reconcile',
          [keys.acks(queueName), keys.key(queueName), keys.msgs(queueName)],
          [keys.channel(queueName), ...held],
        ),
      )
    } catch (error) {
      this.#lost.add(queueName)
      throw error
    }
    if (requeued > 0) {
      logger.warn(`Requeued ${requeued} message(s) fetched by a command whose reply was lost`, { queue: queueName })
    }
  }
}
