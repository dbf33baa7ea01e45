import { describe, expect, it } from 'vitest'
import {
  Backoff,
  OutageLog,
  RelayLogger,
  Semaphore,
  SignalCombiner,
  decodeOrReport,
  foreignMessageError,
  pollUntilEmpty,
  socketErrorKind,
} from '../src/adapter/index.ts'
import {
  BrokerClosedError,
  BrokerConnectionError,
  ConnectionClosedError,
  ErrorCode,
  InvalidArgumentError,
  JSONEncoder,
  Message,
  MessageProxy,
  Notifier,
  QueueJoinTimeoutError,
  StubBroker,
  TqError,
} from '../src/index.ts'
import { createCapturingLogger } from '../src/testing/index.ts'

describe('Backoff', () => {
  it('doubles from initial up to max, and starts again after reset()', () => {
    const backoff = new Backoff({ initial: 100, max: 1000 })
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.next())).toEqual([100, 200, 400, 800, 1000, 1000])
    expect(backoff.failures).toBe(6)
    backoff.reset()
    expect(backoff.next()).toBe(100)
  })

  it('jitters each delay into [delay/2, delay)', () => {
    const low = new Backoff({ initial: 100, max: 1000, jitter: true, random: () => 0 })
    const high = new Backoff({ initial: 100, max: 1000, jitter: true, random: () => 0.999 })
    expect([low.next(), low.next()]).toEqual([50, 100])
    expect([high.next(), high.next()]).toEqual([99, 199])
  })

  it('never overflows after very many failures', () => {
    const backoff = new Backoff({ initial: 1, max: 30_000 })
    for (let i = 0; i < 5000; i++) backoff.next()
    expect(backoff.next()).toBe(30_000)
  })
})

describe('RelayLogger', () => {
  it('children taken before a re-point log to the new target, with their bindings', () => {
    const first = createCapturingLogger()
    const second = createCapturingLogger()
    const relay = new RelayLogger(first)
    const child = relay.child({ component: 'consumer' }).child({ queue: 'q' })
    child.info('one')
    relay.pointTo(second)
    child.warn('two', { n: 2 })
    relay.info('three')
    expect(first.entries.map((e) => [e.msg, e.meta])).toEqual([['one', { component: 'consumer', queue: 'q' }]])
    expect(second.entries.map((e) => [e.level, e.msg, e.meta])).toEqual([
      ['warn', 'two', { component: 'consumer', queue: 'q', n: 2 }],
      ['info', 'three', {}],
    ])
  })

  it('pointing a relay at itself does not loop', () => {
    const target = createCapturingLogger()
    const relay = new RelayLogger(target)
    relay.pointTo(relay)
    relay.info('still there')
    expect(target.entries.map((e) => e.msg)).toEqual(['still there'])
  })
})

describe('SignalCombiner', () => {
  it('returns its own signal alone, and one combined signal per caller signal', () => {
    const own = new AbortController()
    const combiner = new SignalCombiner(own.signal)
    expect(combiner.with(undefined)).toBe(own.signal)
    const caller = new AbortController()
    const combined = combiner.with(caller.signal)
    expect(combiner.with(caller.signal)).toBe(combined)
    expect(combiner.with(new AbortController().signal)).not.toBe(combined)
    const again = combiner.with(caller.signal)
    own.abort()
    expect(again.aborted).toBe(true)
  })
})

describe('socketErrorKind', () => {
  const withCode = (code: string): Error => Object.assign(new Error(code), { code })
  it('reads codes and connect messages; leaves other errors to the adapter', () => {
    expect(socketErrorKind(withCode('ECONNREFUSED'))).toBe('connect-failed')
    expect(socketErrorKind(withCode('ENOTFOUND'))).toBe('connect-failed')
    expect(socketErrorKind(withCode('ECONNRESET'))).toBe('connection-closed')
    expect(socketErrorKind(withCode('EPIPE'))).toBe('connection-closed')
    expect(socketErrorKind(new Error('connect ECONNREFUSED 127.0.0.1:1'))).toBe('connect-failed')
    expect(socketErrorKind(new Error('WRONGTYPE'))).toBeUndefined()
    expect(socketErrorKind(undefined)).toBeUndefined()
  })
})

