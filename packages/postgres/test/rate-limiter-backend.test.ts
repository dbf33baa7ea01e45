/**
 * PostgresRateLimiterBackend against the real server (a schema of this file's own): each
 * primitive's semantics with ttl expiry, atomicity under concurrency from two instances (incr,
 * incrAndSum), tq's limiters and Barrier over two instances, waits woken by another instance's
 * waitNotify, migrate: false, and close() with an owned or a given pool.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import {
  Barrier,
  BucketRateLimiter,
  ConcurrentRateLimiter,
  ConfigurationError,
  ConnectionClosedError,
  InvalidArgumentError,
  WindowRateLimiter,
} from '@tq/core'
import { waitFor } from '@tq/core/testing'
import type pg from 'pg'
import {
  PostgresRateLimiterBackend,
  keyGroup,
  type PostgresRateLimiterBackendOptions,
} from '../src/rate-limiter-backend.ts'
import { SchemaVersionError } from '../src/schema.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const schema = testSchema('tq_limits')
const pool = testPool()
const extra: PostgresRateLimiterBackend[] = []
const make = (options: PostgresRateLimiterBackendOptions = {}): PostgresRateLimiterBackend => {
  const backend = new PostgresRateLimiterBackend({ connectionString: PG_URL, schema, ...options })
  extra.push(backend)
  return backend
}
/** Two instances, each with its own pool: as two processes would be. */
const backend = make()
const other = make()

afterAll(async () => {
  await Promise.all(extra.map((b) => b.close()))
  await dropSchema(pool, schema)
  await pool.end()
})

const name = (key: string): string => `${key}-${randomUUID().slice(0, 8)}`

async function elapsed(run: () => Promise<unknown>): Promise<{ ms: number; outcome: unknown }> {
  const start = performance.now()
  let outcome: unknown
  try {
    outcome = await run()
  } catch (error) {
    outcome = error
  }
  return { ms: performance.now() - start, outcome }
}

/** The ms left before a row expires (undefined if there is none). */
async function ttlOf(key: string, table = 'rate_limits'): Promise<number | undefined> {
  const { rows } = await pool.query<{ ttl: number }>(
    `SELECT extract(epoch FROM expires_at - now()) * 1000 AS ttl FROM ${schema}.${table} WHERE key = $1`,
    [key],
  )
  return rows[0] === undefined ? undefined : Number(rows[0].ttl)
}

/** Wait (at most `margin` ms) until a `size`-ms window has at least `margin` ms left, so a test's steps share one window. */
async function awayFromEdge(size: number, margin = 300): Promise<void> {
  const left = size - (Date.now() % size)
  if (left < margin) await new Promise((resolve) => setTimeout(resolve, left + 5))
}

/** How many of `calls` resolved true. */
async function successes(calls: Array<Promise<boolean>>): Promise<number> {
  return (await Promise.all(calls)).filter(Boolean).length
}

