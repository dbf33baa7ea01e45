import { randomBytes } from 'node:crypto'
import { Barrier, BucketRateLimiter, ConcurrentRateLimiter, WindowRateLimiter } from '@tq/core'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisRateLimiterBackend } from '../src/index.ts'
import { loadFixture } from './fixtures.ts'
import { REDIS_URL, rawClient } from './helpers.ts'

const raw = rawClient()
const backend = new RedisRateLimiterBackend({ url: REDIS_URL })
const other = new RedisRateLimiterBackend({ url: REDIS_URL })
const fx = loadFixture('redis-rate-limits.json')
/** Rate-limiter keys carry no namespace (as in Dramatiq), so tests make theirs unique. */
const prefix = `tqtest-limits-${process.pid}-${randomBytes(3).toString('hex')}-`
const name = (key: string): string => prefix + key

afterAll(async () => {
  const keys = await raw.keys(`${prefix}*`)
  if (keys.length > 0) await raw.del(...keys)
  await backend.close()
  await other.close()
  await raw.quit()
})

interface Step {
  redis_keys: Record<string, { type: string; pttl: number; value: unknown }>
}

/** The keys under `prefix` + `stem` in the fixtures' dump format, without the prefix. */
async function dump(stem: string): Promise<Step['redis_keys']> {
  const out: Step['redis_keys'] = {}
  for (const key of (await raw.keys(`${prefix}${stem}*`)).sort()) {
    const type = await raw.type(key)
    const value = type === 'list' ? await raw.lrange(key, 0, -1) : await raw.get(key)
    out[key.slice(prefix.length)] = { type, pttl: await raw.pttl(key), value }
  }
  return out
}

/** Wait (at most `margin` ms) until a `size`-ms window has at least `margin` ms left, so a test's steps share one window. */
async function awayFromEdge(size: number, margin = 300): Promise<void> {
  const left = size - (Date.now() % size)
  if (left < margin) await new Promise((resolve) => setTimeout(resolve, left + 5))
}

/** Same keys, types and values; each PTTL the fixture's TTL constant, give or take a busy machine. */
function expectLike(
  actual: Step['redis_keys'],
  expected: Step['redis_keys'],
  rename: (k: string) => string = (k) => k,
): void {
  const renamed = Object.fromEntries(Object.entries(expected).map(([k, v]) => [rename(k), v]))
  expect(Object.keys(actual).sort()).toEqual(Object.keys(renamed).sort())
  for (const [key, want] of Object.entries(renamed)) {
    const got = actual[key]
    expect({ key, type: got?.type, value: got?.value }).toEqual({ key, type: want.type, value: want.value })
    expect(got?.pttl).toBeGreaterThan(want.pttl - 1000)
    expect(got?.pttl).toBeLessThanOrEqual(want.pttl + 5)
  }
}

