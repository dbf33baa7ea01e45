/**
 * RedisResultBackend against the real Redis (database 8, a namespace of this file's own):
 * storage, failures, expiry, and blocking reads (sub-second timeouts, prompt release,
 * concurrent waiters, the store-before-block race, close()).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  ConfigurationError,
  ConnectionClosedError,
  Message,
  ResultFailureError,
  ResultMissingError,
  ResultTimeoutError,
  type Missing,
} from '@tq/core'
import { Redis } from 'ioredis'
import { RedisResultBackend, type RedisResultBackendOptions } from '../src/index.ts'
import { REDIS_URL, deleteMatching, namedConnections, rawClient, uniqueNamespace, until } from './helpers.ts'

const namespace = uniqueNamespace('backend')
const raw = rawClient()
const backends: RedisResultBackend[] = []

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()))
})

afterAll(async () => {
  await deleteMatching(raw, `${namespace}:*`)
  await raw.quit()
})

/** A backend on this file's namespace with readable keys (so cleanup finds them). */
function makeBackend(options: RedisResultBackendOptions = {}): RedisResultBackend {
  const backend = new RedisResultBackend({ url: REDIS_URL, namespace, usePrefixKeys: true, ...options })
  backends.push(backend)
  return backend
}

const message = (actorName = 'add'): Message => new Message({ queueName: 'default', actorName, args: [1, 2] })

class ValueError extends Error {
  override name = 'ValueError'
}

/** Resolves when the backend has `count` blocking connections inside a blocking command on the server. */
async function blockedOnServer(backend: RedisResultBackend, count = 1): Promise<void> {
  await until(
    async () =>
      (await namedConnections(raw, `tq-results:${backend.backendId}:blocking`)).filter((c) => c.cmd === 'blmove')
        .length >= count,
    `${count} blocking command(s) on the server`,
  )
}

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

describe('RedisResultBackend storage', () => {
  it('stores a result as a one-element list of compact JSON (non-ASCII escaped) with its TTL', async () => {
    const backend = makeBackend()
    const m = message()
    await backend.storeResult(m, { sum: 3, text: 'héllo ✓ 😀' }, 60_000)
    const key = backend.buildMessageKey(m)
    expect(key).toBe(`${namespace}:default:add:${m.messageId}`)
    expect(await raw.type(key)).toBe('list')
    expect(await raw.lrange(key, 0, -1)).toEqual(['{"sum":3,"text":"h\\u00e9llo \\u2713 \\ud83d\\ude00"}'])
    const pttl = await raw.pttl(key)
    expect(pttl).toBeGreaterThan(59_000)
    expect(pttl).toBeLessThanOrEqual(60_000)
    expect(await backend.getResult(m)).toEqual({ sum: 3, text: 'héllo ✓ 😀' })
    expect(await backend.getResult(m, { block: true, timeout: 1000 })).toEqual({ sum: 3, text: 'héllo ✓ 😀' })
  })

  it('replaces an earlier result and stores scalars and null', async () => {
    const backend = makeBackend()
    const m = message()
    const key = backend.buildMessageKey(m)
    await backend.storeResult(m, 1, 60_000)
    await backend.storeResult(m, 'two', 60_000)
    expect(await raw.lrange(key, 0, -1)).toEqual(['"two"'])
    expect(await backend.getResult(m)).toBe('two')
    await backend.storeResult(m, undefined, 60_000)
    expect(await raw.lrange(key, 0, -1)).toEqual(['null'])
    expect(await backend.getResult(m)).toBeNull()
    await backend.storeResult(m, 3, 60_000)
    expect(await backend.getResult(m)).toBe(3)
  })

  it("stores a failure in Dramatiq's shape and raises ResultFailureError with the original type and message", async () => {
    const backend = makeBackend()
    const m = message('fails')
    await backend.storeException(m, new ValueError('boom'), 60_000)
    expect(await raw.lrange(backend.buildMessageKey(m), 0, -1)).toEqual([
      '{"__t":"dramatiq.results.Result","exn":{"type":"ValueError","msg":"boom"}}',
    ])
    for (const options of [{}, { block: true, timeout: 1000 }]) {
      const error = await backend.getResult(m, options).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ResultFailureError)
      expect((error as ResultFailureError).message).toBe('actor raised ValueError: boom')
      expect((error as ResultFailureError).origExcType).toBe('ValueError')
      expect((error as ResultFailureError).origExcMsg).toBe('boom')
    }
  })

  it('raises ResultMissingError for a result that was never stored', async () => {
    const backend = makeBackend()
    await expect(backend.getResult(message())).rejects.toBeInstanceOf(ResultMissingError)
    await expect(backend.getResult(message(), { block: true, timeout: 0 })).rejects.toBeInstanceOf(ResultTimeoutError)
  })

  it('forgets a result when its ttl runs out', async () => {
    const backend = makeBackend()
    const m = message()
    const key = backend.buildMessageKey(m)
    await backend.storeResult(m, 3, 150)
    const pttl = await raw.pttl(key)
    expect(pttl).toBeGreaterThan(0)
    expect(pttl).toBeLessThanOrEqual(150)
    expect(await backend.getResult(m)).toBe(3)
    await until(async () => (await raw.pttl(key)) === -2, 'the result to expire', 2000)
    await expect(backend.getResult(m)).rejects.toBeInstanceOf(ResultMissingError)
  })

  it('reads and writes through a given client, which close() leaves open', async () => {
    const client = new Redis(REDIS_URL)
    try {
      const backend = new RedisResultBackend({ client, namespace, usePrefixKeys: true })
      const m = message()
      await backend.storeResult(m, 'via client', 60_000)
      expect(await backend.getResult(m, { block: true, timeout: 500 })).toBe('via client')
      await backend.close()
      expect(await client.ping()).toBe('PONG')
      await expect(backend.getResult(m)).rejects.toBeInstanceOf(ConfigurationError)
    } finally {
      await client.quit()
    }
  })
})

