import { afterEach, describe, expect, expectTypeOf, it } from 'vitest'
import {
  ConfigurationError,
  Group,
  GroupCallbacks,
  InvalidArgumentError,
  Message,
  Pipeline,
  ResultFailureError,
  ResultMissingError,
  ResultTimeoutError,
  Results,
  StubBroker,
  StubRateLimiterBackend,
  StubResultBackend,
  Worker,
  actor,
  defaultMiddleware,
  group,
  pipeline,
  setBroker,
  type Middleware,
  type WireMessage,
} from '../src/index.ts'
import { loadFixture } from './support/fixtures.ts'

class ValueError extends Error {
  override name = 'ValueError'
}

/** A promise with its resolve function, to hold an actor until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => (open = resolve))
  return { promise, open }
}

const workers: Worker[] = []
afterEach(async () => {
  setBroker(undefined)
  for (const w of workers.splice(0)) await w.stop({ timeout: 1000 })
})

function setup(options: { groupCallbacks?: boolean } = {}) {
  const backend = new StubResultBackend()
  const limits = new StubRateLimiterBackend()
  const enqueued: Array<{ wire: WireMessage; delay: number | undefined; encoded: string }> = []
  const spy: Middleware = {
    afterEnqueue: (_broker, message, delay) => {
      enqueued.push({ wire: message.toWire(), delay, encoded: Buffer.from(message.encode()).toString('latin1') })
    },
  }
  const middleware: Middleware[] = [...defaultMiddleware(), new Results({ backend, storeResults: true })]
  if (options.groupCallbacks ?? true) middleware.push(new GroupCallbacks({ rateLimiterBackend: limits }))
  middleware.push(spy)
  const broker = new StubBroker({ middleware })
  const worker = new Worker(broker, { workerTimeout: 50, concurrency: 8 })
  workers.push(worker)
  const calls: string[] = []
  const add = actor(
    'add',
    (x: number, y: number = 0) => {
      calls.push(`add(${x}, ${y})`)
      return x + y
    },
    { broker },
  )
  return { backend, limits, broker, worker, enqueued, calls, add }
}

type EnqueueLog = Array<{ encoded: string; delay_arg: number | null }>

/** The steps of a pipeline, rebuilt from the nested first message Dramatiq wrote (without the links). */
function stepsOf(encoded: string): Message[] {
  const steps: Message[] = []
  let wire: WireMessage | undefined = JSON.parse(encoded) as WireMessage
  while (wire) {
    const { pipe_target: next, redis_message_id: _id, ...options } = wire.options
    steps.push(Message.fromWire({ ...wire, options }))
    wire = next as WireMessage | undefined
  }
  return steps
}

/** Dramatiq's payload minus the Redis broker's own `redis_message_id` (always the last option). */
const withoutRedisId = (encoded: string): string => encoded.replace(/,"redis_message_id":"[0-9a-f-]+"/, '')

async function drain(broker: StubBroker, worker: Worker): Promise<void> {
  await broker.join('default', { timeout: 5000, failFast: false })
  await worker.join({ timeout: 5000 })
}

