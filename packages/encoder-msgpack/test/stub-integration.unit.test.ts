import { JSONEncoder, Message, StubBroker, Worker, actor, getEncoder, setEncoder, type Broker } from '@tq/core'
import { afterEach, describe, expect, it } from 'vitest'
import { MsgpackEncoder } from '../src/index.ts'

interface Received {
  when: Date
  counts: Map<string, bigint>
  tags: Set<string>
  blob: Uint8Array
  options: { note?: string; missing?: undefined }
}

/** Declare an actor that resolves with what it received, run one message through a Worker. */
async function runOnce(broker: Broker): Promise<{ received: Received; body: Uint8Array | undefined }> {
  let resolve!: (value: Received) => void
  const done = new Promise<Received>((r) => (resolve = r))
  const inspect = actor(
    (when: Date, counts: Map<string, bigint>, tags: Set<string>, blob: Uint8Array, options: Received['options']) =>
      resolve({ when, counts, tags, blob, options }),
    { broker, actorName: 'inspect' },
  )
  const worker = new Worker(broker, { workerTimeout: 20 })
  await worker.start()
  try {
    const message = await inspect.send(
      new Date('2024-02-29T12:34:56.789Z'),
      new Map([
        ['small', 1n],
        ['huge', 2n ** 100n],
      ]),
      new Set(['a', 'b']),
      Buffer.from([0xde, 0xad]),
      { note: 'ünï', missing: undefined },
    )
    const received = await done
    await broker.join('default')
    await worker.join()
    return { received, body: message.encode(broker.encoder) }
  } finally {
    await worker.stop()
  }
}

function expectIntact(received: Received): void {
  expect(received.when).toBeInstanceOf(Date)
  expect(received.when.toISOString()).toBe('2024-02-29T12:34:56.789Z')
  expect(received.counts).toBeInstanceOf(Map)
  expect(received.counts.get('small')).toBe(1n)
  expect(received.counts.get('huge')).toBe(2n ** 100n)
  expect(received.tags).toEqual(new Set(['a', 'b']))
  expect([...received.blob]).toEqual([0xde, 0xad])
  expect(received.options).toEqual({ note: 'ünï', missing: undefined })
  expect('missing' in received.options).toBe(true)
}

describe('MsgpackEncoder with StubBroker and Worker', () => {
  const previous = getEncoder()
  afterEach(() => setEncoder(previous))

  it('delivers Date, Map, BigInt, Set, bytes and undefined intact with a per-broker encoder', async () => {
    const encoder = new MsgpackEncoder()
    const broker = new StubBroker({ encoder })
    expect(broker.encoder).toBe(encoder)
    const { received, body } = await runOnce(broker)
    expectIntact(received)
    // The queue held MessagePack, not JSON.
    expect(body?.[0]).toBe(0x87)
    expect(getEncoder()).toBeInstanceOf(JSONEncoder)
  })

  it('is used by every broker without an encoder of its own after setEncoder()', async () => {
    const encoder = new MsgpackEncoder()
    setEncoder(encoder)
    const broker = new StubBroker()
    expect(broker.encoder).toBe(encoder)
    const { received } = await runOnce(broker)
    expectIntact(received)
    // Message.encode()/decode() default to the global encoder too.
    const message = new Message({ queueName: 'default', actorName: 'x', args: [new Map([[1, 2n]])] })
    expect(Message.decode(message.encode()).args).toEqual([new Map([[1, 2n]])])
  })

  it('keeps Retries working (its options travel in the same wire dict)', async () => {
    const broker = new StubBroker({ encoder: new MsgpackEncoder() })
    let attempts = 0
    let resolve!: (value: Map<string, number>) => void
    const done = new Promise<Map<string, number>>((r) => (resolve = r))
    const flaky = actor(
      (input: Map<string, number>) => {
        attempts++
        if (attempts < 3) throw new Error('not yet')
        resolve(input)
      },
      { broker, actorName: 'flaky', minBackoff: 1, maxBackoff: 5, maxRetries: 5 },
    )
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    try {
      await flaky.send(new Map([['n', 1]]))
      expect(await done).toEqual(new Map([['n', 1]]))
      await broker.join('default')
      await worker.join()
    } finally {
      await worker.stop()
    }
    expect(attempts).toBe(3)
  })
})
