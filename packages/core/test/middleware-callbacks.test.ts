import { describe, expect, it } from 'vitest'
import { Callbacks, Message, StubBroker, Worker, actor, type FailureInfo, type WireMessage } from '../src/index.ts'
import { drain, fastStack, setup } from './middleware-helpers.ts'

const WIRE_KEYS = ['queue_name', 'actor_name', 'args', 'kwargs', 'options', 'message_id', 'message_timestamp']

describe('Callbacks', () => {
  it('sends onSuccess (the message as a wire dict, the result)', async () => {
    const { broker, worker } = await setup(fastStack())
    const received: Array<[WireMessage, unknown]> = []
    const onOk = actor('onOk', (message: WireMessage, result: unknown) => void received.push([message, result]), {
      broker,
    })
    const add = actor('add', (x: number, y: number) => ({ sum: x + y }), { broker })
    const sent = await add.sendWithOptions({ args: [1, 2], onSuccess: onOk })
    await drain(broker, worker)

    expect(received).toHaveLength(1)
    const [dict, result] = received[0]!
    expect(result).toEqual({ sum: 3 })
    expect(Object.keys(dict)).toEqual(WIRE_KEYS)
    expect(dict).toEqual({
      queue_name: 'default',
      actor_name: 'add',
      args: [1, 2],
      kwargs: {},
      // A message-level callback given as an actor travels as the actor's name.
      options: { on_success: 'onOk' },
      message_id: sent.messageId,
      message_timestamp: sent.messageTimestamp,
    })
    // The dict turns back into the message.
    expect(Message.fromWire(dict).options.onSuccess).toBe('onOk')
  })

  it('sends a null result when the actor returns nothing', async () => {
    const { broker, worker } = await setup(fastStack())
    const results: unknown[] = []
    actor('onOk', (_m: WireMessage, result: unknown) => void results.push(result), { broker })
    const noop = actor('noop', () => undefined, { broker, onSuccess: 'onOk' })
    await noop.send()
    await drain(broker, worker)
    expect(results).toEqual([null])
  })

  it('sends onFailure (wire dict, { type, message }) after every failure, retries already counted', async () => {
    const { broker, worker } = await setup(fastStack())
    const received: Array<[WireMessage, FailureInfo]> = []
    const onErr = actor('onErr', (m: WireMessage, e: FailureInfo) => void received.push([m, e]), { broker })
    class ValidationError extends Error {
      override name = 'ValidationError'
    }
    const fails = actor(
      'fails',
      () => {
        throw new ValidationError("'missing'")
      },
      { broker, maxRetries: 3, onFailure: onErr },
    )
    const sent = await fails.send()
    await drain(broker, worker)

    expect(received.map(([m]) => m.options['retries'])).toEqual([1, 2, 3, 4])
    for (const [m, info] of received) {
      expect(info).toEqual({ type: 'ValidationError', message: "'missing'" })
      expect(m.message_id).toBe(sent.messageId)
      expect(Object.keys(m.options)).toEqual(['retries', 'traceback', 'requeue_timestamp'])
      expect(m.options['traceback']).toContain("ValidationError: 'missing'")
    }
    expect(broker.deadLetters).toHaveLength(1)
  })

  it('sends onFailure when retries are off too, and nothing on the other path', async () => {
    const { broker, worker } = await setup(fastStack())
    const calls: string[] = []
    actor('onOk', () => void calls.push('ok'), { broker })
    actor('onErr', (_m: WireMessage, e: FailureInfo) => void calls.push(`err:${e.type}:${e.message}`), { broker })
    const ok = actor('ok', () => 1, { broker, onSuccess: 'onOk', onFailure: 'onErr' })
    const bad = actor(
      'bad',
      () => {
        throw new RangeError('too big')
      },
      { broker, onSuccess: 'onOk', onFailure: 'onErr', maxRetries: 0 },
    )
    await ok.send()
    await drain(broker, worker)
    await bad.send()
    await drain(broker, worker)
    expect(calls).toEqual(['ok', 'err:RangeError:too big'])
  })

  it('prefers the message option and falls back to the actor option', async () => {
    const { broker, worker } = await setup(fastStack())
    const calls: string[] = []
    actor('first', () => void calls.push('first'), { broker })
    actor('second', () => void calls.push('second'), { broker })
    const work = actor('work', () => 1, { broker, onSuccess: 'first' })
    await work.send()
    await drain(broker, worker)
    await work.sendWithOptions({ onSuccess: 'second' })
    await drain(broker, worker)
    expect(calls).toEqual(['first', 'second'])
  })

  it('works on its own, without Retries (the message is then acked)', async () => {
    const broker = new StubBroker({ middleware: [new Callbacks()] })
    const worker = new Worker(broker, { workerTimeout: 50 })
    await worker.start()
    try {
      const infos: FailureInfo[] = []
      actor('onErr', (_m: WireMessage, e: FailureInfo) => void infos.push(e), { broker })
      const bad = actor(
        'bad',
        () => {
          throw new Error('nope')
        },
        { broker, onFailure: 'onErr' },
      )
      await bad.send()
      await drain(broker, worker)
      expect(infos).toEqual([{ type: 'Error', message: 'nope' }])
      expect(broker.deadLetters).toHaveLength(0)
    } finally {
      await worker.stop()
    }
  })
})