describe('RedisRateLimiterBackend writes what Dramatiq writes (redis-rate-limits)', () => {
  it('ConcurrentRateLimiter: the key itself, "1", "2", refused at the limit, released down to "0"', async () => {
    const stem = 'fixture-concurrent'
    const limiter = new ConcurrentRateLimiter(backend, name(stem), { limit: 2 })
    const steps = fx.concurrent.steps as Step[]
    const seen: Array<Step['redis_keys']> = []
    await limiter.acquire(async () => {
      seen.push(await dump(stem))
      await limiter.acquire(async () => {
        seen.push(await dump(stem))
        expect((await limiter.acquire(() => undefined, { raiseOnFailure: false })).acquired).toBe(false)
        seen.push(await dump(stem))
      })
      seen.push(await dump(stem))
    })
    seen.push(await dump(stem))
    seen.forEach((s, i) => expectLike(s, (steps[i] as Step).redis_keys))
  })

  it('BucketRateLimiter: `<key>@<ms floored to the bucket>` with PX = bucket', async () => {
    const stem = 'fixture-bucket'
    const limiter = new BucketRateLimiter(backend, name(stem), { limit: 2, bucket: 60_000 })
    const steps = fx.bucket.steps as Step[]
    await awayFromEdge(60_000)
    const bucket = (ms: number, size: number): number => ms - (ms % size)
    const rename = (k: string): string =>
      k.startsWith('fixture-bucket@')
        ? `fixture-bucket@${bucket(Date.now(), 60_000)}`
        : `fixture-bucket-default@${bucket(Date.now(), 1000)}`
    await limiter.acquire(async () => expectLike(await dump(stem), (steps[0] as Step).redis_keys, rename))
    await limiter.acquire(async () => expectLike(await dump(stem), (steps[1] as Step).redis_keys, rename))
    expect((await limiter.acquire(() => undefined, { raiseOnFailure: false })).acquired).toBe(false)
    expectLike(await dump(stem), (steps[3] as Step).redis_keys, rename)
  })

  it('WindowRateLimiter: `<key>@<unix s>` per second, PX = window, the sum over the window caps it', async () => {
    const limiter = new WindowRateLimiter(backend, name('fixture-window'), { limit: 3, window: 5 })
    const now = (): number => Math.floor(Date.now() / 1000)
    await awayFromEdge(1000)
    expect(await limiter.tryAcquire()).toBe(true)
    const first = now()
    expect(await limiter.tryAcquire()).toBe(true)
    expect(await raw.get(`${prefix}fixture-window@${first}`)).toBe('2')
    const pttl = await raw.pttl(`${prefix}fixture-window@${first}`)
    expect(pttl).toBeGreaterThan(4000)
    expect(pttl).toBeLessThanOrEqual(5000)
    expect(await limiter.tryAcquire()).toBe(true)
    expect(await limiter.tryAcquire()).toBe(false)
    const keys = (await raw.keys(`${prefix}fixture-window@*`)).map((k) => k.slice(prefix.length))
    for (const key of keys) expect(key).toMatch(/^fixture-window@\d{10}$/)
    expect(
      Object.keys((fx.window.steps as Step[])[2]?.redis_keys ?? {}).every((k) => /^fixture-window@\d{10}$/.test(k)),
    ).toBe(true)
  })

  it('Barrier: a counter plus an `<key>@events` list of "x"; each wait after clearing pushes another', async () => {
    const stem = 'fixture-barrier'
    const barrier = new Barrier(backend, name(stem), { ttl: 30_000 })
    const steps = fx.barrier.steps as Array<Step & { returned: boolean }>
    const rename = (k: string): string => k
    expect(await barrier.create(2)).toBe(steps[0]?.returned)
    expectLike(await dump(stem), (steps[0] as Step).redis_keys, rename)
    expect(await barrier.create(2)).toBe(steps[1]?.returned)
    for (const i of [2, 3, 4]) {
      expect(await barrier.wait({ block: false })).toBe(steps[i]?.returned)
      expectLike(await dump(stem), (steps[i] as Step).redis_keys, rename)
    }
  })
})

describe('RedisRateLimiterBackend semantics', () => {
  it('is a mutex across clients with limit 1, atomically', async () => {
    const key = name('mutex')
    let inside = 0
    let peak = 0
    let ran = 0
    const limiters = [backend, other].map((b) => new ConcurrentRateLimiter(b, key, { limit: 1 }))
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const r = await (limiters[i % 2] as ConcurrentRateLimiter).acquire(
          async () => {
            inside++
            peak = Math.max(peak, inside)
            await new Promise((resolve) => setImmediate(resolve))
            inside--
            ran++
          },
          { raiseOnFailure: false },
        )
        return r.acquired
      }),
    )
    expect(peak).toBe(1)
    expect(ran).toBeGreaterThan(0)
    expect(await raw.get(key)).toBe('0')
  })

  it('incr and decr respect their bounds and reset the ttl', async () => {
    const key = name('bounds')
    expect(await backend.incr(key, 3, 5, 10_000)).toBe(true)
    expect(await backend.incr(key, 3, 5, 10_000)).toBe(false)
    expect(await backend.decr(key, 2, 1, 20_000)).toBe(true)
    expect(await backend.decr(key, 1, 1, 20_000)).toBe(false)
    expect(await raw.get(key)).toBe('1')
    expect(await raw.pttl(key)).toBeGreaterThan(10_000)
    expect(await backend.add(key, 9, 1000)).toBe(false)
  })

  it('a blocking barrier wait releases every party as soon as the last one arrives', async () => {
    const key = name('blocking')
    const a = new Barrier(backend, key, { ttl: 10_000 })
    const b = new Barrier(other, key, { ttl: 10_000 })
    expect(await a.create(2)).toBe(true)
    const started = Date.now()
    const first = a.wait({ timeout: 5000 })
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(await b.wait({ timeout: 5000 })).toBe(true)
    expect(await first).toBe(true)
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('a wait times out with false, also below one second', async () => {
    const started = Date.now()
    expect(await backend.wait(name('never'), 150)).toBe(false)
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(Date.now() - started).toBeLessThan(1000)
  })
})
