import { Notifier } from '../notifier.ts'
import { Missing, ResultBackendBase, type ResultBackendOptions } from './backend.ts'

interface Entry {
  value: Uint8Array
  /** Unix ms after which the entry is gone. */
  expiresAt: number
}

/** Expired entries are swept after this many stores (reads drop expired entries too). */
const SWEEP_EVERY = 1000

/**
 * An in-memory result backend for tests and single-process use. Each instance has its own
 * store (unlike Dramatiq's, whose store is shared by every instance). Entries expire after
 * their ttl (in ms, not truncated to seconds), and a blocking read wakes as soon as the result
 * is stored rather than polling.
 *
 * Values are kept encoded, so they go through the same encoder as with a real backend: what
 * JSON cannot carry is lost here too.
 */
export class StubResultBackend extends ResultBackendBase {
  readonly #entries = new Map<string, Entry>()
  readonly #stored = new Notifier()
  #storesSinceSweep = 0

  constructor(options: ResultBackendOptions = {}) {
    super(options)
  }

  /** Number of stored (unexpired) results. */
  get size(): number {
    this.#sweep()
    return this.#entries.size
  }

  /** Drop every stored result. */
  clear(): void {
    this.#entries.clear()
  }

  protected override async get(key: string): Promise<Uint8Array | Missing> {
    return this.#read(key)
  }

  protected override async store(key: string, value: Uint8Array, ttl: number): Promise<void> {
    this.#entries.set(key, { value, expiresAt: Date.now() + ttl })
    if (++this.#storesSinceSweep >= SWEEP_EVERY) this.#sweep()
    this.#stored.notify()
  }

  protected override async waitFor(key: string, timeoutMs: number): Promise<Uint8Array | Missing> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const value = this.#read(key)
      if (value !== Missing) return value
      const remaining = deadline - Date.now()
      if (remaining <= 0) return Missing
      await this.#stored.wait(remaining)
    }
  }

  #read(key: string): Uint8Array | Missing {
    const entry = this.#entries.get(key)
    if (!entry) return Missing
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key)
      return Missing
    }
    return entry.value
  }

  #sweep(): void {
    this.#storesSinceSweep = 0
    const now = Date.now()
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key)
  }
}