describe('RedisResultBackend blocking reads', () => {
  it('honours a 250 ms timeout (ResultTimeoutError after 250–600 ms)', async () => {
    const backend = makeBackend()
    await backend.getResult(message()).catch(() => undefined) // connect first
    const { ms, outcome } = await elapsed(() => backend.getResult(message(), { block: true, timeout: 250 }))
    expect(outcome).toBeInstanceOf(ResultTimeoutError)
    expect(ms).toBeGreaterThanOrEqual(249)
    expect(ms).toBeLessThan(600)
  })

  it('honours a 60 ms timeout without polling: one blocking command on the server', async () => {
    const backend = makeBackend()
    const m = message()
    const pending = elapsed(() => backend.getResult(m, { block: true, timeout: 60 }))
    const { ms, outcome } = await pending
    expect(outcome).toBeInstanceOf(ResultTimeoutError)
    expect(ms).toBeGreaterThanOrEqual(59)
    expect(ms).toBeLessThan(400)
    expect(backend.blockingConnections).toBe(1)
  })

  it('releases a blocked reader within 100 ms of the result being stored', async () => {
    const reader = makeBackend()
    const writer = makeBackend()
    const m = message()
    const pending = reader.getResult(m, { block: true, timeout: 5000 })
    await blockedOnServer(reader)
    const stored = performance.now()
    await writer.storeResult(m, { sum: 3 }, 60_000)
    expect(await pending).toEqual({ sum: 3 })
    expect(performance.now() - stored).toBeLessThan(100)
  })

  it('leaves the value (and its TTL) in place for other readers', async () => {
    const backend = makeBackend()
    const other = makeBackend()
    const m = message()
    const key = backend.buildMessageKey(m)
    const pending = backend.getResult(m, { block: true, timeout: 5000 })
    await blockedOnServer(backend)
    await other.storeResult(m, 'kept', 60_000)
    expect(await pending).toBe('kept')
    expect(await raw.lrange(key, 0, -1)).toEqual(['"kept"'])
    const pttl = await raw.pttl(key)
    expect(pttl).toBeGreaterThan(59_000)
    expect(pttl).toBeLessThanOrEqual(60_000)
    expect(await other.getResult(m)).toBe('kept')
  })

  it('resolves 50 concurrent waiters on one result, sharing one blocking command', async () => {
    const backend = makeBackend()
    const m = message()
    const waiters = Array.from({ length: 50 }, () => backend.getResult(m, { block: true, timeout: 5000 }))
    await blockedOnServer(backend)
    expect(backend.pendingWaits).toBe(1)
    await makeBackend().storeResult(m, { sum: 3 }, 60_000)
    const results = await Promise.all(waiters)
    expect(results).toHaveLength(50)
    for (const r of results) expect(r).toEqual({ sum: 3 })
    expect(backend.blockingConnections).toBe(1)
    expect(backend.pendingWaits).toBe(0)
  })

  it('releases every blocking command waiting on one result (several backends, one list element)', async () => {
    const readers = Array.from({ length: 5 }, () => makeBackend())
    const m = message()
    const waiters = readers.flatMap((r) =>
      Array.from({ length: 10 }, () => r.getResult(m, { block: true, timeout: 5000 })),
    )
    for (const r of readers) await blockedOnServer(r)
    await makeBackend().storeResult(m, 7, 60_000)
    expect(await Promise.all(waiters)).toEqual(Array.from({ length: 50 }, () => 7))
    expect(await raw.lrange(readers[0]!.buildMessageKey(m), 0, -1)).toEqual(['7'])
  })

  it('gives waits on different results a connection each, up to the cap, and still serves the rest', async () => {
    const backend = makeBackend({ maxBlockingConnections: 2 })
    const writer = makeBackend()
    const messages = Array.from({ length: 6 }, () => message())
    const waiters = messages.map((m) => backend.getResult(m, { block: true, timeout: 5000 }))
    await blockedOnServer(backend, 2)
    expect(backend.blockingConnections).toBe(2)
    expect(backend.pendingWaits).toBe(6)
    await Promise.all(messages.map((m, i) => writer.storeResult(m, i, 60_000)))
    expect(await Promise.all(waiters)).toEqual([0, 1, 2, 3, 4, 5])
    expect(backend.blockingConnections).toBeLessThanOrEqual(2)
  })

  it('does not miss a result stored between the first look and the blocking command', async () => {
    const m = message()
    /** Stores the result right after the first (non-blocking) look came back empty. */
    class RacingBackend extends RedisResultBackend {
      looks = 0
      protected override async get(key: string): Promise<Uint8Array | Missing> {
        const value = await super.get(key)
        if (this.looks++ === 0) await raw.multi().del(key).lpush(key, '"raced"').pexpire(key, 60_000).exec()
        return value
      }
    }
    const backend = new RacingBackend({ url: REDIS_URL, namespace, usePrefixKeys: true })
    backends.push(backend)
    const { ms, outcome } = await elapsed(() => backend.getResult(m, { block: true, timeout: 5000 }))
    expect(outcome).toBe('raced')
    expect(backend.looks).toBe(1) // served by the blocking command, not by the last look at the deadline
    expect(ms).toBeLessThan(1000)
  })

  it('lets a caller time out alone while others keep waiting for the same result', async () => {
    const backend = makeBackend()
    const m = message()
    const patient = backend.getResult(m, { block: true, timeout: 5000 })
    const hasty = await elapsed(() => backend.getResult(m, { block: true, timeout: 150 }))
    expect(hasty.outcome).toBeInstanceOf(ResultTimeoutError)
    expect(hasty.ms).toBeLessThan(600)
    expect(backend.pendingWaits).toBe(1)
    await makeBackend().storeResult(m, 'late', 60_000)
    expect(await patient).toBe('late')
  })

  it('extends a shared wait for a caller that joins with a later deadline', async () => {
    const backend = makeBackend()
    const m = message()
    const first = backend.getResult(m, { block: true, timeout: 150 })
    await blockedOnServer(backend)
    const second = backend.getResult(m, { block: true, timeout: 3000 })
    await expect(first).rejects.toBeInstanceOf(ResultTimeoutError)
    // The first blocking command has ended; a new one waits for the second caller.
    await until(() => backend.pendingWaits === 1, 'the second wait')
    await blockedOnServer(backend)
    await makeBackend().storeResult(m, 'second', 60_000)
    expect(await second).toBe('second')
  })

  it('survives its blocking connection being killed while it waits', async () => {
    const backend = makeBackend()
    const m = message()
    const pending = backend.getResult(m, { block: true, timeout: 5000 })
    await blockedOnServer(backend)
    const name = `tq-results:${backend.backendId}:blocking`
    const [victim] = await namedConnections(raw, name)
    await raw.client('KILL', 'ID', victim!.id)
    // ioredis reconnects and sends the blocking command again.
    await until(
      async () => (await namedConnections(raw, name)).some((c) => c.id !== victim!.id && c.cmd === 'blmove'),
      'the blocking command on a new connection',
    )
    await makeBackend().storeResult(m, 'after reconnect', 60_000)
    expect(await pending).toBe('after reconnect')
  })

  it('closes blocking connections left idle for blockingIdleTimeout', async () => {
    const backend = makeBackend({ blockingIdleTimeout: 50 })
    await expect(backend.getResult(message(), { block: true, timeout: 30 })).rejects.toBeInstanceOf(ResultTimeoutError)
    expect(backend.blockingConnections).toBe(1)
    await until(() => backend.blockingConnections === 0, 'the idle connection to close', 2000)
    await until(
      async () => (await namedConnections(raw, `tq-results:${backend.backendId}:blocking`)).length === 0,
      'the server to see it closed',
      2000,
    )
  })

  it('close() fails pending reads and closes the connections it opened', async () => {
    const backend = makeBackend()
    const pending = backend.getResult(message(), { block: true, timeout: 5000 }).catch((e: unknown) => e)
    await blockedOnServer(backend)
    await backend.close()
    expect(await pending).toBeInstanceOf(ConnectionClosedError)
    expect(backend.blockingConnections).toBe(0)
    await until(() => backend.client.status === 'end', 'the owned client to end')
    await until(
      async () => (await namedConnections(raw, `tq-results:${backend.backendId}:blocking`)).length === 0,
      'the blocking connection to close',
    )
    await until(
      async () => (await namedConnections(raw, `tq-results:${backend.backendId}`)).length === 0,
      'the command connection to close',
    )
    await expect(backend.storeResult(message(), 1, 1000)).rejects.toBeInstanceOf(ConfigurationError)
  })
})
