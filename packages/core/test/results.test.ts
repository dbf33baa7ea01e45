import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  ConfigurationError,
  Message,
  Missing,
  ResultBackendBase,
  ResultFailureError,
  ResultMissingError,
  ResultTimeoutError,
  Results,
  SkipMessage,
  StubBroker,
  StubResultBackend,
  Worker,
  actor,
  createLogger,
  defaultMiddleware,
  setBroker,
  type LogEntry,
  type Middleware,
} from '../src/index.ts'
import { loadFixture } from './support/fixtures.ts'

class ValueError extends Error {
  override name = 'ValueError'
}

/** A backend over a plain Map, exercising the base class (its default polling wait included). */
class MapBackend extends ResultBackendBase {
  readonly data = new Map<string, Uint8Array>()
  readonly ttls = new Map<string, number>()
  gets = 0
  protected override async get(key: string): Promise<Uint8Array | typeof Missing> {
    this.gets++
    return this.data.get(key) ?? Missing
  }
  protected override async store(key: string, value: Uint8Array, ttl: number): Promise<void> {
    this.data.set(key, value)
    this.ttls.set(key, ttl)
  }
}

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('utf8')

const workers: Worker[] = []
afterEach(async () => {
  vi.useRealTimers()
  setBroker(undefined)
  for (const w of workers.splice(0)) await w.stop({ timeout: 1000 })
})

function setup(
  options: { backend?: ResultBackendBase; results?: Partial<ConstructorParameters<typeof Results>[0]> } = {},
) {
  const backend = options.backend ?? new StubResultBackend()
  const logs: LogEntry[] = []
  const results = new Results({ backend, ...options.results })
  const broker = new StubBroker({
    middleware: [...defaultMiddleware(), results],
    logger: createLogger((entry) => logs.push(entry)),
  })
  const worker = new Worker(broker, { workerTimeout: 50 })
  workers.push(worker)
  return { backend, broker, worker, logs, results }
}

