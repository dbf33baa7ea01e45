import { describe, expect, it } from 'vitest'
import {
  AgeLimit,
  Callbacks,
  CurrentMessage,
  InvalidArgumentError,
  Pipelines,
  Retries,
  ShutdownNotifications,
  StubBroker,
  TimeLimit,
  actor,
  defaultMiddleware,
  type Middleware,
} from '../src/index.ts'
import { drain, fastStack, setup } from './middleware-helpers.ts'

describe('defaultMiddleware', () => {
  it("is Dramatiq's stack, in Dramatiq's order, and a fresh list each time", () => {
    const stack = defaultMiddleware()
    expect(stack.map((m) => m.constructor)).toEqual([
      AgeLimit,
      TimeLimit,
      ShutdownNotifications,
      Callbacks,
      Pipelines,
      Retries,
    ])
    expect(defaultMiddleware()[0]).not.toBe(stack[0])
  })

  it('is what a broker uses without a middleware option, and declares every default option', () => {
    const broker = new StubBroker()
    expect(broker.middleware.map((m) => m.constructor.name)).toEqual([
      'AgeLimit',
      'TimeLimit',
      'ShutdownNotifications',
      'Callbacks',
      'Pipelines',
      'Retries',
    ])
    for (const option of [
      'maxAge',
      'timeLimit',
      'notifyShutdown',
      'onSuccess',
      'onFailure',
      'pipeIgnore',
      'pipeTarget',
      'maxRetries',
      'minBackoff',
      'maxBackoff',
      'retryWhen',
      'throws',
      'onRetryExhausted',
    ]) {
      expect(broker.actorOptions.has(option)).toBe(true)
    }
    expect(() => actor('bad', () => 1, { broker: new StubBroker({ middleware: [] }), maxRetries: 1 })).toThrow(
      InvalidArgumentError,
    )
  })

  it('has the documented defaults', () => {
    const retries = new Retries()
    expect([retries.maxRetries, retries.minBackoff, retries.maxBackoff, retries.retryWhen]).toEqual([
      20,
      15_000,
      604_800_000,
      undefined,
    ])
    // A middleware-level 0 backoff means "the default" (Dramatiq's `or`).
    expect(new Retries({ minBackoff: 0, maxBackoff: 0 }).minBackoff).toBe(15_000)
    expect(new Retries({ maxRetries: null }).maxRetries).toBeNull()
    expect(new TimeLimit().timeLimit).toBe(600_000)
    expect(new AgeLimit().maxAge).toBeUndefined()
    expect(new ShutdownNotifications().notifyShutdown).toBe(false)
    expect(new CurrentMessage().actorOptions).toEqual([])
  })
})

describe('hook order', () => {
  it('runs after hooks in reverse: Retries first, then Pipelines, Callbacks; a middleware added later runs before them all', async () => {
    const order: string[] = []
    const trace = (name: string, target: Middleware): void => {
      const original = target.afterProcessMessage?.bind(target)
      ;(target as { afterProcessMessage: Middleware['afterProcessMessage'] }).afterProcessMessage = async (
        b,
        proxy,
        outcome,
      ) => {
        order.push(`${name}:retries=${String(proxy.options.retries)}:failed=${proxy.failed}`)
        await original?.(b, proxy, outcome)
      }
    }
    const stack = fastStack(new Retries({ maxRetries: 0 }))
    for (const m of stack) if (m.afterProcessMessage) trace(m.constructor.name, m)
    const late: Middleware = {}
    trace('Late', late)
    const { broker, worker } = await setup([...stack, late])
    const fails = actor(
      'fails',
      () => {
        throw new Error('x')
      },
      { broker },
    )
    await fails.send()
    await drain(broker, worker)
    expect(order).toEqual([
      'Late:retries=undefined:failed=false',
      'Retries:retries=undefined:failed=false',
      'Pipelines:retries=1:failed=true',
      'Callbacks:retries=1:failed=true',
      'ShutdownNotifications:retries=1:failed=true',
      'TimeLimit:retries=1:failed=true',
    ])
  })

  it('acks a failing message when there is no Retries middleware', async () => {
    const { broker, worker } = await setup([new AgeLimit(), new TimeLimit(), new Callbacks(), new Pipelines()])
    let runs = 0
    const fails = actor(
      'fails',
      () => {
        runs++
        throw new Error('once only')
      },
      { broker },
    )
    await fails.send()
    await drain(broker, worker)
    expect(runs).toBe(1)
    expect(broker.deadLetters).toHaveLength(0)
  })
})
