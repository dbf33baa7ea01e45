import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  BucketRateLimiter,
  ConcurrentRateLimiter,
  RateLimitExceededError,
  RateLimiter,
  StubBroker,
  StubRateLimiterBackend,
  WindowRateLimiter,
  Worker,
  actor,
  createLogger,
  defaultMiddleware,
  type LogEntry,
  type RateLimiterBackend,
} from '../src/index.ts'
import { loadFixture } from './support/fixtures.ts'

afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
})

/** A backend that records every call (name and arguments) before delegating to the stub. */
function recordingBackend(): { backend: StubRateLimiterBackend; calls: Array<[string, ...unknown[]]> } {
  const backend = new StubRateLimiterBackend()
  const calls: Array<[string, ...unknown[]]> = []
  for (const name of ['add', 'incr', 'decr', 'incrAndSum', 'wait', 'waitNotify'] as const) {
    const original = backend[name].bind(backend) as (...args: unknown[]) => Promise<unknown>
    vi.spyOn(backend, name).mockImplementation(((...args: unknown[]) => {
      calls.push([name, ...args])
      return original(...args)
    }) as never)
  }
  return { backend, calls }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('RateLimiter.acquire', () => {
  it('throws RateLimitExceededError naming the key, or resolves { acquired: false } without running fn', async () => {
    const backend = new StubRateLimiterBackend()
    const mutex = new ConcurrentRateLimiter(backend, 'k')
    expect(await mutex.tryAcquire()).toBe(true)
    const fn = vi.fn(() => 1)
    const error = await mutex.acquire(fn).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RateLimitExceededError)
    expect((error as Error).message).toBe('rate limit exceeded for key "k"')
    expect(await mutex.acquire(fn, { raiseOnFailure: false })).toEqual({ acquired: false, result: undefined })
    expect(fn).not.toHaveBeenCalled()
    await mutex.release()
    expect(await mutex.acquire(fn)).toEqual({ acquired: true, result: 1 })
  })

  it('releases the slot when fn throws', async () => {
    const backend = new StubRateLimiterBackend()
    const mutex = new ConcurrentRateLimiter(backend, 'k')
    await expect(
      mutex.acquire(() => {
        throw new Error('inside')
      }),
    ).rejects.toThrow('inside')
    expect(backend.peek('k')).toBe(0)
    expect(await mutex.tryAcquire()).toBe(true)
  })

  it('can be subclassed with a custom slot policy', async () => {
    class Never extends RateLimiter {
      protected override async acquireSlot(): Promise<boolean> {
        return false
      }
    }
    const limiter = new Never(new StubRateLimiterBackend(), 'never')
    await expect(limiter.acquire(() => 1)).rejects.toBeInstanceOf(RateLimitExceededError)
  })
})

