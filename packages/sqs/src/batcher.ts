import { errorMeta, sleep, type Logger, type TqError } from '@tq/core'
import { computeBackoff } from '@tq/core/adapter'

/** The outcome of one entry of a batch call: done, or failed (retryable or not). */
export type EntryResult = { ok: true } | { ok: false; error: TqError }

interface Pending<T> {
  item: T
  attempts: number
  resolve: () => void
  reject: (error: unknown) => void
}

export interface BatcherOptions<T> {
  /** Send one batch (at most `maxSize` items); returns one result per item, in order. Throws if the whole call failed. */
  run: (items: T[]) => Promise<EntryResult[]>
  /** Map a thrown error to a `TqError` (to tell whether it is retryable). */
  classify: (error: unknown) => TqError
  /** Items per call (SQS: 10). */
  maxSize?: number
  /** Milliseconds to wait for more items before sending a partial batch. */
  delay?: number
  /** Attempts per item before its promise rejects. */
  attempts?: number
  /** Milliseconds before the first retry (doubles on each). */
  retryDelay?: number
  logger: Logger
  what: string
}

/**
 * Coalesces single operations (delete, change visibility) issued close together into batch
 * calls. Each `add()` resolves when its entry succeeded; failed entries that can succeed on a
 * retry are retried, others reject with the classified error.
 */
export class Batcher<T> {
  readonly #run: BatcherOptions<T>['run']
  readonly #classify: BatcherOptions<T>['classify']
  readonly #maxSize: number
  readonly #delay: number
  readonly #attempts: number
  readonly #retryDelay: number
  readonly #logger: Logger
  readonly #what: string
  #queue: Pending<T>[] = []
  #timer: NodeJS.Timeout | undefined
  readonly #inFlight = new Set<Promise<void>>()

  constructor(options: BatcherOptions<T>) {
    this.#run = options.run
    this.#classify = options.classify
    this.#maxSize = options.maxSize ?? 10
    this.#delay = options.delay ?? 5
    this.#attempts = options.attempts ?? 4
    this.#retryDelay = options.retryDelay ?? 100
    this.#logger = options.logger
    this.#what = options.what
  }

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#enqueue({ item, attempts: 0, resolve, reject })
    })
  }

  #enqueue(pending: Pending<T>): void {
    this.#queue.push(pending)
    if (this.#queue.length >= this.#maxSize) this.#flush()
    else this.#timer ??= setTimeout(() => this.#flush(), this.#delay)
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxSize)
      const call = this.#send(batch).finally(() => this.#inFlight.delete(call))
      this.#inFlight.add(call)
    }
  }

  async #send(batch: Pending<T>[]): Promise<void> {
    let results: EntryResult[]
    try {
      results = await this.#run(batch.map((p) => p.item))
    } catch (caught) {
      const error = this.#classify(caught)
      results = batch.map(() => ({ ok: false, error }))
    }
    const retry: Pending<T>[] = []
    batch.forEach((p, i) => {
      const result = results[i] ?? { ok: false, error: this.#classify(new Error('No result for a batch entry')) }
      if (result.ok) return p.resolve()
      p.attempts++
      if (result.error.retryable && p.attempts < this.#attempts) retry.push(p)
      else p.reject(result.error)
    })
    if (retry.length > 0) {
      // retryDelay, doubled for each earlier attempt of the first entry to retry.
      const attempts = (retry[0] as Pending<T>).attempts - 1
      const wait = computeBackoff(attempts, { factor: this.#retryDelay, jitter: false, maxBackoff: Infinity })
      this.#logger.warn(`Retrying ${retry.length} ${this.#what} entr${retry.length === 1 ? 'y' : 'ies'} in ${wait} ms`)
      await sleep(wait)
      for (const p of retry) this.#enqueue(p)
    }
  }

  /** Send what is pending now and wait for every call in flight (retries included). */
  async drain(): Promise<void> {
    for (;;) {
      this.#flush()
      if (this.#inFlight.size === 0) return
      await Promise.all([...this.#inFlight]).catch((error: unknown) => {
        this.#logger.debug(`A ${this.#what} batch failed while draining`, errorMeta(error))
      })
    }
  }
}
