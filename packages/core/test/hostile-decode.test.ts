// Regressions found by the fault-injection suites (reliability/): a payload that cannot be
// decoded fails with a DecodeError whatever broke (so every broker dead-letters it), an unknown
// actor's dead-lettering is logged with its typed reason, and a "__proto__" key stays plain
// data through every path (here: a delayed message moved to its queue).
import { describe, expect, it } from 'vitest'
import { DecodeError, JSONEncoder, Message, StubBroker, Worker, actor } from '../src/index.ts'
import { Ledger, createCapturingLogger } from '../src/testing/index.ts'

const encoder = new JSONEncoder()
const bytes = (text: string): Uint8Array => Buffer.from(text)
const isPlain = (value: object): boolean => Object.getPrototypeOf(value) === Object.prototype
const valid = (patch: string): string =>
  `{"queue_name":"q","actor_name":"a","args":[1],"kwargs":{},"options":{},"message_id":"m","message_timestamp":1${patch}}`

describe('hostile payloads', () => {
  it('a pipe_target chain nested deeper than the stack allows is a DecodeError, not a RangeError', () => {
    const depth = 20_000
    const head = '{"queue_name":"q","actor_name":"a","args":[],"kwargs":{},"options":{"pipe_target":'
    const tail = '},"message_id":"m","message_timestamp":1}'
    const text = head.repeat(depth) + valid('') + tail.repeat(depth)
    expect(() => Message.decode(bytes(text), encoder)).toThrow(DecodeError)
    expect(() => Message.decode(bytes(text), encoder)).toThrow(/could not be decoded: Maximum call stack/)
  })

  it('a message for an unknown actor is dead-lettered and logged with ActorNotFoundError', async () => {
    const logger = createCapturingLogger()
    const broker = new StubBroker({ middleware: [], logger })
    const ledger = new Ledger<number>()
    const known = actor('known', (i: number) => ledger.record(i), { broker, queueName: 'q' })
    const stray = new Message({ queueName: 'q', actorName: 'nobody', args: [] })
    broker.putRaw('q', stray.encode(encoder))
    await known.send(1)
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await ledger.waitForTotal(1)
    await broker.join('q', { failFast: false })
    await worker.stop()
    expect(broker.deadLetters.map((m) => m.messageId)).toEqual([stray.messageId])
    const entry = logger.entries.find((e) => e.msg.includes('unknown actor nobody'))
    expect(entry?.meta).toMatchObject({ messageId: stray.messageId, err: { type: 'ActorNotFoundError' } })
  })

  it('a delayed message with a "__proto__" option key keeps it as a key when moved to its queue', async () => {
    const broker = new StubBroker({ middleware: [] })
    const seen: Array<{ hook: string; plain: boolean; keys: string[] }> = []
    broker.addMiddleware({
      beforeEnqueue: (_b, m) =>
        void seen.push({ hook: 'enqueue', plain: isPlain(m.options), keys: Object.keys(m.options) }),
      beforeProcessMessage: (_b, m) =>
        void seen.push({ hook: 'process', plain: isPlain(m.options), keys: Object.keys(m.options) }),
    })
    const ledger = new Ledger<number>()
    actor('record', (i: number) => ledger.record(i), { broker, queueName: 'q' })
    const body = `{"queue_name":"q","actor_name":"record","args":[1],"kwargs":{},"options":{"eta":${Date.now() - 1},"__proto__":{"polluted":1}},"message_id":"m","message_timestamp":1}`
    broker.putRaw('q', bytes(body))
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await ledger.waitForTotal(1)
    await broker.join('q')
    await worker.stop()
    expect(seen).toEqual([
      { hook: 'enqueue', plain: true, keys: ['__proto__'] },
      { hook: 'process', plain: true, keys: ['__proto__'] },
    ])
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
  })
})