describe('ConcurrentRateLimiter', () => {
  it('is a mutex with limit 1 under concurrent tasks', async () => {
    const backend = new StubRateLimiterBackend()
    const mutex = new ConcurrentRateLimiter(backend, 'mutex')
    let inside = 0
    let maxInside = 0
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        mutex.acquire(
          async () => {
            maxInside = Math.max(maxInside, ++inside)
            await tick()
            inside--
          },
          { raiseOnFailure: false },
        ),
      ),
    )
    expect(maxInside).toBe(1)
    expect(results.filter((r) => r.acquired)).toHaveLength(1)
    expect(backend.peek('mutex')).toBe(0)
  })

  it('caps concurrency at the limit and frees slots on release', async () => {
    const backend = new StubRateLimiterBackend()
    const limiter = new ConcurrentRateLimiter(backend, 'cap', { limit: 3 })
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    let inside = 0
    let maxInside = 0
    const runs = Array.from({ length: 8 }, () =>
      limiter.acquire(
        async () => {
          maxInside = Math.max(maxInside, ++inside)
          await held
          inside--
        },
        { raiseOnFailure: false },
      ),
    )
    await tick()
    expect(backend.peek('cap')).toBe(3)
    release()
    const results = await Promise.all(runs)
    expect(maxInside).toBe(3)
    expect(results.filter((r) => r.acquired)).toHaveLength(3)
    expect(backend.peek('cap')).toBe(0)
  })

  it('releases after each call, so sequential calls all succeed', async () => {
    const backend = new StubRateLimiterBackend()
    const mutex = new ConcurrentRateLimiter(backend, 'seq')
    let calls = 0
    for (let i = 0; i < 5; i++) await mutex.acquire(() => calls++)
    expect(calls).toBe(5)
  })

  it('uses the key as is, with SET-NX then bounded increments, like the fixture', async () => {
    const fixture = loadFixture<{
      concurrent: { steps: Array<{ acquired?: boolean; redis_keys: Record<string, { value: string; pttl: number }> }> }
    }>('redis-rate-limits')
    const values = fixture.concurrent.steps.map((s) => Number(s.redis_keys['fixture-concurrent']?.value))
    const { backend, calls } = recordingBackend()
    const limiter = new ConcurrentRateLimiter(backend, 'fixture-concurrent', { limit: 2 })
    const seen: Array<number | undefined> = []
    const acquired: boolean[] = []
    await limiter.acquire(async () => {
      seen.push(backend.peek('fixture-concurrent'))
      await limiter.acquire(async () => {
        seen.push(backend.peek('fixture-concurrent'))
        const third = await limiter.acquire(() => undefined, { raiseOnFailure: false })
        acquired.push(third.acquired)
        seen.push(backend.peek('fixture-concurrent'))
      })
      seen.push(backend.peek('fixture-concurrent'))
    })
    seen.push(backend.peek('fixture-concurrent'))
    expect(seen).toEqual(values) // 1, 2, 2, 1, 0: the key is not deleted
    expect(acquired).toEqual([false])
    expect(calls.slice(0, 3)).toEqual([
      ['add', 'fixture-concurrent', 1, 900_000],
      ['add', 'fixture-concurrent', 1, 900_000],
      ['incr', 'fixture-concurrent', 1, 2, 900_000],
    ])
    expect(calls.filter((c) => c[0] === 'decr')).toEqual([
      ['decr', 'fixture-concurrent', 1, 0, 900_000],
      ['decr', 'fixture-concurrent', 1, 0, 900_000],
    ])
  })

  it('expires a crashed holder after the ttl', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(5_000_000)
    const backend = new StubRateLimiterBackend()
    const mutex = new ConcurrentRateLimiter(backend, 'lost', { ttl: 1000 })
    expect(await mutex.tryAcquire()).toBe(true) // never released
    expect(await mutex.tryAcquire()).toBe(false)
    vi.setSystemTime(5_001_000)
    expect(await mutex.tryAcquire()).toBe(true)
  })
})

describe('BucketRateLimiter', () => {
  it('allows limit acquisitions per bucket, keyed by the bucket start', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(1_700_000_000_250)
    const { backend, calls } = recordingBackend()
    const limiter = new BucketRateLimiter(backend, 'b', { limit: 2 })
    const tryMany = async (n: number): Promise<number> => {
      let ok = 0
      for (let i = 0; i < n; i++) if ((await limiter.acquire(() => undefined, { raiseOnFailure: false })).acquired) ok++
      return ok
    }
    expect(await tryMany(8)).toBe(2)
    expect(calls[0]).toEqual(['add', 'b@1700000000000', 1, 1000])
    expect(calls).toContainEqual(['incr', 'b@1700000000000', 1, 2, 1000])
    vi.setSystemTime(1_700_000_000_999)
    expect(await tryMany(8)).toBe(0)
    vi.setSystemTime(1_700_000_001_000)
    expect(await tryMany(8)).toBe(2)
    expect(backend.peek('b@1700000001000')).toBe(2)
    // No release: the count stays until the bucket expires.
    expect(calls.some((c) => c[0] === 'decr')).toBe(false)
  })

  it('floors to the bucket size, as in the fixture', () => {
    const limiter = new BucketRateLimiter(new StubRateLimiterBackend(), 'fixture-bucket', { limit: 2, bucket: 60_000 })
    expect(limiter.currentKey(1_795_475_751_663)).toBe('fixture-bucket@1795475700000')
    expect(
      new BucketRateLimiter(new StubRateLimiterBackend(), 'fixture-bucket-default').currentKey(1_795_475_751_665),
    ).toBe('fixture-bucket-default@1795475751000')
  })
})

