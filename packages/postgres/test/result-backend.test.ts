/**
 * PostgresResultBackend against the real server (a schema of this file's own): storage,
 * failures, expiry and its sweep, blocking reads (sub-second timeouts, prompt release by another
 * instance's store, concurrent waiters, the store-before-block race, a lost LISTEN connection),
 * migrate: false, and close() with an owned or a given pool.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  ConfigurationError,
  ConnectionClosedError,
  InvalidArgumentError,
  Message,
  ResultFailureError,
  ResultMissingError,
  ResultTimeoutError,
  type Missing,
} from '@tq/core'
import { waitFor } from '@tq/core/testing'
import type pg from 'pg'
import { PostgresResultBackend, type PostgresResultBackendOptions } from '../src/result-backend.ts'
import { SchemaVersionError } from '../src/schema.ts'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const schema = testSchema('tq_results')
const namespace = 'tq-test'
const pool = testPool()
const backends: PostgresResultBackend[] = []

afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => b.close()))
})

afterAll(async () => {
  await dropSchema(pool, schema)
  await pool.end()
})

/** A backend on this file's schema, with readable keys and its own application_name. */
function makeBackend<B extends PostgresResultBackend = PostgresResultBackend>(
  options: PostgresResultBackendOptions = {},
  Class: new (options: PostgresResultBackendOptions) => B = PostgresResultBackend as never,
): B {
  const backend = new Class({
    connectionString: PG_URL,
    schema,
    namespace,
    usePrefixKeys: true,
    poolOptions: { application_name: `tq-test-${randomUUID().slice(0, 8)}` },
    ...options,
  })
  backends.push(backend)
  return backend
}

/** Counts its looks (reads of a key) and whether one is running. */
class CountingBackend extends PostgresResultBackend {
  looks = 0
  looking = 0
  protected override async get(key: string): Promise<Uint8Array | Missing> {
    this.looks++
    this.looking++
    try {
      return await super.get(key)
    } finally {
      this.looking--
    }
  }
}

/** Resolves once `backend` listens and has no look running: its waits are asleep on the doorbell. */
async function asleep(backend: CountingBackend): Promise<void> {
  await waitFor(() => backend.listening && backend.looking === 0, { message: 'the waits to sleep on the doorbell' })
}

const message = (actorName = 'add'): Message => new Message({ queueName: 'default', actorName, args: [1, 2] })