describe('ResultBackendBase keys and stored format (Dramatiq-compatible)', () => {
  type Part = { result_key_source: string; result_key: string; sent_message: { parsed: Record<string, unknown> } }
  const fixture = loadFixture<{ parts: Record<string, Part> }>('redis-results')

  it('builds the MD5 key of <namespace>:<queue>:<actor>:<messageId>, or the plain key with usePrefixKeys', () => {
    for (const [name, part] of Object.entries(fixture.parts)) {
      const message = Message.fromWire(part.sent_message.parsed)
      const backend = new MapBackend({ usePrefixKeys: name.endsWith('prefix_keys') })
      expect(backend.buildMessageKey(message)).toBe(part.result_key)
    }
    // The delay queue maps to its canonical queue, and the namespace is configurable.
    const plain = new MapBackend({ usePrefixKeys: true, namespace: 'ns' })
    const message = new Message({ queueName: 'q.DQ', actorName: 'a', messageId: 'id' })
    expect(plain.buildMessageKey(message)).toBe('ns:q:a:id')
    expect(new MapBackend().buildMessageKey(message)).toMatch(/^[0-9a-f]{32}$/)
  })

  it('stores results as compact JSON and failures in Dramatiq exact shape', async () => {
    const backend = new MapBackend()
    const ok = new Message({ queueName: 'default', actorName: 'add', messageId: 'm1' })
    const bad = new Message({ queueName: 'default', actorName: 'fails', messageId: 'm2' })
    await backend.storeResult(ok, { sum: 3, name: 'é' }, 600_000)
    await backend.storeException(bad, new ValueError('boom'), 600_000)
    expect(text(backend.data.get(backend.buildMessageKey(ok)))).toBe('{"sum":3,"name":"\\u00e9"}')
    expect(text(backend.data.get(backend.buildMessageKey(bad)))).toBe(
      '{"__t":"dramatiq.results.Result","exn":{"type":"ValueError","msg":"boom"}}',
    )
    expect(backend.ttls.get(backend.buildMessageKey(ok))).toBe(600_000)
    expect(await backend.getResult(ok)).toEqual({ sum: 3, name: 'é' })
    const error = await backend.getResult(bad).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ResultFailureError)
    expect((error as ResultFailureError).message).toBe('actor raised ValueError: boom')
    expect((error as ResultFailureError).origExcType).toBe('ValueError')
    expect((error as ResultFailureError).origExcMsg).toBe('boom')
  })

  it('reads what a Python peer wrote (non-object results included)', async () => {
    const backend = new MapBackend()
    const message = new Message({ queueName: 'default', actorName: 'add', messageId: 'm' })
    for (const [raw, value] of [
      ['3', 3],
      ['null', null],
      ['"\\u00e9t\\u00e9"', 'été'],
      ['[1,2]', [1, 2]],
    ] as const) {
      backend.data.set(backend.buildMessageKey(message), Buffer.from(raw))
      expect(await backend.getResult(message)).toEqual(value)
    }
  })

  it('stores an undefined result as null', async () => {
    const backend = new MapBackend()
    const message = new Message({ queueName: 'default', actorName: 'a' })
    await backend.storeResult(message, undefined, 1000)
    expect(text(backend.data.get(backend.buildMessageKey(message)))).toBe('null')
    expect(await backend.getResult(message)).toBeNull()
  })

  it('raises ResultMissingError without blocking, ResultTimeoutError when a blocking read times out', async () => {
    const backend = new MapBackend()
    const message = new Message({ queueName: 'default', actorName: 'a' })
    await expect(backend.getResult(message)).rejects.toBeInstanceOf(ResultMissingError)
    const started = Date.now()
    await expect(backend.getResult(message, { block: true, timeout: 60 })).rejects.toBeInstanceOf(ResultTimeoutError)
    expect(Date.now() - started).toBeGreaterThanOrEqual(55)
    expect(Date.now() - started).toBeLessThan(1000)
    await expect(backend.getResult(message, { block: true, timeout: 0 })).rejects.toBeInstanceOf(ResultTimeoutError)
  })

  it('polls by default until the value appears', async () => {
    const backend = new MapBackend()
    const message = new Message({ queueName: 'default', actorName: 'a' })
    const pending = backend.getResult(message, { block: true, timeout: 5000 })
    await Promise.resolve()
    await backend.storeResult(message, 42, 1000)
    await expect(pending).resolves.toBe(42)
    expect(backend.gets).toBeGreaterThanOrEqual(2)
  })
})

describe('StubResultBackend', () => {
  it('wakes a blocking read as soon as the result is stored', async () => {
    const backend = new StubResultBackend()
    const message = new Message({ queueName: 'default', actorName: 'a' })
    const started = Date.now()
    const pending = backend.getResult(message, { block: true, timeout: 5000 })
    setTimeout(() => void backend.storeResult(message, 'done', 1000), 20)
    await expect(pending).resolves.toBe('done')
    expect(Date.now() - started).toBeLessThan(500)
  })

  it('expires results after their ttl', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(1_000_000)
    const backend = new StubResultBackend()
    const message = new Message({ queueName: 'default', actorName: 'a' })
    await backend.storeResult(message, 1, 500)
    vi.setSystemTime(1_000_499)
    expect(await backend.getResult(message)).toBe(1)
    expect(backend.size).toBe(1)
    vi.setSystemTime(1_000_500)
    await expect(backend.getResult(message)).rejects.toBeInstanceOf(ResultMissingError)
    expect(backend.size).toBe(0)
  })

  it('keeps a separate store per instance', async () => {
    const a = new StubResultBackend()
    const b = new StubResultBackend()
    const message = new Message({ queueName: 'default', actorName: 'a' })
    await a.storeResult(message, 1, 1000)
    await expect(b.getResult(message)).rejects.toBeInstanceOf(ResultMissingError)
  })
})

