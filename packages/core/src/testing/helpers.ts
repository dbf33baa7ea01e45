import { randomBytes } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import { createLogger, type LogEntry, type Logger } from '../logger.ts'

/** A queue name no other test (or test process) uses. */
export function uniqueQueueName(prefix = 'tq_test'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`
}

/**
 * Resolve once `predicate` holds, checking every `interval` ms; reject after `timeout` ms
 * with `message`. For state that has no event to wait on (a queue count in another process).
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  {
    timeout = 5000,
    interval = 10,
    message = 'condition',
  }: { timeout?: number; interval?: number; message?: string } = {},
): Promise<void> {
  const deadline = Date.now() + timeout
  for (;;) {
    if (await predicate()) return
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeout} ms waiting for ${message}`)
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}

/**
 * Counts what actors processed, by key, and lets a test wait for a total without sleeping.
 */
export class Ledger<K = string> {
  readonly counts: Map<K, number> = new Map()
  readonly order: K[] = []
  #waiters: Array<{ total: number; resolve: () => void }> = []

  record(key: K): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
    this.order.push(key)
    this.#waiters = this.#waiters.filter((w) => {
      if (this.order.length >= w.total) w.resolve()
      return this.order.length < w.total
    })
  }

  get total(): number {
    return this.order.length
  }

  /** Keys seen more than once. */
  get duplicates(): K[] {
    return [...this.counts].filter(([, n]) => n > 1).map(([k]) => k)
  }

  /** Resolves when `total` records have been made; rejects after `timeout` ms. */
  waitForTotal(total: number, timeout = 10_000): Promise<void> {
    if (this.order.length >= total) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`Ledger saw ${this.order.length} of ${total} records within ${timeout} ms`)),
        timeout,
      )
      this.#waiters.push({
        total,
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
      })
    })
  }
}

/** A logger that keeps every entry, for asserting on logs. */
export function createCapturingLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = []
  const logger = createLogger((entry) => entries.push(entry))
  return Object.assign(logger, { entries })
}

/** A promise with its resolve function, for actors that block until a test releases them. */
export function deferred<T = void>(): {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (e: unknown) => void
} {
  let resolve!: (value: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** A loopback port nothing listens on (at the time of the call): for connection-refused tests. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** What `promise` rejects with, or `undefined` if it resolves: for asserting on the error itself. */
export function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  )
}