describe('Semaphore', () => {
  it('runs at most `size` at once, the rest in order', async () => {
    const semaphore = new Semaphore(2)
    let active = 0
    let peak = 0
    const order: number[] = []
    await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        semaphore.run(async () => {
          active++
          peak = Math.max(peak, active)
          await new Promise((r) => setImmediate(r))
          order.push(i)
          active--
        }),
      ),
    )
    expect(peak).toBe(2)
    expect(order).toEqual([0, 1, 2, 3, 4])
    expect(semaphore.available).toBe(2)
  })

  it('frees its slot when the call throws', async () => {
    const semaphore = new Semaphore(1)
    await expect(semaphore.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(await semaphore.run(() => Promise.resolve(7))).toBe(7)
  })
})

describe('OutageLog', () => {
  it('warns once per outage, then debug, and says when it is over', () => {
    const logger = createCapturingLogger()
    const outage = new OutageLog(logger)
    outage.recovered('back') // no outage: nothing
    outage.failed('down')
    outage.failed('down')
    outage.recovered('back')
    outage.failed('down')
    expect(logger.entries.map((e) => `${e.level} ${e.msg}`)).toEqual([
      'warn down',
      'debug down',
      'info back',
      'warn down',
    ])
  })
})

describe('pollUntilEmpty', () => {
  it('resolves once the check holds; a notify checks again at once', async () => {
    let left = 3
    const wake = new Notifier()
    const timer = setInterval(() => {
      left--
      wake.notify()
    }, 5)
    try {
      await pollUntilEmpty('q', () => Promise.resolve(left <= 0), { interval: 60_000, wake })
    } finally {
      clearInterval(timer)
    }
    expect(left).toBeLessThanOrEqual(0)
  })

  it('rejects with QueueJoinTimeoutError naming the queue', async () => {
    const error = await pollUntilEmpty('jobs', () => Promise.resolve(false), { timeout: 30, interval: 5 }).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(QueueJoinTimeoutError)
    expect((error as QueueJoinTimeoutError).queueName).toBe('jobs')
  })
})

describe('decodeOrReport', () => {
  it('decodes a message, or logs the reason and returns it', () => {
    const logger = createCapturingLogger()
    const encoder = new JSONEncoder()
    const message = new Message({ queueName: 'q', actorName: 'a', args: [1] })
    const good = decodeOrReport(message.encode(encoder), encoder, logger, { queue: 'q' })
    expect(good.ok && good.message.messageId).toBe(message.messageId)
    const bad = decodeOrReport(new TextEncoder().encode('{nope'), encoder, logger, { queue: 'q', id: 'x1' })
    expect(bad.ok).toBe(false)
    expect(logger.entries).toHaveLength(1)
    expect(logger.entries[0]?.msg).toBe('Undecodable message dead-lettered')
    expect(logger.entries[0]?.meta).toMatchObject({ queue: 'q', id: 'x1', reason: expect.any(String) as string })
  })
})

describe('errors for adapters', () => {
  it('BrokerClosedError is a ConnectionClosedError that is not retryable', () => {
    const error = new BrokerClosedError('RedisBroker')
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect(error).toBeInstanceOf(BrokerConnectionError)
    expect(error).toBeInstanceOf(TqError)
    expect(error.code).toBe(ErrorCode.BROKER_CLOSED)
    expect(error.retryable).toBe(false)
    expect(error.message).toBe('This RedisBroker is closed')
  })

  it('Broker.classifyError is the one place retryability is decided', () => {
    const broker = new StubBroker({ middleware: [] })
    const plain = new Error('boom')
    const classified = broker.classifyError(plain)
    expect(classified).toBeInstanceOf(TqError)
    expect(classified.cause).toBe(plain)
    expect(broker.isRetryableError(plain)).toBe(false)
    const closed = new ConnectionClosedError('gone')
    expect(broker.classifyError(closed)).toBe(closed)
    expect(broker.isRetryableError(closed)).toBe(true)
    expect(broker.isRetryableError(new BrokerClosedError('StubBroker'))).toBe(false)
  })

  it('foreignMessageError names the message, the consumer and the queue', () => {
    const proxy = new MessageProxy(new Message({ queueName: 'q', actorName: 'a' }))
    const error = foreignMessageError('RedisConsumer', 'q', proxy)
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect(error.message).toContain(proxy.messageId)
    expect(error.message).toContain('RedisConsumer of q')
  })
})