describe('pipeline', () => {
  it('copies the messages and links each to the next through pipeTarget, nesting the whole chain', () => {
    const { broker, add } = setup()
    const a = add.message(1, 2)
    const b = add.message(3)
    const c = add.messageWithOptions({ args: [4], delay: 10 })
    const p = pipeline([a, b, c], { broker })
    expect(p.length).toBe(3)
    expect(p.messages.map((m) => m.messageId)).toEqual([a.messageId, b.messageId, c.messageId])
    expect(p.messages[0]).not.toBe(a)
    expect(a.options).toEqual({}) // the originals are untouched
    const wire = (p.messages[0] as Message).toWire()
    expect(Object.keys(wire.options)).toEqual(['pipe_target'])
    const second = wire.options['pipe_target'] as WireMessage
    expect(Object.keys(second)).toEqual([
      'queue_name',
      'actor_name',
      'args',
      'kwargs',
      'options',
      'message_id',
      'message_timestamp',
    ])
    expect(second.message_id).toBe(b.messageId)
    const third = second.options['pipe_target'] as WireMessage
    expect(third).toMatchObject({ args: [4], message_id: c.messageId, options: { delay: 10 } })
    expect(third.options['pipe_target']).toBeUndefined()
  })

  it('writes the same first message as Dramatiq, byte for byte', async () => {
    const fixture = loadFixture<{ two_step: { enqueue_log: EnqueueLog }; three_step: { enqueue_log: EnqueueLog } }>(
      'redis-pipeline',
    )
    for (const part of [fixture.two_step, fixture.three_step]) {
      const { broker, enqueued } = setup()
      const original = part.enqueue_log[0] as { encoded: string; delay_arg: number | null }
      await pipeline(stepsOf(original.encoded), { broker }).run()
      expect(enqueued).toHaveLength(1)
      expect(enqueued[0]?.encoded).toBe(withoutRedisId(original.encoded))
      expect(enqueued[0]?.delay ?? null).toBe(original.delay_arg)
    }
  })

  it('flattens child pipelines, and pipe() appends a step', () => {
    const { broker, add } = setup()
    const inner = pipeline([add.message(1), add.message(2)], { broker })
    const outer = pipeline([inner, add.message(3)], { broker })
    expect(outer.length).toBe(3)
    expect(outer.messages.map((m) => m.args)).toEqual([[1], [2], [3]])
    const longer = outer.pipe(add.message(4))
    expect(longer).toBeInstanceOf(Pipeline)
    expect(longer.length).toBe(4)
    expect(outer.length).toBe(3)
    expect((longer.messages[2] as Message).options.pipeTarget?.messageId).toBe(
      (longer.messages[3] as Message).messageId,
    )
  })

  it('rejects groups as steps and empty pipelines', () => {
    const { broker, add } = setup()
    const g = group([add.message(1)], { broker })
    expect(() => new Pipeline([add.message(1), g as never], { broker })).toThrow(InvalidArgumentError)
    expect(() => new Pipeline([add.message(1), g as never], { broker })).toThrow(/#103/)
    expect(() => pipeline([], { broker })).toThrow(InvalidArgumentError)
  })

  it('enqueues only the first message on run() and returns itself', async () => {
    const { broker, add, enqueued } = setup()
    const p = pipeline([add.message(1, 2), add.message(3)], { broker })
    expect(await p.run()).toBe(p)
    expect(enqueued).toHaveLength(1)
    expect(enqueued[0]?.wire.message_id).toBe(p.messages[0]?.messageId)
    expect(enqueued[0]?.delay).toBeUndefined()
    expect(broker.size('default')).toBe(1)
  })

  it('runs the steps in order, appending each result, and reads the results', async () => {
    const { broker, worker, add, calls } = setup()
    const p = pipeline([add.message(1, 2), add.message(3), add.message(4)], { broker })
    expect(await p.completed).toBe(false)
    expect(await p.completedCount).toBe(0)
    await worker.start()
    await p.run()
    expect(await p.getResult({ block: true })).toBe(10)
    expect(calls).toEqual(['add(1, 2)', 'add(3, 3)', 'add(4, 6)'])
    expect(await p.collectResults({ block: true })).toEqual([3, 6, 10])
    const streamed: unknown[] = []
    for await (const result of p.getResults()) streamed.push(result)
    expect(streamed).toEqual([3, 6, 10])
    expect(await p.completed).toBe(true)
    expect(await p.completedCount).toBe(3)
  })

  it('does not append the result to a step with pipeIgnore', async () => {
    const { broker, worker, add, calls } = setup()
    const p = pipeline([add.message(1, 2), add.messageWithOptions({ args: [5, 5], pipeIgnore: true })], { broker })
    await worker.start()
    await p.run()
    expect(await p.getResult({ block: true })).toBe(10)
    expect(calls).toEqual(['add(1, 2)', 'add(5, 5)'])
  })

  it('stops at a step that fails for good', async () => {
    const { broker, worker, add, calls } = setup()
    const fails = actor(
      'fails',
      (_previous?: number) => {
        throw new ValueError('boom')
      },
      { broker, maxRetries: 0 },
    )
    const p = pipeline([add.message(1, 2), fails.message(), add.message(100)], { broker })
    await worker.start()
    await p.run()
    await drain(broker, worker)
    expect(calls).toEqual(['add(1, 2)'])
    await expect(p.getResult()).rejects.toBeInstanceOf(ResultMissingError)
    expect(await p.completed).toBe(false)
    // As in Dramatiq, a stored failure surfaces instead of being counted.
    await expect(p.completedCount).rejects.toBeInstanceOf(ResultFailureError)
    const results = p.getResults()
    expect((await results.next()).value).toBe(3)
    await expect(results.next()).rejects.toBeInstanceOf(ResultFailureError)
  })

  it('times out reading an incomplete pipeline, with one deadline for all steps', async () => {
    const { broker, add } = setup()
    const p = pipeline([add.message(1), add.message(2)], { broker })
    await p.run() // no worker
    await expect(p.getResult({ block: true, timeout: 20 })).rejects.toBeInstanceOf(ResultTimeoutError)
    const started = Date.now()
    await expect(p.collectResults({ block: true, timeout: 50 })).rejects.toBeInstanceOf(ResultTimeoutError)
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('delays the first message by the larger of the run delay and its own delay option', async () => {
    const { broker, add, enqueued } = setup()
    await pipeline([add.message(1), add.message(2)], { broker }).run({ delay: 100 })
    await pipeline([add.messageWithOptions({ args: [1], delay: 50 }), add.message(2)], { broker }).run({ delay: 100 })
    await pipeline([add.messageWithOptions({ args: [1], delay: 200 }), add.message(2)], { broker }).run({ delay: 10 })
    await pipeline([add.messageWithOptions({ args: [1], delay: 30 })], { broker }).run()
    await pipeline([add.message(1)], { broker }).run({ delay: 0 })
    expect(enqueued.map((e) => e.delay)).toEqual([100, 100, 200, 30, undefined])
    expect(enqueued[0]?.wire.queue_name).toBe('default.DQ')
  })

  it('delays a later step by its own delay option', async () => {
    const { broker, worker, add, enqueued } = setup()
    const p = pipeline([add.message(1), add.messageWithOptions({ args: [2], delay: 30 })], { broker })
    await worker.start()
    await p.run()
    expect(await p.getResult({ block: true, timeout: 2000 })).toBe(3)
    expect(enqueued.map((e) => e.delay)).toEqual([undefined, 30, undefined])
  })

  it('uses the global broker by default', async () => {
    const { broker, worker, add } = setup()
    setBroker(broker)
    await worker.start()
    const p = await pipeline([add.message(1, 1), add.message(1)]).run()
    expect(p.broker).toBe(broker)
    expect(await p.getResult({ block: true })).toBe(3)
  })

  it('types getResult by the last step', () => {
    const { broker, add } = setup()
    const upper = actor('upper', (s?: number) => String(s).toUpperCase(), { broker })
    const p = pipeline([add.message(1), upper.message()], { broker })
    expectTypeOf<ReturnType<typeof p.getResult>>().toEqualTypeOf<Promise<string>>()
    expectTypeOf(p.pipe(add.message(2)).getResult).returns.toEqualTypeOf<Promise<number>>()
  })
})

describe('group', () => {
  it('runs its children in parallel and returns results in child order', async () => {
    const { broker, worker, add } = setup()
    const gates = [gate(), gate(), gate()]
    const held = actor(
      'held',
      async (i: number) => {
        await gates[i]?.promise
        return i * 10
      },
      { broker },
    )
    const g = group([held.message(0), held.message(1), held.message(2), add.message(1, 1)], { broker })
    expect(g.length).toBe(4)
    await worker.start()
    await g.run()
    // Complete out of order: 2, then 0, then 1 (#452: counts must not depend on order).
    gates[2]?.open()
    await (g.children[2] as Message).getResult({ backend: broker.getResultBackend(), block: true })
    await (g.children[3] as Message).getResult({ backend: broker.getResultBackend(), block: true })
    expect(await g.completedCount).toBe(2)
    expect(await g.completed).toBe(false)
    gates[0]?.open()
    await (g.children[0] as Message).getResult({ backend: broker.getResultBackend(), block: true })
    expect(await g.completedCount).toBe(3)
    gates[1]?.open()
    expect(await g.collectResults({ block: true })).toEqual([0, 10, 20, 2])
    expect(await g.completedCount).toBe(4)
    expect(await g.completed).toBe(true)
  })

  it('wait() times out with one deadline for the whole group', async () => {
    const { broker, worker } = setup()
    const hold = gate()
    const held = actor('held', async () => await hold.promise, { broker })
    const g = group([held.message(), held.message()], { broker })
    await worker.start()
    await g.run()
    const started = Date.now()
    await expect(g.wait({ timeout: 50 })).rejects.toBeInstanceOf(ResultTimeoutError)
    expect(Date.now() - started).toBeLessThan(1000)
    await expect(g.collectResults()).rejects.toBeInstanceOf(ResultMissingError)
    hold.open()
    await g.wait({ timeout: 2000 })
    expect(await g.completed).toBe(true)
  })

  it('gives a nested group its list of results and a pipeline its final result', async () => {
    const { broker, worker, add } = setup()
    const g = group(
      [
        add.message(1, 2),
        pipeline([add.message(1), add.message(2)], { broker }),
        group([add.message(5), add.message(6)], { broker }),
      ],
      { broker },
    )
    expectTypeOf<ReturnType<typeof g.collectResults>>().toEqualTypeOf<Promise<[number, number, [number, number]]>>()
    await worker.start()
    await g.run()
    expect(await g.collectResults({ block: true, timeout: 2000 })).toEqual([3, 3, [5, 6]])
    expect(await g.completedCount).toBe(3)
  })

  it('enqueues every child with the run delay', async () => {
    const { broker, add, enqueued } = setup()
    const g = group(
      [add.message(1), pipeline([add.messageWithOptions({ args: [2], delay: 500 }), add.message(3)], { broker })],
      {
        broker,
      },
    )
    await g.run({ delay: 100 })
    expect(enqueued.map((e) => [e.wire.args, e.delay])).toEqual([
      [[1], 100],
      [[2], 500],
    ])
  })

  it('is complete at once when empty', async () => {
    const { broker } = setup()
    const g = group([], { broker })
    await g.run()
    expect(await g.completed).toBe(true)
    expect(await g.collectResults()).toEqual([])
  })

  it('rejects children that are not messages, pipelines or groups', () => {
    const { broker } = setup()
    expect(() => new Group([{} as never], { broker })).toThrow(InvalidArgumentError)
  })
})

describe('group completion callbacks', () => {
  it('tags each child with the barrier uuid and the callbacks, in Dramatiq option order', async () => {
    const { broker, add, enqueued, limits } = setup()
    const done = actor('done', () => undefined, { broker })
    const callback = done.message()
    const g = group([add.message(1, 2), add.message(3, 4)], { broker })
    expect(g.addCompletionCallback(callback)).toBeUndefined()
    await g.run()
    expect(enqueued).toHaveLength(2)
    const uuids = new Set<unknown>()
    for (const { wire } of enqueued) {
      expect(Object.keys(wire.options)).toEqual(['group_completion_uuid', 'group_completion_callbacks'])
      expect(wire.options['group_completion_callbacks']).toEqual([callback.toWire()])
      uuids.add(wire.options['group_completion_uuid'])
    }
    expect(uuids.size).toBe(1)
    const uuid = [...uuids][0] as string
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/)
    expect(limits.peek(uuid)).toBe(2)
    // The children are copies with the original ids; the group's own messages are untouched.
    expect(enqueued.map((e) => e.wire.message_id)).toEqual(g.children.map((c) => (c as Message).messageId))
    expect((g.children[0] as Message).options).toEqual({})
  })

  it('writes the same child messages as Dramatiq, byte for byte (barrier uuid aside)', async () => {
    type Part = { enqueue_log_of_run: EnqueueLog }
    const fixture = loadFixture<{ two_messages: Part; with_pipeline_child: Part }>('redis-group-callbacks')
    for (const part of [fixture.two_messages, fixture.with_pipeline_child]) {
      const { broker, enqueued } = setup()
      actor('done', () => undefined, { broker })
      const logged = part.enqueue_log_of_run.map((e) => JSON.parse(e.encoded) as WireMessage)
      // The callback, as Dramatiq embedded it, and the children without the group options.
      const firstWithGroup = (w: WireMessage): WireMessage =>
        w.options['group_completion_uuid'] ? w : firstWithGroup(w.options['pipe_target'] as WireMessage)
      const tagged = firstWithGroup(logged[0] as WireMessage)
      const fixtureUuid = tagged.options['group_completion_uuid'] as string
      const callback = Message.fromWire((tagged.options['group_completion_callbacks'] as unknown[])[0])
      const strip = (w: WireMessage): Message[] =>
        stepsOf(JSON.stringify(w)).map((m) => {
          const { groupCompletionUuid: _u, groupCompletionCallbacks: _c, ...options } = m.options
          return new Message({ ...m.asDict(), options })
        })
      const children = logged.map((w) => {
        const steps = strip(w)
        return steps.length === 1 ? (steps[0] as Message) : pipeline(steps, { broker })
      })
      const g = group(children, { broker })
      g.addCompletionCallback(callback)
      await g.run()
      const uuid = enqueued[0]?.wire.options['group_completion_uuid'] as string
      expect(enqueued.map((e) => e.encoded)).toEqual(
        part.enqueue_log_of_run.map((e) => withoutRedisId(e.encoded).replaceAll(fixtureUuid, uuid)),
      )
    }
  })

  it('puts the group options on the last message of a pipeline child, nested in pipeTarget', async () => {
    const { broker, add, enqueued } = setup()
    const done = actor('done', () => undefined, { broker })
    const g = group([add.message(1, 2), pipeline([add.message(5), add.message(6)], { broker })], { broker })
    g.addCompletionCallback(done.message())
    await g.run()
    expect(enqueued).toHaveLength(2)
    const first = enqueued[1]?.wire as WireMessage
    expect(Object.keys(first.options)).toEqual(['pipe_target'])
    const last = first.options['pipe_target'] as WireMessage
    expect(Object.keys(last.options)).toEqual(['group_completion_uuid', 'group_completion_callbacks'])
    expect(last.options['group_completion_uuid']).toBe(enqueued[0]?.wire.options['group_completion_uuid'])
  })

  it('enqueues the callback exactly once, after every child succeeded, with its original id', async () => {
    const { broker, worker, add, calls, enqueued } = setup()
    const finished = gate()
    const done = actor(
      'done',
      () => {
        calls.push('done')
        finished.open()
      },
      { broker },
    )
    const callback = done.message()
    const g = group([add.message(1), add.message(2), add.message(3)], { broker })
    g.addCompletionCallback(callback)
    await worker.start()
    await g.run()
    await finished.promise
    await drain(broker, worker)
    expect(calls.filter((c) => c === 'done')).toHaveLength(1)
    expect(calls.indexOf('done')).toBe(3)
    const sent = enqueued.filter((e) => e.wire.actor_name === 'done')
    expect(sent).toHaveLength(1)
    expect(sent[0]?.wire.message_id).toBe(callback.messageId)
    expect(sent[0]?.wire.message_timestamp).toBe(callback.messageTimestamp)
  })

  it('never enqueues the callback when a child fails for good', async () => {
    const { broker, worker, add, calls } = setup()
    const done = actor('done', () => void calls.push('done'), { broker })
    const fails = actor(
      'fails',
      () => {
        throw new ValueError('boom')
      },
      { broker, maxRetries: 0 },
    )
    const g = group([add.message(1), fails.message(), add.message(2)], { broker })
    g.addCompletionCallback(done.message())
    await worker.start()
    await g.run()
    await drain(broker, worker)
    expect(calls).not.toContain('done')
    expect(broker.deadLetters).toHaveLength(1)
  })

  it('counts a child that succeeds after retries once', async () => {
    const { broker, worker, add, calls } = setup()
    const finished = gate()
    const done = actor(
      'done',
      () => {
        calls.push('done')
        finished.open()
      },
      { broker },
    )
    let attempts = 0
    const flaky = actor(
      'flaky',
      () => {
        if (++attempts < 3) throw new ValueError('not yet')
      },
      { broker, maxRetries: 5, minBackoff: 5, maxBackoff: 10 },
    )
    const g = group([flaky.message(), add.message(1)], { broker })
    g.addCompletionCallback(done.message())
    await worker.start()
    await g.run()
    await finished.promise
    await drain(broker, worker)
    expect(attempts).toBe(3)
    expect(calls.filter((c) => c === 'done')).toHaveLength(1)
  })

  it('fires for a group of pipelines after the last step of each', async () => {
    const { broker, worker, add, calls } = setup()
    const finished = gate()
    const done = actor(
      'done',
      () => {
        calls.push('done')
        finished.open()
      },
      { broker },
    )
    const g = group(
      [
        pipeline([add.message(1, 2), add.message(3)], { broker }),
        pipeline([add.message(10), add.message(20)], { broker }),
      ],
      { broker },
    )
    g.addCompletionCallback(done.message())
    await worker.start()
    await g.run()
    await finished.promise
    await drain(broker, worker)
    expect(calls.filter((c) => c === 'done')).toHaveLength(1)
    expect(calls[calls.length - 1]).toBe('done')
    expect(calls).toContain('add(3, 3)')
    expect(calls).toContain('add(20, 10)')
    expect(await g.collectResults()).toEqual([6, 30])
  })

  it('requires the GroupCallbacks middleware', async () => {
    const { broker, add, enqueued } = setup({ groupCallbacks: false })
    const g = group([add.message(1)], { broker })
    g.addCompletionCallback(add.message(2))
    const error = await g.run().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigurationError)
    expect((error as Error).message).toMatch(/GroupCallbacks/)
    expect(enqueued).toHaveLength(0)
  })

  it('rejects nested groups and empty groups when callbacks are set', async () => {
    const { broker, add, enqueued } = setup()
    const nested = group([add.message(1), group([add.message(2)], { broker })], { broker })
    nested.addCompletionCallback(add.message(3))
    await expect(nested.run()).rejects.toBeInstanceOf(InvalidArgumentError)
    const empty = group([], { broker })
    empty.addCompletionCallback(add.message(3))
    await expect(empty.run()).rejects.toBeInstanceOf(InvalidArgumentError)
    expect(enqueued).toHaveLength(0)
  })
})
