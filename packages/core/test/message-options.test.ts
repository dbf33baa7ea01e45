import { describe, expect, it } from 'vitest'
import { InvalidArgumentError, Message, StubBroker, actor, type Middleware } from '../src/index.ts'

/** A middleware of one's own that declares a message/actor option. */
const slowLog: Middleware = { actorOptions: ['slowAfter'] }

describe('message options', () => {
  it('rejects an unknown option in sendWithOptions, naming it and suggesting the closest known one', async () => {
    const broker = new StubBroker()
    const add = actor('add', (x: number) => x, { broker })
    const sent = add.sendWithOptions({ args: [1], dealy: 5 } as never)
    await expect(sent).rejects.toThrow(InvalidArgumentError)
    await expect(add.sendWithOptions({ args: [1], dealy: 5 } as never)).rejects.toThrow(
      /unknown message option dealy \(did you mean delay\?\)/,
    )
    expect(broker.size('default')).toBe(0)
  })

  it('rejects an unknown option in messageWithOptions', () => {
    const broker = new StubBroker()
    const add = actor('add', (x: number) => x, { broker })
    expect(() => add.messageWithOptions({ args: [1], maxRetry: 3 } as never)).toThrow(InvalidArgumentError)
    expect(() => add.messageWithOptions({ args: [1], maxRetry: 3 } as never)).toThrow(
      /Actor add: unknown message option maxRetry \(did you mean maxRetries\?\)/,
    )
  })

  it('suggests the camelCase name for a snake_case option, and nothing when no option is close', () => {
    const broker = new StubBroker()
    const add = actor('add', (x: number) => x, { broker })
    expect(() => add.messageWithOptions({ args: [1], max_retries: 3 } as never)).toThrow(/did you mean maxRetries\?/)
    let error: unknown
    try {
      add.messageWithOptions({ args: [1], frobnicate: true, zz: 1 } as never)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as Error).message).toMatch(/unknown message options frobnicate, zz\. /)
    expect((error as Error).message).not.toMatch(/did you mean/)
  })

  it('accepts an option only when a middleware on the actor’s broker declares it', async () => {
    const bare = new StubBroker({ middleware: [] })
    const onBare = actor('add', (x: number) => x, { broker: bare })
    await expect(onBare.sendWithOptions({ args: [1], maxRetries: 0 })).rejects.toThrow(
      /unknown message option maxRetries/,
    )
    // args, kwargs, delay and broker fields need no middleware.
    const m = await onBare.sendWithOptions({ args: [1], kwargs: { k: 1 }, delay: 10, brokerPriority: 3 })
    expect(m.options).toMatchObject({ brokerPriority: 3 })
    expect(m.kwargs).toEqual({ k: 1 })
    expect(onBare.messageWithOptions({ args: [1], delay: 10 }).options).toEqual({ delay: 10 })

    const full = new StubBroker()
    const onFull = actor('add', (x: number) => x, { broker: full })
    expect((await onFull.sendWithOptions({ args: [1], maxRetries: 0 })).options).toEqual({ maxRetries: 0 })
  })

  it('accepts an option a custom middleware declares, including one added after the actor', async () => {
    const broker = new StubBroker({ middleware: [slowLog] })
    const work = actor('work', () => 1, { broker, slowAfter: 10 } as never)
    const sent = await work.sendWithOptions({ slowAfter: 50 } as never)
    expect(sent.options).toEqual({ slowAfter: 50 })

    const later = new StubBroker({ middleware: [] })
    const job = actor('job', () => 1, { broker: later })
    expect(() => job.messageWithOptions({ slowAfter: 5 } as never)).toThrow(InvalidArgumentError)
    later.addMiddleware(slowLog)
    expect(job.messageWithOptions({ slowAfter: 5 } as never).options).toEqual({ slowAfter: 5 })
  })

  it('suggests the closest option for a typo at actor declaration too', () => {
    const broker = new StubBroker()
    expect(() => actor('bad', () => 1, { broker, maxRetry: 3 } as never)).toThrow(
      /unknown option maxRetry \(did you mean maxRetries\?\)/,
    )
  })

  it('ignores keys whose value is undefined (they are dropped anyway)', () => {
    const broker = new StubBroker({ middleware: [] })
    const work = actor('work', () => 1, { broker })
    expect(work.messageWithOptions({ dealy: undefined } as never).options).toEqual({})
  })

  it('still decodes and enqueues messages carrying options no middleware declares', async () => {
    const broker = new StubBroker({ middleware: [] })
    actor('add', (x: number, y: number) => x + y, { broker })
    const wire = {
      queue_name: 'default',
      actor_name: 'add',
      args: [1, 2],
      kwargs: {},
      options: {
        redis_message_id: 'r-1',
        retries: 2,
        traceback: 'Traceback…',
        eta: 123,
        python_only: { x: 1 },
        pipe_target: {
          queue_name: 'default',
          actor_name: 'add',
          args: [3],
          kwargs: {},
          options: { some_peer_option: true },
          message_id: 'next',
          message_timestamp: 1,
        },
      },
      message_id: 'm-1',
      message_timestamp: 1,
    }
    const decoded = Message.decode(new TextEncoder().encode(JSON.stringify(wire)))
    expect(decoded.options).toMatchObject({
      redisMessageId: 'r-1',
      retries: 2,
      traceback: 'Traceback…',
      eta: 123,
      python_only: { x: 1 },
      pipeTarget: { actorName: 'add', options: { some_peer_option: true } },
    })
    expect(decoded.toWire()).toEqual(wire)
    // Internal paths (retries, brokers, composition) build messages without the check.
    await broker.enqueue(decoded.copy({ options: { retries: 3, groupCompletionUuid: 'g' } }))
    expect(broker.size('default')).toBe(1)
  })
})