describe('WindowRateLimiter', () => {
  it('allows limit acquisitions in any window of `window` seconds', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(1_795_475_752_012)
    const { backend, calls } = recordingBackend()
    const limiter = new WindowRateLimiter(backend, 'fixture-window', { limit: 3, window: 5 })
    const attempt = async (): Promise<boolean> =>
      (await limiter.acquire(() => undefined, { raiseOnFailure: false })).acquired
    expect(await attempt()).toBe(true)
    expect(await attempt()).toBe(true)
    const first = calls[0] as [string, string, () => string[], number, number, number]
    expect(first[0]).toBe('incrAndSum')
    expect(first[1]).toBe('fixture-window@1795475752')
    expect(first[2]()).toEqual([
      'fixture-window@1795475752',
      'fixture-window@1795475751',
      'fixture-window@1795475750',
      'fixture-window@1795475749',
      'fixture-window@1795475748',
    ])
    expect(first.slice(3)).toEqual([1, 3, 5000])
    vi.setSystemTime(1_795_475_753_015)
    expect(await attempt()).toBe(true)
    expect(backend.peek('fixture-window@1795475752')).toBe(2)
    expect(backend.peek('fixture-window@1795475753')).toBe(1)
    expect(await attempt()).toBe(false)
    // Four seconds on, the first second is still in the 5-second window.
    vi.setSystemTime(1_795_475_756_500)
    expect(await attempt()).toBe(false)
    // Once 1795475752 leaves the window, its two slots come back.
    vi.setSystemTime(1_795_475_757_000)
    expect(await attempt()).toBe(true)
    expect(await attempt()).toBe(true)
    expect(await attempt()).toBe(false)
  })

  it('defaults to one acquisition per second', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(10_000)
    const limiter = new WindowRateLimiter(new StubRateLimiterBackend(), 'w')
    expect(await limiter.tryAcquire()).toBe(true)
    expect(await limiter.tryAcquire()).toBe(false)
    vi.setSystemTime(11_000)
    expect(await limiter.tryAcquire()).toBe(true)
  })
})

describe('StubRateLimiterBackend', () => {
  it('implements add, bounded incr/decr, incrAndSum and ttls', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(0)
    const backend: RateLimiterBackend & { peek(key: string): number | undefined } = new StubRateLimiterBackend()
    expect(await backend.add('a', 5, 100)).toBe(true)
    expect(await backend.add('a', 1, 100)).toBe(false)
    expect(await backend.incr('a', 1, 6, 100)).toBe(true)
    expect(await backend.incr('a', 1, 6, 100)).toBe(false)
    expect(await backend.decr('a', 6, 0, 100)).toBe(true)
    expect(await backend.decr('a', 1, 0, 100)).toBe(false)
    expect(backend.peek('a')).toBe(0)
    // Absent keys count as 0.
    expect(await backend.incr('fresh', 2, 2, 100)).toBe(true)
    expect(await backend.decr('missing', 1, 1, 100)).toBe(false)
    // incrAndSum checks the key and the sum of the window keys.
    await backend.add('w@1', 2, 100)
    expect(await backend.incrAndSum('w@2', () => ['w@2', 'w@1'], 1, 3, 100)).toBe(true)
    expect(await backend.incrAndSum('w@2', () => ['w@2', 'w@1'], 1, 3, 100)).toBe(false)
    vi.setSystemTime(100)
    expect(backend.peek('a')).toBeUndefined()
    expect(await backend.add('a', 1, 100)).toBe(true)
  })

  it('wakes waiters on notify and remembers the notification for its ttl', async () => {
    const backend = new StubRateLimiterBackend()
    const waiting = backend.wait('e', 5000)
    await backend.waitNotify('e', 1000)
    expect(await waiting).toBe(true)
    expect(await backend.wait('e', 10)).toBe(true)
    expect(await backend.wait('other', 10)).toBe(false)
  })
})

describe('RateLimitExceededError inside an actor', () => {
  it('is retried by Retries with backoff and logged at debug level only', async () => {
    const logs: LogEntry[] = []
    const broker = new StubBroker({ middleware: defaultMiddleware(), logger: createLogger((e) => logs.push(e)) })
    const backend = new StubRateLimiterBackend()
    const mutex = new ConcurrentRateLimiter(backend, 'shared-resource')
    let attempts = 0
    let rejected!: () => void
    const wasRejected = new Promise<void>((resolve) => (rejected = resolve))
    const guarded = actor(
      'guarded',
      async () => {
        attempts++
        try {
          return (await mutex.acquire(() => 'done')).result
        } catch (error) {
          rejected()
          throw error
        }
      },
      { broker, maxRetries: 10, minBackoff: 10, maxBackoff: 20 },
    )
    expect(await mutex.tryAcquire()).toBe(true) // someone else holds it
    const worker = new Worker(broker, { workerTimeout: 50 })
    await worker.start()
    try {
      await guarded.send()
      await wasRejected
      await mutex.release()
      await broker.join('default', { timeout: 5000 })
      await worker.join({ timeout: 5000 })
    } finally {
      await worker.stop({ timeout: 1000 })
    }
    expect(attempts).toBe(2)
    expect(broker.deadLetters).toHaveLength(0)
    const failureLogs = logs.filter((e) => e.msg.toLowerCase().includes('rate limit'))
    expect(failureLogs.length).toBeGreaterThanOrEqual(1)
    expect(failureLogs.every((e) => e.level === 'debug')).toBe(true)
  })
})
