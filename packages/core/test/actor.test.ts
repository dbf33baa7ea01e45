import { describe, expect, it } from 'vitest'
import { InvalidArgumentError, Message, StubBroker, actor, type Middleware } from '../src/index.ts'

const optionMiddleware: Middleware = { actorOptions: ['maxRetries', 'onSuccess', 'onFailure'] }

describe('actor()', () => {
  it('takes its name from the function and binds to the given broker', () => {
    const broker = new StubBroker({ middleware: [] })
    function add(x: number, y: number): number {
      return x + y
    }
    const a = actor(add, { broker })
    expect(a.actorName).toBe('add')
    expect(a.queueName).toBe('default')
    expect(a.priority).toBe(0)
    expect(a.broker).toBe(broker)
    expect(broker.getActor('add')).toBe(a)
    expect(broker.getDeclaredQueues()).toEqual(new Set(['default']))
    expect(broker.getDeclaredDelayQueues()).toEqual(new Set(['default.DQ']))
    expect(String(a)).toBe('Actor(add)')
  })

  it('accepts a name as the first argument or as actorName', () => {
    const broker = new StubBroker({ middleware: [] })
    expect(actor('named', () => 1, { broker }).actorName).toBe('named')
    expect(actor(() => 1, { broker, actorName: 'viaOption' }).actorName).toBe('viaOption')
  })

  it('rejects an anonymous function without a name', () => {
    const broker = new StubBroker({ middleware: [] })
    expect(() => actor(() => 1, { broker })).toThrow(/needs a name/)
  })

  it('is callable and runs the function in-process', async () => {
    const broker = new StubBroker({ middleware: [] })
    const add = actor('add', (x: number, y: number) => x + y, { broker })
    const slow = actor('slow', async (x: number) => x * 2, { broker })
    expect(add(1, 2)).toBe(3)
    expect(await slow(4)).toBe(8)
  })

  it.each(['', '1abc', 'has space', 'semi;colon', 'ünï'])('rejects the invalid queue name %j', (queueName) => {
    const broker = new StubBroker({ middleware: [] })
    const error = (() => {
      try {
        actor('a', () => 1, { broker, queueName })
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as InvalidArgumentError).code).toBe('TQ_INVALID_ARGUMENT')
    expect((error as Error).message).toContain('queue name')
  })

  it.each(['_q', 'a.b-c_d', 'Q1'])('accepts the queue name %j', (queueName) => {
    const broker = new StubBroker({ middleware: [] })
    expect(actor('a', () => 1, { broker, queueName }).queueName).toBe(queueName)
  })

  it('rejects options no middleware declares, naming them', () => {
    const broker = new StubBroker({ middleware: [optionMiddleware] })
    expect(() => actor('a', () => 1, { broker, maxRetries: 1 })).not.toThrow()
    expect(() => actor('b', () => 1, { broker, timeLimit: 5 })).toThrow(InvalidArgumentError)
    expect(() => actor('c', () => 1, { broker, timeLimit: 5 })).toThrow(
      /unknown option timeLimit.*forget to add a middleware/,
    )
  })

  it('rejects a second actor with the same name on one broker', () => {
    const broker = new StubBroker({ middleware: [] })
    actor('dup', () => 1, { broker })
    expect(() => actor('dup', () => 2, { broker })).toThrow(/already declared/)
    // Another broker is another namespace.
    expect(() => actor('dup', () => 2, { broker: new StubBroker({ middleware: [] }) })).not.toThrow()
  })

  it('builds messages without sending them', () => {
    const broker = new StubBroker({ middleware: [optionMiddleware] })
    const add = actor('add', (x: number, y: number) => x + y, { broker, queueName: 'math' })
    const m = add.message(1, 2)
    expect(m).toBeInstanceOf(Message)
    expect(m.queueName).toBe('math')
    expect(m.actorName).toBe('add')
    expect(m.args).toEqual([1, 2])
    expect(m.kwargs).toEqual({})
    expect(m.options).toEqual({})
    expect(m.messageId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(Math.abs(m.messageTimestamp - Date.now())).toBeLessThan(1000)
    expect(broker.size('math')).toBe(0)

    const withOptions = add.messageWithOptions({ args: [3, 4], kwargs: { k: 1 }, maxRetries: 0, delay: 50 })
    expect(withOptions.args).toEqual([3, 4])
    expect(withOptions.kwargs).toEqual({ k: 1 })
    // A delay given here stays in options (pipelines read it).
    expect(withOptions.options).toEqual({ maxRetries: 0, delay: 50 })
  })

  it('stores callback actors by name', () => {
    const broker = new StubBroker({ middleware: [optionMiddleware] })
    const done = actor('done', () => undefined, { broker })
    const work = actor('work', () => 1, { broker, onSuccess: done })
    expect(work.options.onSuccess).toBe('done')
    expect(work.messageWithOptions({ args: [], onFailure: done }).options.onFailure).toBe('done')
    expect(() => work.messageWithOptions({ args: [], onFailure: 42 as unknown as string })).toThrow(/must be an actor/)
  })

  it('send() enqueues and resolves with the message', async () => {
    const broker = new StubBroker({ middleware: [] })
    const add = actor('add', (x: number, y: number) => x + y, { broker })
    const m = await add.send(1, 2)
    expect(m.args).toEqual([1, 2])
    expect(broker.size('default')).toBe(1)
  })

  it('sendWithOptions({ delay }) goes to the delay queue with an eta', async () => {
    const broker = new StubBroker({ middleware: [] })
    const add = actor('add', (x: number, y: number) => x + y, { broker })
    const before = Date.now()
    const m = await add.sendWithOptions({ args: [1, 2], delay: 5000 })
    expect(m.queueName).toBe('default.DQ')
    expect(m.options.eta).toBeGreaterThanOrEqual(before + 5000)
    expect(m.options.eta).toBeLessThanOrEqual(Date.now() + 5000)
    expect(broker.size('default.DQ')).toBe(1)
    expect(broker.size('default')).toBe(0)
  })

  it('rejects a negative or non-numeric delay', async () => {
    const broker = new StubBroker({ middleware: [] })
    const add = actor('add', (x: number) => x, { broker })
    await expect(add.sendWithOptions({ args: [1], delay: -1 })).rejects.toThrow(InvalidArgumentError)
    await expect(add.sendWithOptions({ args: [1], delay: Number.NaN })).rejects.toThrow(InvalidArgumentError)
  })
})
