import { describe, expect, it } from 'vitest'
import { MessageProxy, Pipelines, StubBroker, Worker, actor, type Middleware } from '../src/index.ts'
import { drain, fastStack, setup } from './middleware-helpers.ts'

/** Records each processed message's actor, args and id, in order. */
function processRecorder(): Middleware & { runs: Array<{ actor: string; args: unknown[]; id: string; ts: number }> } {
  const runs: Array<{ actor: string; args: unknown[]; id: string; ts: number }> = []
  return {
    runs,
    beforeProcessMessage: (_b, proxy) => {
      runs.push({ actor: proxy.actorName, args: [...proxy.args], id: proxy.messageId, ts: proxy.messageTimestamp })
    },
  }
}

describe('Pipelines', () => {
  it('enqueues the next step with the result appended; the step keeps its id and timestamp', async () => {
    const recorder = processRecorder()
    const { broker, worker, enqueued } = await setup(fastStack(undefined, recorder))
    const add = actor('add', (x: number, y = 0) => x + y, { broker })
    const second = add.message(3)
    await add.sendWithOptions({ args: [1, 2], pipeTarget: second.asDict() })
    await drain(broker, worker)

    expect(recorder.runs.map((r) => [r.actor, r.args])).toEqual([
      ['add', [1, 2]],
      ['add', [3, 3]],
    ])
    expect(recorder.runs[1]?.id).toBe(second.messageId)
    expect(recorder.runs[1]?.ts).toBe(second.messageTimestamp)
    // On the wire the first message carries the next one as a nested snake_case message.
    const first = enqueued[0]!.wire
    expect(Object.keys(first.options)).toEqual(['pipe_target'])
    expect(Object.keys(first.options['pipe_target'] as object)).toEqual([
      'queue_name',
      'actor_name',
      'args',
      'kwargs',
      'options',
      'message_id',
      'message_timestamp',
    ])
  })

  it('runs a three-step chain, with a delay on the last step travelling in its options', async () => {
    const recorder = processRecorder()
    const { broker, worker, enqueued } = await setup(fastStack(undefined, recorder))
    const add = actor('add', (x: number, y = 0) => x + y, { broker })
    const third = add.messageWithOptions({ args: [100], delay: 30 })
    const second = add.messageWithOptions({ args: [10], pipeTarget: third.asDict() })
    await add.sendWithOptions({ args: [1, 2], pipeTarget: second.asDict() })
    await drain(broker, worker)

    expect(recorder.runs.map((r) => r.args)).toEqual([
      [1, 2],
      [10, 3],
      [100, 13],
    ])
    const delayed = enqueued.find((e) => e.wire.message_id === third.messageId)!
    expect(delayed.delay).toBe(30)
    expect(delayed.wire.queue_name).toBe('default.DQ')
    expect(delayed.wire.options['delay']).toBe(30)
  })

  it('does not append the result when the next message has pipeIgnore', async () => {
    const recorder = processRecorder()
    const { broker, worker } = await setup(fastStack(undefined, recorder))
    const add = actor('add', (x: number, y = 0) => x + y, { broker })
    const third = add.message(1)
    const second = add.messageWithOptions({ args: [5, 5], pipeIgnore: true, pipeTarget: third.asDict() })
    await add.sendWithOptions({ args: [1, 2], pipeTarget: second.asDict() })
    await drain(broker, worker)
    // pipeIgnore affects only the message that carries it: the third step gets 10.
    expect(recorder.runs.map((r) => r.args)).toEqual([
      [1, 2],
      [5, 5],
      [1, 10],
    ])
  })

  it('does not append the result when the current actor has pipeIgnore', async () => {
    const recorder = processRecorder()
    const { broker, worker } = await setup(fastStack(undefined, recorder))
    const add = actor('add', (x: number, y = 0) => x + y, { broker })
    const produce = actor('produce', () => 42, { broker, pipeIgnore: true })
    await produce.sendWithOptions({ pipeTarget: add.message(1, 2).asDict() })
    await drain(broker, worker)
    expect(recorder.runs.map((r) => [r.actor, r.args])).toEqual([
      ['produce', []],
      ['add', [1, 2]],
    ])
  })

  it('appends null for an actor that returns nothing', async () => {
    const recorder = processRecorder()
    const { broker, worker } = await setup(fastStack(undefined, recorder))
    const nothing = actor('nothing', () => undefined, { broker })
    const collect = actor('collect', (..._args: unknown[]) => undefined, { broker })
    await nothing.sendWithOptions({ pipeTarget: collect.message('a').asDict() })
    await drain(broker, worker)
    expect(recorder.runs[1]?.args).toEqual(['a', null])
  })

  it('stops the chain when a step fails, including a retried step that is finally dead-lettered', async () => {
    const recorder = processRecorder()
    const { broker, worker, enqueued } = await setup(fastStack(undefined, recorder))
    const add = actor('add', (x: number, y = 0) => x + y, { broker })
    let runs = 0
    const flaky = actor(
      'flaky',
      () => {
        runs++
        throw new Error('broken step')
      },
      { broker, maxRetries: 2 },
    )
    const next = add.message(1)
    await flaky.sendWithOptions({ pipeTarget: next.asDict() })
    await drain(broker, worker)
    expect(runs).toBe(3)
    expect(recorder.runs.filter((r) => r.actor === 'add')).toEqual([])
    expect(enqueued.some((e) => e.wire.message_id === next.messageId)).toBe(false)
    expect(broker.deadLetters).toHaveLength(1)
  })

  it('continues after a step that succeeds on retry', async () => {
    const recorder = processRecorder()
    const { broker, worker } = await setup(fastStack(undefined, recorder))
    const add = actor('add', (x: number, y = 0) => x + y, { broker })
    let runs = 0
    const flaky = actor(
      'flaky',
      () => {
        if (++runs < 2) throw new Error('once')
        return 7
      },
      { broker },
    )
    await flaky.sendWithOptions({ pipeTarget: add.message(1).asDict() })
    await drain(broker, worker)
    expect(recorder.runs.filter((r) => r.actor === 'add').map((r) => r.args)).toEqual([[1, 7]])
  })

  it('accepts pipeTarget as a wire dict, and needs nothing but Pipelines', async () => {
    const broker = new StubBroker({ middleware: [new Pipelines()] })
    const worker = new Worker(broker, { workerTimeout: 50 })
    await worker.start()
    try {
      const seen: unknown[][] = []
      const add = actor('add', (x: number, y = 0) => x + y, { broker })
      const sink = actor('sink', (...args: unknown[]) => void seen.push(args), { broker })
      // A message built in memory with a snake_case target (as a Python peer would write it).
      const first = add.message(2, 3)
      first.options.pipeTarget = sink.message('x').toWire() as never
      const pipelines = broker.middleware[0] as Pipelines
      await pipelines.afterProcessMessage(broker, new MessageProxy(first), { result: 5 })
      await drain(broker, worker)
      expect(seen).toEqual([['x', 5]])
    } finally {
      await worker.stop()
    }
  })
})
