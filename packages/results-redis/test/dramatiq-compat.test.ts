/**
 * Compatibility with Python Dramatiq's RedisBackend, checked against fixtures/dramatiq-wire/
 * redis-results.json: results a Python worker stored are read by tq, and what tq stores (key,
 * bytes, TTL, command sequence) is what Dramatiq stores, on the StubBroker and on @tq/redis.
 */
import { createHash } from 'node:crypto'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  Message,
  ResultFailureError,
  Results,
  StubBroker,
  Worker,
  actor,
  defaultMiddleware,
  type Broker,
} from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { RedisResultBackend } from '../src/index.ts'
import {
  REDIS_URL,
  deleteMatching,
  loadResultsFixture,
  rawClient,
  uniqueNamespace,
  until,
  type ResultsFixturePart,
} from './helpers.ts'

const fixture = loadResultsFixture()
const raw = rawClient()
/** Keys in Dramatiq's own namespace (fixed by the fixture) that this file wrote. */
const written = new Set<string>()
const closers: Array<() => Promise<void>> = []
const brokerNamespace = uniqueNamespace('compat-broker')

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
  if (written.size > 0) await raw.del(...written)
  written.clear()
})

afterAll(async () => {
  await deleteMatching(raw, `${brokerNamespace}:*`)
  await raw.quit()
})

class ValueError extends Error {
  override name = 'ValueError'
}

type Part = keyof typeof fixture.parts
const PARTS = Object.keys(fixture.parts) as Part[]

function backendFor(part: ResultsFixturePart): RedisResultBackend {
  // Dramatiq's defaults: namespace "dramatiq-results", MD5 keys unless use_namespace_prefix_keys.
  const backend = new RedisResultBackend({ url: REDIS_URL, usePrefixKeys: part.use_namespace_prefix_keys })
  closers.push(() => backend.close())
  return backend
}

/** The single value Dramatiq left in the result list. */
function storedValue(part: ResultsFixturePart): string {
  const entry = part.redis_keys_after_processing[part.result_key]
  expect(entry?.type).toBe('list')
  const value = entry?.value as string[]
  expect(value).toHaveLength(1)
  return value[0] as string
}

/** The client commands of the result write, MULTI to EXEC, from the fixture's MONITOR trace. */
function storeCommands(part: ResultsFixturePart): string[][] {
  const cmds = part.redis_commands.filter((c) => c.from === 'client').map((c) => c.cmd)
  const start = cmds.findIndex((c) => c[0] === 'MULTI')
  const end = cmds.findIndex((c, i) => i > start && c[0] === 'EXEC')
  return cmds.slice(start, end + 1)
}

/** A StubBroker or a RedisBroker with the default stack plus Results on `backend`. */
function makeBroker(kind: 'stub' | 'redis', backend: RedisResultBackend): Broker {
  const middleware = [...defaultMiddleware(), new Results({ backend })]
  const broker =
    kind === 'stub'
      ? new StubBroker({ middleware })
      : new RedisBroker({ url: REDIS_URL, namespace: brokerNamespace, middleware })
  closers.push(() => broker.close())
  return broker
}

/** Dramatiq's scenario: add(x, y) returns {sum}, fails() raises ValueError("boom") with max_retries=0. */
async function runScenario(broker: Broker): Promise<{ ok: Message; failed: Message }> {
  const add = actor((x: number, y: number) => ({ sum: x + y }), { broker, actorName: 'add', storeResults: true })
  const fails = actor(
    (): never => {
      throw new ValueError('boom')
    },
    { broker, actorName: 'fails', storeResults: true, maxRetries: 0 },
  )
  const worker = new Worker(broker, { workerTimeout: 50 })
  await worker.start()
  closers.push(() => worker.stop({ timeout: 1000 }))
  const ok = await add.send(1, 2)
  const failed = await fails.send()
  // The failing message is dead-lettered on purpose: the StubBroker must not rethrow it.
  if (broker instanceof StubBroker) await broker.join('default', { failFast: false, timeout: 5000 })
  else await broker.join('default', { timeout: 5000 })
  return { ok, failed }
}

describe('results a Python Dramatiq worker stored', () => {
  it.each(PARTS)('are read by tq (%s)', async (name) => {
    const part = fixture.parts[name]
    const key = part.result_key
    const value = storedValue(part)
    // Write the fixture's bytes exactly the way Dramatiq did.
    await raw.multi().del(key).lpush(key, value).pexpire(key, 600_000).exec()
    written.add(key)
    const backend = backendFor(part)
    const message = Message.decode(Buffer.from(part.sent_message.encoded, 'utf8'))
    expect(backend.buildMessageKey(message)).toBe(key)
    const expected = part.get_result_block_true
    for (const options of [{}, { block: true, timeout: 2000 }]) {
      if (expected.raised === undefined) {
        expect(await backend.getResult(message, options)).toEqual(expected.value)
      } else {
        const error = await backend.getResult(message, options).catch((e: unknown) => e)
        expect(expected.raised).toBe('ResultFailure')
        expect(error).toBeInstanceOf(ResultFailureError)
        expect((error as ResultFailureError).message).toBe(expected.str)
        expect((error as ResultFailureError).origExcType).toBe(expected.orig_exc_type)
        expect((error as ResultFailureError).origExcMsg).toBe(expected.orig_exc_msg)
      }
    }
    // Reading leaves the list as Dramatiq's blocking read left it.
    const after = part.redis_keys_after_get_result[key]
    expect(await raw.lrange(key, 0, -1)).toEqual(after?.value)
  })
})