class ValueError extends Error {
  override name = 'ValueError'
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

async function row(key: string): Promise<{ value: Buffer; ttl: number } | undefined> {
  const { rows } = await pool.query<{ value: Buffer; ttl: number }>(
    `SELECT value, extract(epoch FROM expires_at - now()) * 1000 AS ttl FROM ${schema}.results WHERE key = $1`,
    [key],
  )
  return rows[0]
}

describe('PostgresResultBackend storage', () => {
  it('stores a result as compact JSON (non-ASCII escaped) with its ttl, and reads it back', async () => {
    const backend = makeBackend()
    const m = message()
    await backend.storeResult(m, { sum: 3, text: 'héllo ✓ 😀' }, 60_000)
    const key = backend.buildMessageKey(m)
    expect(key).toBe(`${namespace}:default:add:${m.messageId}`)
    const stored = await row(key)
    expect(stored?.value.toString()).toBe('{"sum":3,"text":"h\\u00e9llo \\u2713 \\ud83d\\ude00"}')
    expect(Number(stored?.ttl)).toBeGreaterThan(59_000)
    expect(Number(stored?.ttl)).toBeLessThanOrEqual(60_000)
    expect(await backend.getResult(m)).toEqual({ sum: 3, text: 'héllo ✓ 😀' })
    expect(await backend.getResult(m, { block: true, timeout: 1000 })).toEqual({ sum: 3, text: 'héllo ✓ 😀' })
  })

  it("uses Dramatiq's MD5 keys by default, replaces earlier results and stores scalars and null", async () => {
    const backend = makeBackend({ usePrefixKeys: false })
    const m = message()
    const key = backend.buildMessageKey(m)
    expect(key).toMatch(/^[0-9a-f]{32}$/)
    await backend.storeResult(m, 1, 60_000)
    await backend.storeResult(m, 'two', 60_000)
    expect((await row(key))?.value.toString()).toBe('"two"')
    expect(await backend.getResult(m)).toBe('two')
    await backend.storeResult(m, undefined, 60_000)
    expect(await backend.getResult(m)).toBeNull()
    await backend.storeResult(m, 3, 60_000)
    expect(await backend.getResult(m)).toBe(3)
  })

  it("stores a failure in Dramatiq's shape and raises ResultFailureError with the original type and message", async () => {
    const backend = makeBackend()
    const m = message('fails')
    await backend.storeException(m, new ValueError('boom'), 60_000)
    expect((await row(backend.buildMessageKey(m)))?.value.toString()).toBe(
      '{"__t":"dramatiq.results.Result","exn":{"type":"ValueError","msg":"boom"}}',
    )
    for (const options of [{}, { block: true, timeout: 1000 }]) {
      const error = await backend.getResult(m, options).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ResultFailureError)
      expect((error as ResultFailureError).message).toBe('actor raised ValueError: boom')
      expect((error as ResultFailureError).origExcType).toBe('ValueError')
      expect((error as ResultFailureError).origExcMsg).toBe('boom')
    }
  })

  it('raises ResultMissingError for a result never stored, ResultTimeoutError for a blocking read of it', async () => {
    const backend = makeBackend()
    await expect(backend.getResult(message())).rejects.toBeInstanceOf(ResultMissingError)
    await expect(backend.getResult(message(), { block: true, timeout: 0 })).rejects.toBeInstanceOf(ResultTimeoutError)
  })

  it('forgets a result when its ttl runs out, also for blocking reads', async () => {
    const backend = makeBackend()
    const m = message()
    await backend.storeResult(m, 3, 200)
    expect(await backend.getResult(m)).toBe(3)
    await waitFor(
      () =>
        backend.getResult(m).then(
          () => false,
          (e: unknown) => e instanceof ResultMissingError,
        ),
      {
        message: 'the result to expire',
        timeout: 3000,
      },
    )
    await expect(backend.getResult(m, { block: true, timeout: 50 })).rejects.toBeInstanceOf(ResultTimeoutError)
    // The row may still be there (expired rows are swept later); it just reads as absent.
    await backend.storeResult(m, 4, 60_000)
    expect(await backend.getResult(m)).toBe(4)
  })

  it('deletes expired rows now and then when storing', async () => {
    await makeBackend().migrate()
    const keys = Array.from({ length: 20 }, (_, i) => `${namespace}:sweep:${i}`)
    await pool.query(
      `INSERT INTO ${schema}.results (key, value, expires_at) SELECT k, '\\x31', now() - interval '1 second' FROM unnest($1::text[]) AS k`,
      [keys],
    )
    const backend = makeBackend() // a new backend sweeps on its first store
    await backend.storeResult(message(), 1, 60_000)
    await waitFor(
      async () => (await pool.query(`SELECT 1 FROM ${schema}.results WHERE key = ANY($1)`, [keys])).rowCount === 0,
      { message: 'the expired rows to be deleted' },
    )
  })

  it('refuses a bad ttl or timeout with InvalidArgumentError', async () => {
    const backend = makeBackend()
    await expect(backend.storeResult(message(), 1, Number.NaN)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(backend.storeResult(message(), 1, -1)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(backend.getResult(message(), { block: true, timeout: Number.NaN })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    )
  })

  it('with migrate: false, a schema without the tables is a SchemaVersionError until it is migrated', async () => {
    const missing = testSchema('tq_results_missing')
    try {
      const backend = makeBackend({ schema: missing, migrate: false })
      const error = await backend.storeResult(message(), 1, 1000).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(SchemaVersionError)
      expect(error).toMatchObject({ schema: missing, component: 'results', found: 0, expected: 1 })
      await expect(backend.getResult(message())).rejects.toBeInstanceOf(SchemaVersionError)
      expect(await makeBackend({ schema: missing }).migrate()).toEqual([{ component: 'results', version: 1 }])
      const m = message()
      await backend.storeResult(m, 'now', 1000)
      expect(await backend.getResult(m)).toBe('now')
    } finally {
      await dropSchema(pool, missing)
    }
  })

  it("goes through a user's pool, which close() leaves open", async () => {
    const own = testPool(3)
    try {
      const backend = new PostgresResultBackend({ pool: own, schema, namespace, usePrefixKeys: true })
      const m = message()
      await backend.storeResult(m, 'via pool', 60_000)
      expect(await backend.getResult(m, { block: true, timeout: 500 })).toBe('via pool')
      await expect(backend.getResult(message(), { block: true, timeout: 50 })).rejects.toBeInstanceOf(
        ResultTimeoutError,
      )
      await backend.close()
      expect(own.ended).toBe(false)
      expect((await own.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }])
      await expect(backend.getResult(m)).rejects.toBeInstanceOf(ConfigurationError)
    } finally {
      await own.end()
    }
  })
})

describe('PostgresResultBackend blocking reads', () => {
  it('honours a 250 ms timeout (ResultTimeoutError after 250–600 ms)', async () => {
    const backend = makeBackend()
    await backend.getResult(message()).catch(() => undefined) // connect and migrate first
    const { ms, outcome } = await elapsed(() => backend.getResult(message(), { block: true, timeout: 250 }))
    expect(outcome).toBeInstanceOf(ResultTimeoutError)
    expect(ms).toBeGreaterThanOrEqual(249)
    expect(ms).toBeLessThan(600)
  })

  it('honours a 60 ms timeout with a look at the start and one at the deadline, no polling', async () => {
    const backend = makeBackend({}, CountingBackend)
    await backend.getResult(message()).catch(() => undefined)
    backend.looks = 0
    const { ms, outcome } = await elapsed(() => backend.getResult(message(), { block: true, timeout: 60 }))
    expect(outcome).toBeInstanceOf(ResultTimeoutError)
    expect(ms).toBeGreaterThanOrEqual(59)
    expect(ms).toBeLessThan(400)
    // The first look, perhaps one more when LISTEN came up (it rings every key), the last look.
    expect(backend.looks).toBeGreaterThanOrEqual(2)
    expect(backend.looks).toBeLessThanOrEqual(3)
  })

  it('releases a blocked reader within 200 ms of another instance storing the result', async () => {
    const reader = makeBackend({}, CountingBackend)
    const writer = makeBackend()
    const m = message()
    const pending = reader.getResult(m, { block: true, timeout: 5000 })
    await asleep(reader)
    const looks = reader.looks
    const stored = performance.now()
    await writer.storeResult(m, { sum: 3 }, 60_000)
    expect(await pending).toEqual({ sum: 3 })
    expect(performance.now() - stored).toBeLessThan(200) // well before the 1 s re-check
    expect(reader.looks).toBe(looks + 1) // woken once, by the notification
  })

  it('resolves 50 concurrent waiters on one result with a few shared reads', async () => {
    const backend = makeBackend({}, CountingBackend)
    const m = message()
    const waiters = Array.from({ length: 50 }, () => backend.getResult(m, { block: true, timeout: 5000 }))
    await asleep(backend)
    await makeBackend().storeResult(m, { sum: 3 }, 60_000)
    const results = await Promise.all(waiters)
    expect(results).toHaveLength(50)
    for (const r of results) expect(r).toEqual({ sum: 3 })
    expect(backend.looks).toBeLessThanOrEqual(6)
  })

  it('releases waiters on one result in several backends, and the value stays for later readers', async () => {
    const readers = Array.from({ length: 5 }, () => makeBackend({}, CountingBackend))
    const m = message()
    const waiters = readers.flatMap((r) =>
      Array.from({ length: 10 }, () => r.getResult(m, { block: true, timeout: 5000 })),
    )
    for (const r of readers) await asleep(r)
    await makeBackend().storeResult(m, 7, 60_000)
    expect(await Promise.all(waiters)).toEqual(Array.from({ length: 50 }, () => 7))
    expect(await readers[0]!.getResult(m)).toBe(7)
  })

  it('serves waits on many different results at once', async () => {
    const backend = makeBackend({ poolOptions: { max: 3 } })
    const writer = makeBackend()
    const messages = Array.from({ length: 20 }, () => message())
    const waiters = messages.map((m) => backend.getResult(m, { block: true, timeout: 5000 }))
    await waitFor(() => backend.listening)
    await Promise.all(messages.map((m, i) => writer.storeResult(m, i, 60_000)))
    expect(await Promise.all(waiters)).toEqual(messages.map((_, i) => i))
  })

  it('does not miss a result stored between the first look and the sleep', async () => {
    const writer = makeBackend()
    const m = message()
    /** Stores the result (through another backend) right after its first look came back empty. */
    class RacingBackend extends CountingBackend {
      armed = false
      protected override async get(key: string): Promise<Uint8Array | Missing> {
        const value = await super.get(key)
        if (this.armed) {
          this.armed = false
          await writer.storeResult(m, 'raced', 60_000)
        }
        return value
      }
    }
    // Once before LISTEN is up (the doorbell rings every key when it comes up) and once after.
    for (const warm of [false, true]) {
      const backend = makeBackend({}, RacingBackend)
      if (warm) {
        await backend.getResult(message(), { block: true, timeout: 10 }).catch(() => undefined)
        await waitFor(() => backend.listening)
        backend.looks = 0
      }
      backend.armed = true
      const { ms, outcome } = await elapsed(() => backend.getResult(m, { block: true, timeout: 5000 }))
      expect(outcome).toBe('raced')
      expect(ms).toBeLessThan(500) // not the 1 s re-check
      if (warm) expect(backend.looks).toBe(2)
      await pool.query(`DELETE FROM ${schema}.results WHERE key = $1`, [backend.buildMessageKey(m)])
    }
  })

  it('lets a caller time out alone while others keep waiting for the same result', async () => {
    const backend = makeBackend()
    const m = message()
    const patient = backend.getResult(m, { block: true, timeout: 5000 })
    const hasty = await elapsed(() => backend.getResult(m, { block: true, timeout: 150 }))
    expect(hasty.outcome).toBeInstanceOf(ResultTimeoutError)
    expect(hasty.ms).toBeLessThan(600)
    await makeBackend().storeResult(m, 'late', 60_000)
    expect(await patient).toBe('late')
  })

  it('listens again after its LISTEN connection is killed', async () => {
    const name = `tq-test-${randomUUID().slice(0, 8)}`
    const backend = makeBackend({ poolOptions: { application_name: name } }, CountingBackend)
    const listeners = async (): Promise<number[]> =>
      (
        await pool.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'`,
          [name],
        )
      ).rows.map((r) => r.pid)
    const m = message()
    const pending = backend.getResult(m, { block: true, timeout: 10_000 })
    await asleep(backend)
    const [victim] = await listeners()
    expect(victim).toBeDefined()
    await pool.query('SELECT pg_terminate_backend($1)', [victim])
    await waitFor(async () => backend.listening && (await listeners()).some((pid) => pid !== victim), {
      message: 'a new LISTEN connection',
    })
    await asleep(backend)
    const stored = performance.now()
    await makeBackend().storeResult(m, 'after reconnect', 60_000)
    expect(await pending).toBe('after reconnect')
    expect(performance.now() - stored).toBeLessThan(500)
  })

  it('without LISTEN (listen: false), a blocking read still finds the result by looking again', async () => {
    const backend = makeBackend({ listen: false })
    const m = message()
    const pending = elapsed(() => backend.getResult(m, { block: true, timeout: 5000 }))
    await makeBackend().storeResult(m, 'polled', 60_000)
    const { ms, outcome } = await pending
    expect(outcome).toBe('polled')
    expect(ms).toBeLessThan(1500)
    expect(backend.listening).toBe(false)
  })

  it('close() fails pending reads with ConnectionClosedError and ends the pool it built', async () => {
    const backend = makeBackend({}, CountingBackend)
    const pending = backend.getResult(message(), { block: true, timeout: 5000 }).catch((e: unknown) => e)
    await asleep(backend)
    const { ms } = await elapsed(() => backend.close())
    expect(await pending).toBeInstanceOf(ConnectionClosedError)
    expect(ms).toBeLessThan(1000)
    expect((backend.pool as pg.Pool).ended).toBe(true)
    await expect(backend.storeResult(message(), 1, 1000)).rejects.toBeInstanceOf(ConfigurationError)
    await backend.close() // twice is fine
  })
})
