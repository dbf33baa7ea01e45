import { Notifier } from '../notifier.ts'
import type { RateLimiterBackend } from './backend.ts'

interface Entry {
  value: number
  /** Unix ms after which the entry is gone. */
  expiresAt: number
}

/** Expired entries are swept after this many writes (reads drop expired entries too). */
const SWEEP_EVERY = 1000

/**
 * An in-memory {@link RateLimiterBackend} for tests and single-process use. Each operation
 * runs synchronously inside its promise, so it is atomic with respect to every other task in
 * the process. Keys expire after their ttl; `wait` is woken by `waitNotify`, never by polling.
 *
 * It follows the Redis backend's semantics: `waitNotify` pushes an event that stays for its
 * ttl, so a `wait` that starts after the notification still sees it.
 */
export class StubRateLimiterBackend implements RateLimiterBackend {
  readonly #counters = new Map<string, Entry>()
  /** Notification counts (Redis: the `x` entries of a list). */
  readonly #events = new Map<string, Entry>()
  readonly #notifiers = new Map<string, Notifier>()
  #writesSinceSweep = 0

  async add(key: string, value: number, ttl: number): Promise<boolean> {
    if (this.#read(this.#counters, key) !== undefined) return false
    this.#write(this.#counters, key, value, ttl)
    return true
  }

  async incr(key: string, amount: number, maximum: number, ttl: number): Promise<boolean> {
    const value = (this.#read(this.#counters, key) ?? 0) + amount
    if (value > maximum) return false
    this.#write(this.#counters, key, value, ttl)
    return true
  }

  async decr(key: string, amount: number, minimum: number, ttl: number): Promise<boolean> {
    const value = (this.#read(this.#counters, key) ?? 0) - amount
    if (value < minimum) return false
    this.#write(this.#counters, key, value, ttl)
    return true
  }

  async incrAndSum(key: string, keys: () => string[], amount: number, maximum: number, ttl: number): Promise<boolean> {
    const value = (this.#read(this.#counters, key) ?? 0) + amount
    if (value > maximum) return false
    let sum = amount
    for (const k of keys()) sum += this.#read(this.#counters, k) ?? 0
    if (sum > maximum) return false
    this.#write(this.#counters, key, value, ttl)
    return true
  }

  async wait(key: string, timeout?: number): Promise<boolean> {
    if ((this.#read(this.#events, key) ?? 0) > 0) return true
    let notifier = this.#notifiers.get(key)
    if (!notifier) this.#notifiers.set(key, (notifier = new Notifier()))
    try {
      return await notifier.wait(timeout)
    } finally {
      if (notifier.waiting === 0) this.#notifiers.delete(key)
    }
  }

  async waitNotify(key: string, ttl: number): Promise<void> {
    this.#write(this.#events, key, (this.#read(this.#events, key) ?? 0) + 1, ttl)
    this.#notifiers.get(key)?.notify()
  }

  /** The current value of a counter (`undefined` if absent or expired). For tests and debugging. */
  peek(key: string): number | undefined {
    return this.#read(this.#counters, key)
  }

  /** Drop every key. */
  clear(): void {
    this.#counters.clear()
    this.#events.clear()
  }

  #read(map: Map<string, Entry>, key: string): number | undefined {
    const entry = map.get(key)
    if (!entry) return undefined
    if (entry.expiresAt <= Date.now()) {
      map.delete(key)
      return undefined
    }
    return entry.value
  }

  #write(map: Map<string, Entry>, key: string, value: number, ttl: number): void {
    map.set(key, { value, expiresAt: Date.now() + ttl })
    if (++this.#writesSinceSweep >= SWEEP_EVERY) this.#sweep()
  }

  #sweep(): void {
    this.#writesSinceSweep = 0
    const now = Date.now()
    for (const map of [this.#counters, this.#events]) {
      for (const [key, entry] of map) if (entry.expiresAt <= now) map.delete(key)
    }
  }
}
