import { describe, expectTypeOf, it } from 'vitest'
import { StubBroker, actor, type Actor, type Message } from '../src/index.ts'

declare module '../src/actor.ts' {
  interface MiddlewareOptions {
    /** A custom middleware's option, for the message-option tests below. */
    slowAfterTypes?: number
  }
}

const broker = new StubBroker({ middleware: [] })
const add = actor('add_types', (x: number, y: number) => x + y, { broker })
const greet = actor(
  'greet_types',
  async (name: string): Promise<{ greeting: string }> => ({ greeting: `hi ${name}` }),
  {
    broker,
  },
)
const noArgs = actor('noargs_types', () => 'x', { broker })

describe('actor types', () => {
  it('types send() arguments from the function', () => {
    expectTypeOf(add).toMatchTypeOf<Actor<[number, number], number>>()
    // @ts-expect-error a string is not a number
    void add.send('x', 2)
    // @ts-expect-error too few arguments
    void add.send(1)
    // @ts-expect-error wrong args in sendWithOptions
    void add.sendWithOptions({ args: ['x', 1] })
    // @ts-expect-error args are required when the actor takes arguments
    void add.messageWithOptions({})
    void noArgs.messageWithOptions({})
  })

  it('types getResult() from the return type', () => {
    expectTypeOf(add.send(1, 2)).resolves.toEqualTypeOf<Message<number>>()
    expectTypeOf<ReturnType<Message<number>['getResult']>>().toEqualTypeOf<Promise<number>>()
    expectTypeOf(greet.message('a').getResult()).resolves.toEqualTypeOf<{ greeting: string }>()
  })

  it('infers unannotated default parameters from their initializer', () => {
    const scaled = actor('scaled_types', (x: number, factor = 2) => x * factor, { broker })
    expectTypeOf(scaled.send).parameters.toEqualTypeOf<[x: number, factor?: number]>()
    expectTypeOf(scaled.message(1).getResult()).resolves.toEqualTypeOf<number>()
    // @ts-expect-error factor is a number
    void scaled.send(1, 'x')
  })

  it('keeps the direct call signature', () => {
    expectTypeOf(add(1, 2)).toEqualTypeOf<number>()
    expectTypeOf(greet('a')).toEqualTypeOf<Promise<{ greeting: string }>>()
  })

  it('rejects unknown static options', () => {
    // @ts-expect-error not an actor option
    actor('bad_types', () => 1, { broker, maxRetry: 3 })
  })

  it('rejects unknown message options', () => {
    // @ts-expect-error a typo of delay
    void add.sendWithOptions({ args: [1, 2], dealy: 5000 })
    // @ts-expect-error a typo of maxRetries
    void add.messageWithOptions({ args: [1, 2], maxRetry: 3 })
    // @ts-expect-error an option no middleware declares
    void noArgs.sendWithOptions({ frobnicate: true })
    // @ts-expect-error wire names are not message options
    void noArgs.sendWithOptions({ max_retries: 3 })
    // @ts-expect-error delay is a number
    void noArgs.sendWithOptions({ delay: '5s' })
  })

  it('accepts the known message options', () => {
    void add.sendWithOptions({ args: [1, 2], kwargs: { k: 1 }, delay: 5000, maxRetries: 0, brokerPriority: 3 })
    void add.sendWithOptions({ args: [1, 2], timeLimit: 1, maxAge: 1, storeResults: false, resultTtl: 1 })
    void add.sendWithOptions({ args: [1, 2], onSuccess: 'done', onFailure: noArgs, pipeIgnore: true })
    void noArgs.messageWithOptions({ delay: 10, pipeTarget: add.message(1, 2).asDict() })
    void noArgs.messageWithOptions({ pipeTarget: add.message(1, 2).toWire() })
    // A middleware's own option, typed by augmenting MiddlewareOptions (see the top of this file).
    void noArgs.sendWithOptions({ slowAfterTypes: 10 })
    actor('slow_types', () => 1, { broker, slowAfterTypes: 10 })
  })
})