describe('PostgresRateLimiterBackend primitives', () => {
  it('add sets a key only when it is absent or expired, with its ttl', async () => {
    const key = name('add')
    expect(await backend.add(key, 5, 200)).toBe(true)
    expect(await other.add(key, 9, 200)).toBe(false)
    expect(await backend.peek(key)).toBe(5)
    const ttl = await ttlOf(key)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(200)
    await waitFor(async () => (await backend.peek(key)) === undefined, { message: 'the key to expire' })
    expect(await other.add(key, 9, 60_000)).toBe(true)
    expect(await backend.peek(key)).toBe(9)
  })

  it('incr counts from 0 (absent or expired), refuses to pass the maximum, and resets the ttl', async () => {
    const key = name('incr')
    expect(await backend.incr(key, 3, 5, 10_000)).toBe(true)
    expect(await other.incr(key, 3, 5, 10_000)).toBe(false)
    expect(await other.incr(key, 2, 5, 20_000)).toBe(true)
    expect(await backend.peek(key)).toBe(5)
    expect(await ttlOf(key)).toBeGreaterThan(10_000)
    expect(await backend.incr(name('big'), 6, 5, 1000)).toBe(false) // absent: 0 + 6 > 5
    const short = name('incr-short')
    expect(await backend.incr(short, 4, 5, 150)).toBe(true)
    await waitFor(async () => (await backend.peek(short)) === undefined, { message: 'the counter to expire' })
    expect(await backend.incr(short, 4, 5, 10_000)).toBe(true) // from 0 again, not 4
    expect(await backend.peek(short)).toBe(4)
  })

  it('decr counts from 0, refuses to fall below the minimum, and resets the ttl', async () => {
    const key = name('decr')
    expect(await backend.decr(key, 1, 0, 1000)).toBe(false) // absent: 0 - 1 < 0
    expect(await backend.add(key, 3, 10_000)).toBe(true)
    expect(await other.decr(key, 2, 1, 20_000)).toBe(true)
    expect(await backend.decr(key, 1, 1, 20_000)).toBe(false)
    expect(await backend.peek(key)).toBe(1)
    expect(await ttlOf(key)).toBeGreaterThan(10_000)
    const negative = name('decr-negative')
    expect(await backend.decr(negative, 2, -5, 1000)).toBe(true)
    expect(await backend.peek(negative)).toBe(-2)
    expect(await backend.incr(negative, 7, 5, 1000)).toBe(true) // a live negative row takes more than the maximum
    expect(await backend.peek(negative)).toBe(5)
  })

  it('incrAndSum checks the key and the sum of the live keys, and calls keys() once', async () => {
    const k = name('sum')
    const window = [`${k}@3`, `${k}@2`, `${k}@1`]
    expect(await backend.incr(`${k}@1`, 2, 100, 60_000)).toBe(true)
    expect(await backend.incr(`${k}@2`, 150, 1000, 150)).toBe(true) // expires soon
    let calls = 0
    const keys = (): string[] => {
      calls++
      return window
    }
    expect(await backend.incrAndSum(`${k}@3`, keys, 2, 5, 60_000)).toBe(false) // 2 + 150 + 2 > 5
    await waitFor(async () => (await backend.peek(`${k}@2`)) === undefined, { message: 'the counter to expire' })
    expect(await backend.incrAndSum(`${k}@3`, keys, 2, 5, 60_000)).toBe(true) // 2 + 2
    expect(await other.incrAndSum(`${k}@3`, keys, 1, 5, 60_000)).toBe(true) // 2 + 2 + 1
    expect(await other.incrAndSum(`${k}@3`, keys, 1, 5, 60_000)).toBe(false)
    expect(await backend.incrAndSum(`${k}@4`, () => [`${k}@4`], 6, 5, 60_000)).toBe(false) // the key alone passes
    expect(await backend.peek(`${k}@3`)).toBe(3)
    expect(calls).toBe(4)
    expect(keyGroup(`${k}@17`)).toBe(k)
    expect(keyGroup(`${k}@events`)).toBe(`${k}@events`)
  })

  it('wait returns false after its timeout, also below a second, and true at once once notified', async () => {
    const key = name('wait')
    const timedOut = await elapsed(() => backend.wait(key, 150))
    expect(timedOut.outcome).toBe(false)
    expect(timedOut.ms).toBeGreaterThanOrEqual(149)
    expect(timedOut.ms).toBeLessThan(1000)
    expect(await backend.wait(key, 0)).toBe(false)
    await other.waitNotify(key, 300)
    const ttl = await ttlOf(key, 'rate_limit_events')
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(300)
    const notified = await elapsed(() => backend.wait(key, 5000))
    expect(notified.outcome).toBe(true)
    expect(notified.ms).toBeLessThan(200)
    expect(await backend.wait(key)).toBe(true) // without a timeout too
    // The notification expires with its ttl.
    await waitFor(async () => !(await backend.wait(key, 0)), { message: 'the notification to expire' })
  })

  it('wakes a wait as soon as another instance notifies the key', async () => {
    const key = name('wake')
    const pending = elapsed(() => backend.wait(key, 10_000))
    await waitFor(() => backend.listening)
    const notified = performance.now()
    await other.waitNotify(key, 60_000)
    const { outcome, ms } = await pending
    expect(outcome).toBe(true)
    expect(performance.now() - notified).toBeLessThan(200) // not the 1 s re-check
    expect(ms).toBeLessThan(2000)
  })

  it('refuses bad arguments with InvalidArgumentError', async () => {
    await expect(backend.incr('', 1, 1, 1000)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(backend.incr('k', 1.5, 2, 1000)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(backend.decr('k', 1, Number.NaN, 1000)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(backend.add('k', 1, 0)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(backend.waitNotify('k', Number.POSITIVE_INFINITY)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(backend.wait('k', Number.NaN)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(backend.add('x'.repeat(3000), 1, 1000)).rejects.toBeInstanceOf(InvalidArgumentError)
  })

  it('deletes expired counters and notifications now and then', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => `${name('sweep')}@${i}`)
    for (const table of ['rate_limits', 'rate_limit_events']) {
      const column = table === 'rate_limits' ? 'value' : 'notified'
      await pool.query(
        `INSERT INTO ${schema}.${table} (key, ${column}, expires_at) SELECT k, 1, now() - interval '1 second' FROM unnest($1::text[]) AS k`,
        [keys],
      )
    }
    const fresh = make() // a new backend sweeps on its first write
    expect(await fresh.add(name('sweeper'), 1, 60_000)).toBe(true)
    await waitFor(
      async () =>
        (
          await pool.query(
            `SELECT 1 FROM ${schema}.rate_limits WHERE key = ANY($1) UNION ALL SELECT 1 FROM ${schema}.rate_limit_events WHERE key = ANY($1)`,
            [keys],
          )
        ).rowCount === 0,
      { message: 'the expired rows to be deleted' },
    )
  })
})

describe('PostgresRateLimiterBackend atomicity across instances', () => {
  it('50 concurrent incr with maximum 10 from two instances succeed exactly 10 times', async () => {
    const key = name('concurrent-incr')
    const calls = Array.from({ length: 50 }, (_, i) => (i % 2 ? backend : other).incr(key, 1, 10, 60_000))
    expect(await successes(calls)).toBe(10)
    expect(await backend.peek(key)).toBe(10)
  })

  it('concurrent incrAndSum over one window from two instances never passes the maximum', async () => {
    const k = name('concurrent-sum')
    const window = [`${k}@5`, `${k}@4`, `${k}@3`, `${k}@2`, `${k}@1`]
    expect(await backend.incr(`${k}@1`, 3, 100, 60_000)).toBe(true)
    // Two "seconds" of the window written at once, each call summing all five.
    const calls = Array.from({ length: 60 }, (_, i) =>
      (i % 2 ? backend : other).incrAndSum(i % 3 ? `${k}@5` : `${k}@4`, () => window, 1, 10, 60_000),
    )
    expect(await successes(calls)).toBe(7)
    const values = await Promise.all(window.map((key) => backend.peek(key)))
    expect(values.reduce<number>((sum, v) => sum + (v ?? 0), 0)).toBe(10)
  })

  it('ConcurrentRateLimiter is a mutex across instances (limit 1) and counts back to 0', async () => {
    const key = name('mutex')
    let inside = 0
    let peak = 0
    let ran = 0
    const limiters = [backend, other].map((b) => new ConcurrentRateLimiter(b, key, { limit: 1 }))
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        limiters[i % 2]!.acquire(
          async () => {
            inside++
            peak = Math.max(peak, inside)
            await new Promise((resolve) => setImmediate(resolve))
            inside--
            ran++
          },
          { raiseOnFailure: false },
        ),
      ),
    )
    expect(peak).toBe(1)
    expect(ran).toBeGreaterThan(0)
    expect(await backend.peek(key)).toBe(0)
  })

  it('ConcurrentRateLimiter with limit 3 admits exactly 3 holders at once across instances', async () => {
    const key = name('limit-3')
    const limiters = [backend, other].map((b) => new ConcurrentRateLimiter(b, key, { limit: 3 }))
    expect(await successes(Array.from({ length: 20 }, (_, i) => limiters[i % 2]!.tryAcquire()))).toBe(3)
    await limiters[0]!.release()
    expect(await limiters[1]!.tryAcquire()).toBe(true)
    expect(await limiters[0]!.tryAcquire()).toBe(false)
  })

  it('WindowRateLimiter allows `limit` acquisitions per window across instances', async () => {
    const key = name('window')
    const limiters = [backend, other].map((b) => new WindowRateLimiter(b, key, { limit: 3, window: 5 }))
    await awayFromEdge(1000)
    expect(await successes(Array.from({ length: 30 }, (_, i) => limiters[i % 2]!.tryAcquire()))).toBe(3)
    expect(await limiters[0]!.tryAcquire()).toBe(false)
    const { rows } = await pool.query<{ key: string }>(`SELECT key FROM ${schema}.rate_limits WHERE key LIKE $1`, [
      `${key}@%`,
    ])
    for (const r of rows) expect(r.key).toMatch(/@\d{10}$/)
  })

  it('BucketRateLimiter allows `limit` acquisitions per bucket across instances, and again in the next', async () => {
    const key = name('bucket')
    const limiters = [backend, other].map((b) => new BucketRateLimiter(b, key, { limit: 2, bucket: 1000 }))
    await awayFromEdge(1000, 500)
    expect(await successes(Array.from({ length: 20 }, (_, i) => limiters[i % 2]!.tryAcquire()))).toBe(2)
    const first = limiters[0]!.currentKey()
    await waitFor(() => limiters[0]!.currentKey() !== first, { message: 'the next bucket' })
    expect(await limiters[1]!.tryAcquire()).toBe(true)
  })

  it('Barrier: parties on two instances are released promptly when the last one arrives', async () => {
    const key = name('barrier')
    const a = new Barrier(backend, key, { ttl: 10_000 })
    const b = new Barrier(other, key, { ttl: 10_000 })
    expect(await a.create(3)).toBe(true)
    expect(await b.create(3)).toBe(false)
    const first = a.wait({ timeout: 5000 })
    const second = b.wait({ timeout: 5000 })
    // Both parties have arrived (the count is down to 1) and wait for notifications.
    await waitFor(async () => backend.listening && other.listening && (await backend.peek(key)) === 1)
    const arrived = performance.now()
    expect(await a.wait({ timeout: 5000 })).toBe(true) // the last party
    expect(await Promise.all([first, second])).toEqual([true, true])
    expect(performance.now() - arrived).toBeLessThan(300)
    expect(await b.wait({ block: false })).toBe(true) // cleared stays cleared
  })

  it('Barrier: a non-blocking wait is false until the last party, a blocking one times out with false', async () => {
    const barrier = new Barrier(backend, name('barrier-nb'), { ttl: 10_000 })
    expect(await barrier.create(2)).toBe(true)
    const { ms, outcome } = await elapsed(() => new Barrier(other, barrier.key).wait({ timeout: 100 }))
    expect(outcome).toBe(false)
    expect(ms).toBeLessThan(1000)
    expect(await barrier.wait({ block: false })).toBe(true)
  })
})

describe('PostgresRateLimiterBackend setup', () => {
  it('with migrate: false, a schema without the tables is a SchemaVersionError', async () => {
    const missing = testSchema('tq_limits_missing')
    const limiter = make({ schema: missing, migrate: false })
    const error = await limiter.incr('k', 1, 1, 1000).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(SchemaVersionError)
    expect(error).toMatchObject({ component: 'limits', found: 0, expected: 1 })
    await expect(limiter.wait('k', 10)).rejects.toBeInstanceOf(SchemaVersionError)
  })

  it("close() fails pending waits and ends the pool it built; a user's pool stays open", async () => {
    const ownPool = testPool(3)
    try {
      const given = new PostgresRateLimiterBackend({ pool: ownPool, schema })
      const owned = new PostgresRateLimiterBackend({ connectionString: PG_URL, schema })
      const pending = [given, owned].map((b) => b.wait(name('closing')).catch((e: unknown) => e))
      await waitFor(() => given.listening && owned.listening)
      await Promise.all([given.close(), owned.close()])
      for (const outcome of await Promise.all(pending)) expect(outcome).toBeInstanceOf(ConnectionClosedError)
      expect(ownPool.ended).toBe(false)
      expect((await ownPool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }])
      expect((owned.pool as pg.Pool).ended).toBe(true)
      await expect(given.incr('k', 1, 1, 1000)).rejects.toBeInstanceOf(ConfigurationError)
    } finally {
      await ownPool.end()
    }
  })
})
