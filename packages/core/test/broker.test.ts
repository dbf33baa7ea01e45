import { afterEach, describe, expect, it } from 'vitest'
import {
  ConfigurationError,
  InvalidArgumentError,
  Message,
  MessageProxy,
  SkipMessage,
  StubBroker,
  Worker,
  actor,
  createBroker,
  getBroker,
  registerBroker,
  setBroker,
  type Middleware,
} from '../src/index.ts'
import { createCapturingLogger, deferred } from '../src/testing/index.ts'

class A implements Middleware {}
class B implements Middleware {}
class C implements Middleware {}

describe('Broker middleware', () => {
  it('appends, or inserts before/after the first instance of a class', () => {
    const broker = new StubBroker({ middleware: [new A(), new B()] })
    broker.addMiddleware(new C(), { before: B })
    expect(broker.middleware.map((m) => m.constructor.name)).toEqual(['A', 'C', 'B'])
    const c2 = new C()
    broker.addMiddleware(c2, { after: A })
    expect(broker.middleware.map((m) => m.constructor.name)).toEqual(['A', 'C', 'C', 'B'])
    expect(broker.middleware[1]).toBe(c2)
  })

  it('rejects both before and after, and a class that is not registered', () => {
    const broker = new StubBroker({ middleware: [new A()] })
    expect(() => broker.addMiddleware(new B(), { before: A, after: A })).toThrow(InvalidArgumentError)
    expect(() => broker.addMiddleware(new B(), { before: C })).toThrow(/C is not registered/)
  })

  it('warns about a duplicate middleware class', () => {
    const logger = createCapturingLogger()
    const broker = new StubBroker({ middleware: [new A()], logger })
    broker.addMiddleware(new A())
    expect(logger.entries.some((e) => e.level === 'warn' && e.msg.includes('already registered'))).toBe(true)
  })

  it('adds declared actor options and replays declarations to a late middleware', () => {
    const broker = new StubBroker({ middleware: [] })
    actor('a', () => 1, { broker, queueName: 'q1' })
    const seen: string[] = []
    broker.addMiddleware({
      actorOptions: ['custom'],
      afterDeclareActor: (_b, a) => void seen.push(`actor:${a.actorName}`),
      afterDeclareQueue: (_b, q) => void seen.push(`queue:${q}`),
      afterDeclareDelayQueue: (_b, q) => void seen.push(`dq:${q}`),
    })
    expect(seen).toEqual(['actor:a', 'queue:q1', 'dq:q1.DQ'])
    expect(broker.actorOptions.has('custom')).toBe(true)
    expect(() => actor('b', () => 1, { broker, custom: 1 } as never)).not.toThrow()
  })

  it('runs before hooks in order and after hooks in reverse', async () => {
    const calls: string[] = []
    const mk = (name: string): Middleware => ({
      beforeProcessMessage: () => void calls.push(`before:${name}`),
      afterProcessMessage: () => void calls.push(`after:${name}`),
      beforeEnqueue: () => void calls.push(`beforeEnqueue:${name}`),
      afterEnqueue: () => void calls.push(`afterEnqueue:${name}`),
      beforeAck: () => void calls.push(`beforeAck:${name}`),
      afterAck: () => void calls.push(`afterAck:${name}`),
    })
    const broker = new StubBroker({ middleware: [mk('1'), mk('2'), mk('3')] })
    const work = actor('work', () => void calls.push('actor'), { broker })
    await work.send()
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await broker.join('default')
    await worker.stop()
    expect(calls).toEqual([
      'beforeEnqueue:1',
      'beforeEnqueue:2',
      'beforeEnqueue:3',
      'afterEnqueue:3',
      'afterEnqueue:2',
      'afterEnqueue:1',
      'before:1',
      'before:2',
      'before:3',
      'actor',
      'after:3',
      'after:2',
      'after:1',
      'beforeAck:1',
      'beforeAck:2',
      'beforeAck:3',
      'afterAck:3',
      'afterAck:2',
      'afterAck:1',
    ])
  })

  it('logs and swallows hook errors; the message is still processed', async () => {
    const logger = createCapturingLogger()
    const broker = new StubBroker({
      logger,
      middleware: [
        {
          beforeProcessMessage: () => {
            throw new Error('before boom')
          },
          afterProcessMessage: async () => {
            throw new Error('after boom')
          },
        },
      ],
    })
    const ran = deferred<number>()
    const work = actor('work', (x: number) => ran.resolve(x), { broker })
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await work.send(7)
    expect(await ran.promise).toBe(7)
    await broker.join('default')
    await worker.stop()
    const errors = logger.entries.filter((e) => e.level === 'error').map((e) => e.msg)
    expect(errors.some((m) => m.includes('beforeProcessMessage'))).toBe(true)
    expect(errors.some((m) => m.includes('afterProcessMessage'))).toBe(true)
    expect(broker.deadLetters).toEqual([])
  })

  it('SkipMessage from a before hook skips the actor and emits afterSkipMessage', async () => {
    const calls: string[] = []
    const broker = new StubBroker({
      middleware: [
        {
          beforeProcessMessage: (_b, m) => {
            if (m.args[0] === 'skip') throw new SkipMessage()
          },
          afterSkipMessage: (_b, m) => void calls.push(`skipped:${String(m.args[0])}`),
          afterProcessMessage: (_b, m) => void calls.push(`processed:${String(m.args[0])}`),
        },
      ],
    })
    const work = actor('work', (x: string) => void calls.push(`ran:${x}`), { broker })
    const worker = new Worker(broker, { workerTimeout: 20, concurrency: 1 })
    await worker.start()
    await work.send('skip')
    await work.send('run')
    await broker.join('default')
    await worker.stop()
    expect(calls).toEqual(['skipped:skip', 'ran:run', 'processed:run'])
    // Skipped without fail(): acked, not dead-lettered.
    expect(broker.deadLetters).toEqual([])
  })

  it('runBefore/runAfter return undefined when every hook is synchronous, else a promise for the rest, in order', async () => {
    const calls: string[] = []
    const gate = deferred<void>()
    const sync = (name: string): Middleware => ({
      beforeAck: () => void calls.push(`before:${name}`),
      afterAck: () => void calls.push(`after:${name}`),
    })
    const waiting: Middleware = {
      beforeAck: async () => {
        calls.push('before:waiting')
        await gate.promise
        calls.push('before:waited')
      },
    }
    const syncBroker = new StubBroker({ middleware: [sync('a'), sync('b')] })
    const proxy = new MessageProxy(new Message({ queueName: 'default', actorName: 'x' }))
    expect(syncBroker.runBefore('beforeAck', proxy)).toBeUndefined()
    expect(syncBroker.runAfter('afterAck', proxy)).toBeUndefined()
    expect(calls).toEqual(['before:a', 'before:b', 'after:b', 'after:a'])

    calls.length = 0
    const broker = new StubBroker({ middleware: [sync('a'), waiting, sync('c')] })
    const pending = broker.runBefore('beforeAck', proxy)
    expect(pending).toBeInstanceOf(Promise)
    // The hooks before the waiting one ran at once; the ones after it wait for it.
    expect(calls).toEqual(['before:a', 'before:waiting'])
    gate.resolve()
    await pending
    expect(calls).toEqual(['before:a', 'before:waiting', 'before:waited', 'before:c'])
  })

  it('runBefore throws a synchronous SkipMessage; runAfter logs and swallows every error', () => {
    const logger = createCapturingLogger()
    const broker = new StubBroker({
      logger,
      middleware: [
        {
          beforeProcessMessage: () => {
            throw new SkipMessage('no')
          },
          afterProcessMessage: () => {
            throw new Error('after boom')
          },
        },
      ],
    })
    const proxy = new MessageProxy(new Message({ queueName: 'default', actorName: 'x' }))
    expect(() => broker.runBefore('beforeProcessMessage', proxy)).toThrow(SkipMessage)
    expect(broker.runAfter('afterProcessMessage', proxy, {})).toBeUndefined()
    expect(logger.entries.some((e) => e.level === 'error' && e.msg.includes('afterProcessMessage'))).toBe(true)
    // emitBefore turns the same throw into a rejection.
    return expect(broker.emitBefore('beforeProcessMessage', proxy)).rejects.toBeInstanceOf(SkipMessage)
  })

  it('a worker skips thousands of messages synchronously without growing the stack', async () => {
    // Every message finishes inside the loop that started it: the worker must not recurse.
    const broker = new StubBroker({
      middleware: [
        {
          beforeProcessMessage: (_b, m) => {
            m.fail()
            throw new SkipMessage('skipped at once')
          },
        },
      ],
    })
    const work = actor('work', () => undefined, { broker })
    await broker.enqueueMany(Array.from({ length: 20_000 }, () => work.message()))
    const worker = new Worker(broker, { workerTimeout: 20, concurrency: 8, queuePrefetch: 20_000 })
    await worker.start()
    await broker.join('default', { timeout: 30_000, failFast: false })
    await worker.stop()
    expect(worker.stats.skipped).toBe(20_000)
    expect(broker.deadLetters).toHaveLength(20_000)
  })

  it('no actor runs before the code right after `await worker.start()`', async () => {
    const broker = new StubBroker()
    const ran: string[] = []
    const work = actor('work', () => void ran.push('actor'), { broker })
    await work.send()
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    ran.push('after start')
    await broker.join('default')
    await worker.stop()
    expect(ran).toEqual(['after start', 'actor'])
  })
})