describe.each(['stub', 'redis'] as const)('what tq stores on the %s broker', (kind) => {
  it.each([false, true])('matches Dramatiq byte for byte (usePrefixKeys: %s)', async (usePrefixKeys) => {
    const parts = usePrefixKeys
      ? { ok: fixture.parts.success_namespace_prefix_keys, failed: fixture.parts.failure_namespace_prefix_keys }
      : { ok: fixture.parts.success, failed: fixture.parts.failure }
    const backend = new RedisResultBackend({ url: REDIS_URL, usePrefixKeys })
    closers.push(() => backend.close())
    const messages = await runScenario(makeBroker(kind, backend))

    for (const which of ['ok', 'failed'] as const) {
      const part = parts[which]
      const message = messages[which]
      // The key follows the fixture's rule with this message's id in place of the Python one.
      const source = part.result_key_source.replace(part.sent_message.parsed.message_id, message.messageId)
      const key = usePrefixKeys ? source : createHash('md5').update(source).digest('hex')
      expect(backend.buildMessageKey(message)).toBe(key)
      written.add(key)
      await until(async () => (await raw.exists(key)) === 1, `the ${which} result`)
      expect(await raw.type(key)).toBe('list')
      expect(await raw.lrange(key, 0, -1)).toEqual([storedValue(part)])
      const pttl = await raw.pttl(key)
      expect(pttl).toBeGreaterThan(590_000)
      expect(pttl).toBeLessThanOrEqual(600_000)
    }

    expect(await messages.ok.getResult({ backend, block: true, timeout: 2000 })).toEqual(
      parts.ok.get_result_block_true.value,
    )
    const error = await messages.failed.getResult({ backend, block: true, timeout: 2000 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ResultFailureError)
    expect((error as ResultFailureError).message).toBe(parts.failed.get_result_block_true.str)
  })
})

describe('the commands tq sends', () => {
  it("store with Dramatiq's MULTI/DEL/LPUSH/PEXPIRE/EXEC and wait with BLMOVE key key RIGHT LEFT <fractional seconds>", async () => {
    const part = fixture.parts.success
    const backend = backendFor(part)
    const message = new Message({ queueName: 'default', actorName: 'add', args: [1, 2] })
    const key = backend.buildMessageKey(message)
    written.add(key)
    await backend.getResult(message).catch(() => undefined) // connect before monitoring

    const monitor = await raw.monitor()
    closers.push(async () => monitor.disconnect())
    const seen: Array<{ args: string[]; source: string }> = []
    monitor.on('monitor', (_time: string, args: string[], source: string, database: string) => {
      if (database === '8') seen.push({ args, source })
    })
    // MONITOR may attach a moment after its reply; wait until our own marker shows up.
    await until(async () => {
      await raw.echo(`marker-${key}`)
      return seen.some((e) => e.args[1] === `marker-${key}`)
    }, 'MONITOR to start')

    const timeout = await backend.getResult(message, { block: true, timeout: 120 }).catch((e: unknown) => e)
    expect((timeout as Error).name).toBe('ResultTimeoutError')
    await backend.storeResult(message, { sum: 3 }, 600_000)
    await until(() => seen.some((e) => e.args[0]?.toUpperCase() === 'EXEC'), 'EXEC in the MONITOR trace')

    const ours = new Set(seen.filter((e) => e.args.includes(key)).map((e) => e.source))
    const commands = seen.filter((e) => ours.has(e.source)).map((e) => e.args)
    const blocking = commands.filter((c) => c[0]?.toUpperCase() === 'BLMOVE')
    expect(blocking).toHaveLength(1)
    const [, from, to, whereFrom, whereTo, seconds] = blocking[0] as string[]
    expect([from, to, whereFrom, whereTo]).toEqual([key, key, 'RIGHT', 'LEFT'])
    expect(Number(seconds)).toBeGreaterThan(0)
    expect(Number(seconds)).toBeLessThanOrEqual(0.12)
    expect(seconds).toMatch(/^0\.\d{3}$/)

    // The write, from its connection, is Dramatiq's transaction with the key substituted.
    const write = commands
      .filter((c) => ['MULTI', 'DEL', 'LPUSH', 'PEXPIRE', 'EXEC'].includes(c[0]?.toUpperCase() ?? ''))
      .map((c) => [(c[0] as string).toUpperCase(), ...c.slice(1)])
    const expected = storeCommands(part).map((c) => c.map((arg) => (arg === part.result_key ? key : arg)))
    expect(write).toEqual(expected)
    expect(expected.map((c) => c[0])).toEqual(['MULTI', 'DEL', 'LPUSH', 'PEXPIRE', 'EXEC'])
  })
})
