import { afterEach, describe, expect, it, vi } from 'vitest'
import { Barrier, InvalidArgumentError, StubRateLimiterBackend } from '../src/index.ts'
import { loadFixture } from './support/fixtures.ts'

afterEach(() => {
  vi.useRealTimers()
})

describe('Barrier', () => {
  it('create is idempotent: a second create returns false and does not reset the count', async () => {
    const backend = new StubRateLimiterBackend()
    const barrier = new Barrier(backend, 'b')
    expect(await barrier.create(2)).toBe(true)
    expect(await barrier.wait({ block: false })).toBe(false)
    expect(await barrier.create(2)).toBe(false)
    expect(backend.peek('b')).toBe(1)
  })

  it('rejects a non-positive number of parties', async () => {
    const barrier = new Barrier(new StubRateLimiterBackend(), 'b')
    await expect(barrier.create(0)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(barrier.create(-1)).rejects.toBeInstanceOf(InvalidArgumentError)
  })

  it('counts down without blocking, clears on the last party, and stays cleared (fixture steps)', async () => {
    type Step = { returned: boolean; redis_keys: Record<string, { value: string | string[] }> }
    const fixture = loadFixture<{ barrier: { steps: Step[] } }>('redis-rate-limits')
    const [created, createdAgain, wait1, wait2, wait3] = fixture.barrier.steps as [Step, Step, Step, Step, Step]
    const backend = new StubRateLimiterBackend()
    const barrier = new Barrier(backend, 'fixture-barrier', { ttl: 30_000 })
    expect(barrier.keyEvents).toBe('fixture-barrier@events')
    const value = (): string => String(backend.peek('fixture-barrier'))
    expect(await barrier.create(2)).toBe(created.returned)
    expect(value()).toBe(created.redis_keys['fixture-barrier']?.value)
    expect(await barrier.create(2)).toBe(createdAgain.returned)
    expect(await barrier.wait({ block: false })).toBe(wait1.returned) // false
    expect(value()).toBe(wait1.redis_keys['fixture-barrier']?.value) // "1"
    expect(await barrier.wait({ block: false })).toBe(wait2.returned) // true: the decrement is refused
    expect(value()).toBe(wait2.redis_keys['fixture-barrier']?.value) // still "1"
    expect(await barrier.wait({ block: false })).toBe(wait3.returned) // true again
    // The events list holds one "x" per clearing wait; a new waiter sees it at once.
    expect((wait3.redis_keys['fixture-barrier@events']?.value as string[]).length).toBe(2)
    expect(await backend.wait('fixture-barrier@events', 10)).toBe(true)
  })

  it('releases blocked parties promptly when the last one arrives', async () => {
    const backend = new StubRateLimiterBackend()
    const barrier = new Barrier(backend, 'gather')
    await barrier.create(3)
    const first = barrier.wait({ timeout: 5000 })
    const second = barrier.wait({ timeout: 5000 })
    let settled = false
    void Promise.race([first, second]).then(() => (settled = true))
    await new Promise((resolve) => setImmediate(resolve))
    expect(settled).toBe(false)
    const started = Date.now()
    expect(await barrier.wait()).toBe(true)
    expect(await Promise.all([first, second])).toEqual([true, true])
    expect(Date.now() - started).toBeLessThan(200)
  })

  it('returns false when a blocking wait times out', async () => {
    const barrier = new Barrier(new StubRateLimiterBackend(), 'slow')
    await barrier.create(2)
    const started = Date.now()
    expect(await barrier.wait({ timeout: 30 })).toBe(false)
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
  })

  it('reads a missing or expired barrier as cleared', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(1_000_000)
    const backend = new StubRateLimiterBackend()
    expect(await new Barrier(backend, 'never-created').wait({ block: false })).toBe(true)
    const barrier = new Barrier(backend, 'short', { ttl: 1000 })
    await barrier.create(5)
    expect(await barrier.wait({ block: false })).toBe(false)
    vi.setSystemTime(1_001_000)
    expect(await barrier.wait({ block: false })).toBe(true)
  })
})
