import { describe, expect, it } from 'vitest'
import { DecodeError, JSONEncoder, Message, getEncoder, setEncoder, type Encoder } from '../src/index.ts'
import { loadFixture } from './support/fixtures.ts'

interface Returned {
  returned_message: { encoded: string }
}

describe('Message', () => {
  it('encodes to the exact bytes Dramatiq wrote (redis-enqueue)', () => {
    const { encoded } = loadFixture<Returned>('redis-enqueue').returned_message
    const wire = JSON.parse(encoded) as Record<string, unknown>
    const m = Message.fromWire(wire)
    expect(m.options).toEqual({ redisMessageId: (wire['options'] as Record<string, string>)['redis_message_id'] })
    expect(Buffer.from(m.encode()).toString('utf8')).toBe(encoded)
  })

  it('writes the seven keys in Dramatiq order and escapes non-ASCII like Python', () => {
    const m = new Message({
      queueName: 'default',
      actorName: 'echo',
      args: ['h\u00e9llo \u2603 \u{1F600}', 1.5, null, true],
      kwargs: { z: 1, a: '\u00fc', nested: { k: [1, 2.25, 'x"y\\z\n'] } },
      options: {},
      messageId: 'id',
      messageTimestamp: 1,
    })
    const text = Buffer.from(m.encode()).toString('latin1')
    expect(text).toBe(
      '{"queue_name":"default","actor_name":"echo","args":["h\\u00e9llo \\u2603 \\ud83d\\ude00",1.5,null,true],' +
        '"kwargs":{"z":1,"a":"\\u00fc","nested":{"k":[1,2.25,"x\\"y\\\\z\\n"]}},"options":{},"message_id":"id","message_timestamp":1}',
    )
    // Pure ASCII on the wire.
    expect([...m.encode()].every((b) => b < 0x80)).toBe(true)
  })

  it('reads the unicode/float/big-int fixture', () => {
    const { encoded } = loadFixture<Returned>('redis-enqueue-kwargs-unicode').returned_message
    const m = Message.decode(Buffer.from(encoded))
    expect(m.args[0]).toBe('h\u00e9llo \u2603 \u{1F600}')
    expect(m.args.slice(1, 9)).toEqual([
      1.5,
      null,
      true,
      [1, { a: 'b' }],
      1,
      1e16,
      1.5e-7,
      Number('12345678901234567890'),
    ])
    expect(Object.is(m.args[9], -0)).toBe(true)
    expect(Object.keys(m.kwargs)).toEqual(['z', 'a', 'nested'])
    expect(m.kwargs).toEqual({ z: 1, a: '\u00fc', nested: { k: [1, 2.25, 'x"y\\z\n'] } })
  })

  it('maps Dramatiq option names to camelCase and back, nested messages included', () => {
    const fixture = loadFixture<{ two_step: { redis_keys_after_run: Record<string, { value: unknown }> } }>(
      'redis-pipeline',
    )
    const hash = fixture.two_step.redis_keys_after_run['dramatiq:default.msgs']!.value as Record<string, string>
    const encoded = Object.values(hash)[0]!
    const wire = JSON.parse(encoded) as Record<string, unknown>
    const m = Message.fromWire(wire)
    expect(Object.keys(m.options)).toEqual(['pipeTarget', 'redisMessageId'])
    expect(m.options.pipeTarget?.actorName).toBe('add')
    expect(Buffer.from(m.encode()).toString()).toBe(encoded)
  })

  it('passes unknown options through unchanged', () => {
    const m = Message.fromWire({
      queue_name: 'q',
      actor_name: 'a',
      args: [],
      kwargs: {},
      options: { custom_thing: 1, otherThing: 2, max_retries: 3 },
      message_id: 'i',
      message_timestamp: 1,
    })
    expect(m.options).toEqual({ custom_thing: 1, otherThing: 2, maxRetries: 3 })
    expect(m.toWire().options).toEqual({ custom_thing: 1, otherThing: 2, max_retries: 3 })
  })

  it('asDict() is shallow (options shared) and copy() merges options', () => {
    const m = new Message({ queueName: 'q', actorName: 'a', args: [1], options: { a: 1, b: 2 } })
    const dict = m.asDict()
    expect(dict.options).toBe(m.options)
    const c = m.copy({ queueName: 'q.DQ', options: { b: 3, c: 4 } })
    expect(c.queueName).toBe('q.DQ')
    expect(c.messageId).toBe(m.messageId)
    expect(c.messageTimestamp).toBe(m.messageTimestamp)
    expect(c.options).toEqual({ a: 1, b: 3, c: 4 })
    expect(m.options).toEqual({ a: 1, b: 2 })
  })

  it('prints like Dramatiq', () => {
    const m = new Message({ queueName: 'q', actorName: 'add', args: [1, 'x'], kwargs: { k: true } })
    expect(String(m)).toBe('add(1, "x", k=true)')
  })

  it.each([
    ['not JSON', '{nope', /not valid JSON/],
    ['not an object', '[1,2]', /not a JSON object/],
    [
      'missing actor_name',
      '{"queue_name":"q","args":[],"kwargs":{},"options":{},"message_id":"i","message_timestamp":1}',
      /actor_name must be a string, got nothing/,
    ],
    [
      'args of the wrong type',
      '{"queue_name":"q","actor_name":"a","args":{},"kwargs":{},"options":{},"message_id":"i","message_timestamp":1}',
      /args must be an array/,
    ],
    [
      'kwargs of the wrong type',
      '{"queue_name":"q","actor_name":"a","args":[],"kwargs":[],"options":{},"message_id":"i","message_timestamp":1}',
      /kwargs must be an object/,
    ],
    [
      'a bad timestamp',
      '{"queue_name":"q","actor_name":"a","args":[],"kwargs":{},"options":{},"message_id":"i","message_timestamp":"x"}',
      /message_timestamp must be a number/,
    ],
    [
      'a bad pipe_target',
      '{"queue_name":"q","actor_name":"a","args":[],"kwargs":{},"options":{"pipe_target":5},"message_id":"i","message_timestamp":1}',
      /options.pipe_target is not an object/,
    ],
  ])('decode() rejects %s with a DecodeError naming the problem', (_name, body, pattern) => {
    const attempt = (): Message => Message.decode(Buffer.from(body))
    expect(attempt).toThrow(DecodeError)
    expect(attempt).toThrow(pattern)
    try {
      attempt()
    } catch (e) {
      expect((e as DecodeError).code).toBe('TQ_DECODE')
    }
  })

  it('decode() rejects invalid UTF-8', () => {
    expect(() => Message.decode(Uint8Array.from([0x7b, 0xff, 0x7d]))).toThrow(/not valid UTF-8/)
  })

  it('keeps a __proto__ key as plain data', () => {
    const body =
      '{"queue_name":"q","actor_name":"a","args":[{"__proto__":{"polluted":1}}],"kwargs":{"__proto__":{"polluted":1}},"options":{"__proto__":{"polluted":1}},"message_id":"i","message_timestamp":1}'
    const m = Message.decode(Buffer.from(body))
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    expect(Object.getPrototypeOf(m.options)).toBe(Object.prototype)
    expect((m.options as Record<string, unknown>)['polluted']).toBeUndefined()
    expect(Object.keys(m.options)).toEqual(['__proto__'])
    expect(Buffer.from(m.encode()).toString()).toBe(body)
  })
})

describe('encoders', () => {
  it('getEncoder() is a JSONEncoder until setEncoder() replaces it', () => {
    const original = getEncoder()
    expect(original).toBeInstanceOf(JSONEncoder)
    const calls: string[] = []
    const custom: Encoder = {
      encode: (d) => {
        calls.push('encode')
        return new JSONEncoder().encode(d)
      },
      decode: (b) => {
        calls.push('decode')
        return new JSONEncoder().decode(b)
      },
    }
    try {
      setEncoder(custom)
      const m = new Message({ queueName: 'q', actorName: 'a' })
      Message.decode(m.encode())
      expect(calls).toEqual(['encode', 'decode'])
    } finally {
      setEncoder(original)
    }
  })
})
