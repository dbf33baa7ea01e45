// The ledger: what the worker processes' actors recorded, in Redis (outside every worker), read
// by the suites to count lost and duplicated messages.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'

/**
 * Redis database of the ledger and of the Redis broker under test. Other suites use 0 and 7–13
 * (the benchmark's test FLUSHes 11), so this one is 14.
 */
export const LEDGER_DB = Number(process.env['TQ_FAULTS_REDIS_DB'] ?? 14)
export const REDIS_HOST = '127.0.0.1:6379'
export const LEDGER_URL = `redis://${REDIS_HOST}/${LEDGER_DB}`

/** A name no other run (or process) uses: `<label>-<pid>-<random>`. */
export function uniqueName(label: string): string {
  return `tqrel-${label}-${process.pid}-${randomBytes(3).toString('hex')}`
}

/** Totals of a run: every id expected, how many were never run, how many runs were extra. */
export interface Tally {
  expected: number
  /** Distinct ids that ran at least once. */
  seen: number
  /** Expected ids that never ran. */
  lost: number[]
  /** Runs beyond the first, summed over ids. */
  duplicates: number
  /** Ids that ran more than once. */
  duplicatedIds: number
  /** Ids that ran but were never sent (must be 0). */
  unexpected: string[]
}

export class Ledger {
  readonly prefix: string
  readonly redis: Redis

  constructor(label: string) {
    this.prefix = uniqueName(`ledger-${label}`)
    this.redis = new Redis(LEDGER_URL, { connectionName: 'tq-rel-inspector', lazyConnect: true })
    // A key that only disappears if someone else deletes this database's keys (FLUSHDB).
    void this.redis.set(`${this.prefix}:sentinel`, '1').catch(() => undefined)
  }

  /** Throws if the ledger was wiped behind the run's back (another process flushed the database). */
  async assertIntact(): Promise<void> {
    if ((await this.redis.exists(`${this.prefix}:sentinel`)) === 0) {
      throw new Error(
        `ledger ${this.prefix}: its keys are gone — another process flushed Redis database ${LEDGER_DB}; ` +
          'set TQ_FAULTS_REDIS_DB to a database nobody else uses',
      )
    }
  }

  /** The environment the worker module needs to write here. */
  get env(): Record<string, string> {
    return { TQ_REL_LEDGER_URL: LEDGER_URL, TQ_REL_LEDGER: this.prefix }
  }

  get countsKey(): string {
    return `${this.prefix}:counts`
  }

  /** Distinct ids recorded so far. */
  async distinct(): Promise<number> {
    return this.redis.hlen(this.countsKey)
  }

  /** id → times run. */
  async counts(): Promise<Map<string, number>> {
    const all = await this.redis.hgetall(this.countsKey)
    return new Map(Object.entries(all).map(([k, v]) => [k, Number(v)]))
  }

  /** When probe `name` ran (Unix ms), or undefined. */
  async probeTime(name: string): Promise<number | undefined> {
    const value = await this.redis.hget(`${this.prefix}:probes`, name)
    return value === null ? undefined : Number(value)
  }

  /** Broker ids the worker processes registered (Redis). */
  async brokerIds(): Promise<string[]> {
    return this.redis.hvals(`${this.prefix}:brokers`)
  }

  /** The Redis broker id of worker process `pid`. */
  async brokerIdOf(pid: number): Promise<string | undefined> {
    return (await this.redis.hget(`${this.prefix}:brokers`, String(pid))) ?? undefined
  }

  /** Anomalies the actors saw (e.g. a polluted Object.prototype). */
  async flags(): Promise<Record<string, string>> {
    return this.redis.hgetall(`${this.prefix}:flags`)
  }

  /** Resolves once `count` distinct ids ran; rejects after `timeout` ms with what is missing. */
  async waitForDistinct(count: number, timeout: number): Promise<number> {
    const deadline = Date.now() + timeout
    for (;;) {
      const n = await this.distinct()
      if (n >= count) return n
      if (Date.now() > deadline) {
        await this.assertIntact()
        throw new Error(`ledger ${this.prefix}: ${n} of ${count} ids ran within ${timeout} ms`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /** Resolves with the time probe `name` ran; rejects after `timeout` ms. */
  async waitForProbe(name: string, timeout: number): Promise<number> {
    const deadline = Date.now() + timeout
    for (;;) {
      const at = await this.probeTime(name)
      if (at !== undefined) return at
      if (Date.now() > deadline) throw new Error(`probe ${name} did not run within ${timeout} ms`)
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  /** Compare what ran with ids `0 … expected-1`. */
  async tally(expected: number): Promise<Tally> {
    await this.assertIntact()
    const counts = await this.counts()
    const lost: number[] = []
    let duplicates = 0
    let duplicatedIds = 0
    for (let i = 0; i < expected; i++) {
      const n = counts.get(String(i)) ?? 0
      if (n === 0) lost.push(i)
      if (n > 1) {
        duplicates += n - 1
        duplicatedIds++
      }
    }
    const unexpected = [...counts.keys()].filter((k) => !/^\d+$/.test(k) || Number(k) >= expected)
    return { expected, seen: counts.size - unexpected.length, lost, duplicates, duplicatedIds, unexpected }
  }

  /** Delete the ledger's keys and close the connection. */
  async close(): Promise<void> {
    const keys = ['counts', 'probes', 'brokers', 'flags', 'sentinel'].map((k) => `${this.prefix}:${k}`)
    await this.redis.del(...keys)
    await this.redis.quit()
  }
}