describe('getBroker / setBroker / createBroker', () => {
  const savedUrl = process.env['TQ_BROKER_URL']
  afterEach(() => {
    setBroker(undefined)
    if (savedUrl === undefined) delete process.env['TQ_BROKER_URL']
    else process.env['TQ_BROKER_URL'] = savedUrl
  })

  it('returns the broker set with setBroker, and actors bind to it by default', () => {
    const broker = new StubBroker({ middleware: [] })
    setBroker(broker)
    expect(getBroker()).toBe(broker)
    expect(actor('bound', () => 1).broker).toBe(broker)
  })

  it('builds a StubBroker from TQ_BROKER_URL=stub://', () => {
    process.env['TQ_BROKER_URL'] = 'stub://'
    const broker = getBroker()
    expect(broker).toBeInstanceOf(StubBroker)
    expect(getBroker()).toBe(broker)
  })

  it('uses a registered plugin for its scheme', () => {
    const made: Array<string | undefined> = []
    registerBroker({
      name: 'test plugin',
      schemes: ['testq'],
      create: (url) => {
        made.push(url)
        return new StubBroker({ middleware: [] })
      },
    })
    createBroker('testq://somewhere')
    expect(made).toEqual(['testq://somewhere'])
  })

  it('says which package to install for a known scheme', () => {
    expect(() => createBroker('sqs://user:secret@localhost/x')).toThrow(ConfigurationError)
    // Outside this workspace: "needs @tq/sqs: install it". Inside it, @tq/sqs resolves to its
    // TypeScript sources, which require() cannot load under vitest: "installed but could not be loaded".
    expect(() => createBroker('sqs://user:secret@localhost/x')).toThrow(
      /needs @tq\/sqs: install it|@tq\/sqs is installed but/,
    )
    // The password never appears in the message.
    expect(() => createBroker('sqs://user:secret@localhost/x')).not.toThrow(/secret/)
  })

  it('rejects unknown schemes and URLs without a scheme', () => {
    expect(() => createBroker('bogus://x')).toThrow(/No broker is registered for bogus/)
    expect(() => createBroker('localhost:6379')).toThrow(ConfigurationError)
  })

  it('explains how to fix a missing broker', () => {
    delete process.env['TQ_BROKER_URL']
    // In this workspace neither @tq/rabbitmq nor @tq/redis resolves from @tq/core's tests' cwd
    // unless installed; when they are, getBroker() builds one instead.
    let error: unknown
    try {
      getBroker()
    } catch (e) {
      error = e
    }
    if (error !== undefined) {
      expect(error).toBeInstanceOf(ConfigurationError)
      // Either nothing is installed, or (under vitest's source condition) an adapter resolved to
      // TypeScript that require() cannot load: both say what to do.
      expect((error as Error).message).toMatch(
        /setBroker.*TQ_BROKER_URL.*@tq\/rabbitmq or @tq\/redis|installed but could not be loaded.*setBroker/,
      )
    }
  })
})

describe('Message.getResult without a result backend', () => {
  it('fails with a ConfigurationError that says to add Results', async () => {
    const broker = new StubBroker({ middleware: [] })
    setBroker(broker)
    try {
      await expect(new Message({ queueName: 'q', actorName: 'a' }).getResult()).rejects.toThrow(
        /add the Results middleware/,
      )
    } finally {
      setBroker(undefined)
    }
  })
})