describe('Results middleware', () => {
  it('stores results of actors with storeResults and reads them back through the message', async () => {
    const { backend, broker, worker } = setup()
    const add = actor('add', (x: number, y: number) => ({ sum: x + y }), { broker, storeResults: true })
    await worker.start()
    const message = await add.send(1, 2)
    expect(await message.getResult({ backend, block: true })).toEqual({ sum: 3 })
    // The backend is inferred from the global broker's Results middleware.
    setBroker(broker)
    expect(await message.getResult()).toEqual({ sum: 3 })
    expect(broker.getResultBackend()).toBe(backend)
  })

  it('exposes the backend as resultBackend for broker.getResultBackend()', () => {
    const backend = new StubResultBackend()
    const results = new Results({ backend })
    expect(results.resultBackend).toBe(backend)
    expect(results.backend).toBe(backend)
    expect(results.storeResults).toBe(false)
    expect(results.resultTtl).toBe(600_000)
    expect(() => new StubBroker({ middleware: defaultMiddleware() }).getResultBackend()).toThrow(ConfigurationError)
  })

  it('stores the failure of a message that is given up on, as ResultFailureError', async () => {
    const { backend, broker, worker } = setup()
    const fails = actor(
      'fails',
      () => {
        throw new ValueError('boom')
      },
      { broker, storeResults: true, maxRetries: 0 },
    )
    await worker.start()
    const message = await fails.send()
    const error = await message.getResult({ backend, block: true, timeout: 2000 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ResultFailureError)
    expect(error).toMatchObject({
      origExcType: 'ValueError',
      origExcMsg: 'boom',
      message: 'actor raised ValueError: boom',
    })
  })

  it('stores only the final outcome of a retried message', async () => {
    const { backend, broker, worker } = setup()
    let attempts = 0
    const flaky = actor(
      'flaky',
      () => {
        if (++attempts < 3) throw new ValueError(`attempt ${attempts}`)
        return attempts
      },
      { broker, storeResults: true, maxRetries: 5, minBackoff: 5, maxBackoff: 10 },
    )
    await worker.start()
    const message = await flaky.send()
    expect(await message.getResult({ backend, block: true, timeout: 2000 })).toBe(3)
  })

  it('raises ResultMissingError before the result exists and ResultTimeoutError on a short blocking read', async () => {
    const { backend, broker } = setup()
    const slow = actor('slow', () => 1, { broker, storeResults: true })
    const message = await slow.send() // no worker running
    await expect(message.getResult({ backend })).rejects.toBeInstanceOf(ResultMissingError)
    await expect(message.getResult({ backend, block: true, timeout: 30 })).rejects.toBeInstanceOf(ResultTimeoutError)
  })

  it('wakes a blocking reader when the worker stores the result', async () => {
    const { backend, broker, worker } = setup()
    const add = actor('add', (x: number, y: number) => x + y, { broker, storeResults: true })
    const message = await add.send(2, 3)
    const pending = message.getResult({ backend, block: true, timeout: 5000 })
    await worker.start()
    expect(await pending).toBe(5)
  })

  it('honours the middleware default, the actor option and the message option, in that order', async () => {
    const { backend, broker, worker } = setup({ results: { storeResults: true } })
    const byDefault = actor('byDefault', () => 'default', { broker })
    const optedOut = actor('optedOut', () => 'actor', { broker, storeResults: false })
    await worker.start()
    const m1 = await byDefault.send()
    const m2 = await optedOut.send()
    const m3 = await optedOut.sendWithOptions({ args: [], storeResults: true })
    const m4 = await byDefault.sendWithOptions({ args: [], storeResults: false })
    await broker.join('default')
    await worker.join()
    expect(await m1.getResult({ backend })).toBe('default')
    await expect(m2.getResult({ backend })).rejects.toBeInstanceOf(ResultMissingError)
    expect(await m3.getResult({ backend })).toBe('actor')
    await expect(m4.getResult({ backend })).rejects.toBeInstanceOf(ResultMissingError)
  })

  it('uses resultTtl from the message, then the actor, then the middleware', async () => {
    const backend = new MapBackend({ usePrefixKeys: true })
    const { broker, worker } = setup({ backend, results: { resultTtl: 1234 } })
    const a = actor('a', () => 1, { broker, storeResults: true })
    const b = actor('b', () => 1, { broker, storeResults: true, resultTtl: 50_000 })
    await worker.start()
    const m1 = await a.send()
    const m2 = await b.send()
    const m3 = await b.sendWithOptions({ args: [], resultTtl: 7 })
    await broker.join('default')
    await worker.join()
    expect(backend.ttls.get(backend.buildMessageKey(m1))).toBe(1234)
    expect(backend.ttls.get(backend.buildMessageKey(m2))).toBe(50_000)
    expect(backend.ttls.get(backend.buildMessageKey(m3))).toBe(7)
  })

  it('expires stored results after resultTtl', async () => {
    const { backend, broker, worker } = setup()
    const a = actor('a', () => 'x', { broker, storeResults: true, resultTtl: 1000 })
    await worker.start()
    const message = await a.send()
    expect(await message.getResult({ backend, block: true })).toBe('x')
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + 1000)
    await expect(message.getResult({ backend })).rejects.toBeInstanceOf(ResultMissingError)
  })

  it('stores the SkipMessage of an AgeLimit skip (via afterNack)', async () => {
    const { backend, broker, worker } = setup()
    let ran = false
    const old = actor('old', () => (ran = true), { broker, storeResults: true, maxAge: 10 })
    const message = old.message().copy({ messageTimestamp: Date.now() - 1000 })
    await broker.enqueue(message)
    await worker.start()
    const error = await message.getResult({ backend, block: true, timeout: 2000 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ResultFailureError)
    expect((error as ResultFailureError).origExcType).toBe('SkipMessage')
    expect(ran).toBe(false)
  })

  it('stores null for a message skipped without being failed', async () => {
    const skipper: Middleware = {
      beforeProcessMessage: (_broker, proxy) => {
        if (proxy.args[0] === 'skip') throw new SkipMessage()
      },
    }
    const { backend, broker, worker } = setup()
    broker.addMiddleware(skipper)
    const echo = actor('echo', (value: string) => value, { broker, storeResults: true })
    await worker.start()
    const skipped = await echo.send('skip')
    const run = await echo.send('run')
    expect(await skipped.getResult({ backend, block: true })).toBeNull()
    expect(await run.getResult({ backend, block: true })).toBe('run')
    expect(broker.deadLetters).toHaveLength(0)
  })

  it('stores a failure when the result cannot be encoded, instead of leaving readers waiting', async () => {
    const { backend, broker, worker, logs } = setup()
    const big = actor('big', () => 10n, { broker, storeResults: true })
    await worker.start()
    const message = await big.send()
    const error = await message.getResult({ backend, block: true, timeout: 2000 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ResultFailureError)
    expect((error as ResultFailureError).origExcMsg).toMatch(/BigInt/)
    expect(logs.some((e) => e.level === 'error' && e.msg.includes('Could not store the result'))).toBe(true)
  })

  it('warns when a returned value is discarded, but not for undefined or null', async () => {
    const { broker, worker, logs } = setup()
    const one = actor('one', () => 1, { broker })
    const nothing = actor('nothing', () => undefined, { broker })
    const nil = actor('nil', () => null, { broker })
    await worker.start()
    await nothing.send()
    await nil.send()
    await broker.join('default')
    await worker.join()
    const discarded = (): LogEntry[] => logs.filter((e) => e.level === 'warn' && e.msg.includes('discarded'))
    expect(discarded()).toHaveLength(0)
    const message = await one.send()
    await broker.join('default')
    await worker.join()
    expect(discarded()).toHaveLength(1)
    expect(discarded()[0]?.meta).toMatchObject({ messageId: message.messageId, component: 'results' })
  })

  it('does not warn about a discarded value that is piped to the next step', async () => {
    const { broker, worker, logs } = setup()
    const seen: number[] = []
    const one = actor('one', () => 1, { broker })
    const sink = actor('sink', (x?: number) => void seen.push(x ?? -1), { broker })
    await worker.start()
    const first = one.message()
    first.options.pipeTarget = sink.message().asDict()
    await broker.enqueue(first)
    await broker.join('default')
    await worker.join()
    expect(seen).toEqual([1])
    expect(logs.filter((e) => e.level === 'warn' && e.msg.includes('discarded'))).toHaveLength(0)
  })
})
