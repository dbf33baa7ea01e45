import { DecodeError, StubBroker, Worker, actor } from '@tq/core'
import { Unpackr, addExtension, pack, unpack } from 'msgpackr'
import { afterEach, describe, expect, it } from 'vitest'
import { MsgpackEncoder, MsgpackExtension } from '../src/index.ts'

const encoder = new MsgpackEncoder()
/** msgpackr with nothing switched off: what the hostile bytes would do without tq's checks. */
const permissive = new Unpackr({ useRecords: false, mapsAsObjects: true })

const bytes = (...parts: Array<number | number[] | Uint8Array>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : Buffer.from(p as ArrayLike<number>))))
const str = (s: string): Buffer => Buffer.from(pack(s))
/** A one-entry map `{ [key]: <raw value bytes> }` as a whole message body. */
const withValue = (value: Uint8Array, key = 'x'): Buffer => bytes(0x81, str(key), value)

function expectDecodeError(body: Uint8Array, pattern?: RegExp): DecodeError {
  let caught: unknown
  try {
    encoder.decode(body)
  } catch (error) {
    caught = error
  }
  expect(caught).toBeInstanceOf(DecodeError)
  const error = caught as DecodeError
  expect(error.code).toBe('TQ_DECODE')
  expect(error.data).toBe(body)
  if (pattern) expect(error.message).toMatch(pattern)
  return error
}

/** xorshift32: deterministic "random" bytes. */
function prng(seed: number): () => number {
  let x = seed
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) & 0xff
  }
}

const rich = {
  queue_name: 'default',
  actor_name: 'a',
  args: [1, -2, 3.5, 'é🙂', null, true, undefined, new Date(1), 5_000_000_000, Buffer.from([1, 2])],
  kwargs: { m: new Map<unknown, unknown>([[1, new Set([2n ** 80n])]]), s: new Set(['x']), n: -7n },
  options: { eta: 1_700_000_000_000 },
  message_id: 'id',
  message_timestamp: 1_700_000_000_000,
}

afterEach(() => {
  // Nothing a test decoded may reach Object.prototype.
  expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
  expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false)
})

describe('MsgpackEncoder.decode on malformed input', () => {
  it('raises DecodeError for every truncation of a valid payload, and for trailing bytes', () => {
    const body = Buffer.from(encoder.encode(rich))
    expect(encoder.decode(body)).toEqual(rich)
    for (let length = 0; length < body.length; length++) expectDecodeError(body.subarray(0, length))
    expectDecodeError(bytes(body, 0xc0), /extra bytes/)
  })

  it('raises DecodeError (never anything else) for random bytes and random corruptions', () => {
    const next = prng(0x9e3779b9)
    const valid = Buffer.from(encoder.encode(rich))
    let decoded = 0
    for (let i = 0; i < 2000; i++) {
      let body: Buffer
      if (i % 2 === 0) {
        body = Buffer.alloc(1 + (next() % 120))
        for (let j = 0; j < body.length; j++) body[j] = next()
        if (i % 4 === 0) body[0] = 0x80 | (next() & 0x0f) // a map header, so decoding goes further
      } else {
        body = Buffer.from(valid)
        for (let flips = 1 + (next() % 3); flips > 0; flips--) body[((next() << 8) | next()) % body.length] = next()
      }
      try {
        const value = encoder.decode(body)
        expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
        decoded++
      } catch (error) {
        expect(error).toBeInstanceOf(DecodeError)
      }
    }
    // Some corruptions only change a value; the point is that nothing else escapes.
    expect(decoded).toBeGreaterThan(0)
  })

  it('requires the top-level value to be a map', () => {
    for (const value of [[1, 2], 'a string', 42, null, true, new Date(0), Buffer.from([1]), 2n]) {
      expectDecodeError(Buffer.from(pack(value)), /not a map/)
    }
    expectDecodeError(new Uint8Array(0), /empty/)
  })

  it('rejects declared lengths the payload cannot hold without allocating them', () => {
    const huge = [0xff, 0xff, 0xff, 0xff]
    for (const header of [0xdd, 0xdf, 0xdb, 0xc6])
      expectDecodeError(withValue(bytes(header, huge, 0x01)), /end of data/)
    expectDecodeError(withValue(bytes(0xc9, huge, MsgpackExtension.MAP, 0x90)), /end of data/)
    expectDecodeError(bytes(0xdf, huge), /end of data/)
  })

  it('turns nesting too deep for the call stack into DecodeError, and keeps working after', () => {
    const depth = 50_000
    const deep = withValue(bytes(Buffer.alloc(depth, 0x91), 0xc0))
    expectDecodeError(deep)
    expect(encoder.decode(encoder.encode({ ok: [new Set([1])] }))).toEqual({ ok: [new Set([1])] })
  })

  it('raises DecodeError for the reserved byte 0xc1 (msgpackr would return a marker object)', () => {
    expect(permissive.unpack(withValue(bytes(0xc1)))).toHaveProperty('x')
    expectDecodeError(withValue(bytes(0xc1)), /0xc1/)
  })
})

describe('MsgpackEncoder.decode never builds objects from extension types it does not need', () => {
  const cases: Array<{ name: string; body: Buffer; permissively?: (value: unknown) => void }> = [
    {
      // msgpackr's record extension: defines a structure and reads an instance of it.
      name: 'record definition (0x72)',
      body: withValue(bytes(0xd4, 0x72, 0x40, 0x91, str('a'), 0x01)),
      permissively: (v) => expect(v).toEqual({ a: 1 }),
    },
    {
      name: 'two-byte record definition (0x72)',
      body: withValue(bytes(0xd5, 0x72, 0x40, 0x00, 0x91, str('a'), 0x01)),
    },
    {
      name: 'Error (0x65)',
      body: withValue(bytes(0xd4, 0x65, 0x00, 0x93, str('TypeError'), str('boom'), 0xc0)),
      permissively: (v) => expect(v).toBeInstanceOf(TypeError),
    },
    {
      name: 'RegExp (0x78)',
      body: withValue(bytes(0xd4, 0x78, 0x00, 0x92, str('(a+)+$'), str('g'))),
      permissively: (v) => expect(v).toBeInstanceOf(RegExp),
    },
    {
      name: 'msgpackr tagged Set (0x73)',
      body: withValue(bytes(0xd4, 0x73, 0x00, 0x91, 0x01)),
      permissively: (v) => expect(v).toBeInstanceOf(Set),
    },
    {
      name: 'typed array (0x74)',
      body: withValue(bytes(0xc7, 0x09, 0x74, 0x08, Buffer.alloc(8))),
      permissively: (v) => expect(v).toBeInstanceOf(Float64Array),
    },
    { name: 'structured-clone id (0x69)', body: withValue(bytes(0xd6, 0x69, 0, 0, 0, 1, 0x80)) },
    { name: 'structured-clone pointer (0x70)', body: withValue(bytes(0xd6, 0x70, 0, 0, 0, 1)) },
    { name: 'bundled strings (0x62)', body: withValue(bytes(0xd6, 0x62, 0, 0, 0, 6, 0xc1, 0x01)) },
    { name: 'msgpackr BigInt (0x42)', body: withValue(bytes(0xd4, 0x42, 0x01)) },
    { name: 'an unknown application type (5)', body: withValue(bytes(0xd4, 0x05, 0x01)) },
    { name: 'a negative reserved type (-2)', body: withValue(bytes(0xd4, 0xfe, 0x01)) },
  ]

  for (const { name, body, permissively } of cases) {
    it(`rejects ${name}`, () => {
      if (permissively) permissively((permissive.unpack(body) as { x: unknown }).x)
      expectDecodeError(body, /extension type|0xc1/)
      // Also inside a Map payload and deep in a structure.
      const inner = body.subarray(3) // the value after `0x81 0xa1 'x'`
      const payload = bytes(0x92, 0x01, inner)
      expectDecodeError(withValue(bytes(0xc7, payload.length, MsgpackExtension.MAP, payload)))
      expectDecodeError(withValue(bytes(0x91, 0x81, str('k'), 0x91, inner)))
    })
  }

  it('never calls an extension another part of the process registered with msgpackr', () => {
    let ran = 0
    addExtension({
      type: 42,
      unpack: () => {
        ran++
        return { constructed: true }
      },
    })
    const body = withValue(bytes(0xd4, 42, 0x00))
    expect((unpack(body) as { x: unknown }).x).toEqual({ constructed: true })
    expect(ran).toBe(1)
    expectDecodeError(body, /extension type 42/)
    expect(ran).toBe(1)
  })

  it("leaves other msgpackr decoders unaware of tq's extension types", () => {
    const body = encoder.encode({ m: new Map([[1, 2]]) })
    expect(() => unpack(body)).toThrow(/Unknown extension type/)
    expect(encoder.decode(body)).toEqual({ m: new Map([[1, 2]]) })
  })

  it('checks the framing of the extension types it does use', () => {
    const map = (payload: Buffer) => withValue(bytes(0xc7, payload.length, MsgpackExtension.MAP, payload))
    expectDecodeError(map(bytes(0x93, 1, 2, 3)), /odd number/)
    expectDecodeError(map(bytes(0x81, 0x01, 0x02)), /does not hold an array/)
    expectDecodeError(map(bytes(0x01)), /does not hold an array/)
    expectDecodeError(map(bytes(0x90, 0x90)), /payload has extra bytes/)
    expectDecodeError(map(bytes(0x92, 0x01)), /end of data/)
    expectDecodeError(withValue(bytes(0xd4, MsgpackExtension.SET, 0x01)), /does not hold an array/)
    expectDecodeError(withValue(bytes(0xc7, 0x00, MsgpackExtension.BIGINT)), /empty BigInt/)
    expectDecodeError(withValue(bytes(0xd5, 0xff, 0x00, 0x00)), /timestamp of 2 bytes/)
  })

  it('accepts only strings, numbers, booleans and nil as map keys', () => {
    expectDecodeError(bytes(0x81, 0x90, 0x01), /map key/)
    expectDecodeError(bytes(0x81, 0x80, 0x01), /map key/)
    expectDecodeError(bytes(0x81, 0xc4, 0x01, 0x61, 0x01), /binary map key/)
    expectDecodeError(bytes(0x81, 0xd4, 0x00, 0x00, 0x01), /map key/)
    expectDecodeError(bytes(0x81, 0xd6, 0xff, 0, 0, 0, 0, 0x01), /map key/)
    expect(
      encoder.decode(
        bytes(0x84, 0x01, str('a'), 0xcb, [0x3f, 0xf8, 0, 0, 0, 0, 0, 0], str('b'), 0xc3, str('c'), 0xc0, str('d')),
      ),
    ).toEqual({
      '1': 'a',
      '1.5': 'b',
      true: 'c',
      null: 'd',
    })
  })
})

describe('MsgpackEncoder.decode and prototype pollution', () => {
  const payload = { polluted: true }
  it('keeps __proto__, constructor and prototype keys as plain data at every depth', () => {
    const input = JSON.parse(
      '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"prototype":{"polluted":true},"__proto_":"other",' +
        '"args":[{"__proto__":{"polluted":true},"nested":[{"a":{"__proto__":{"polluted":true}}}]}]}',
    ) as Record<string, unknown>
    expect(Object.keys(input)).toContain('__proto__')
    const decoded = encoder.decode(encoder.encode(input))

    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
    expect(Object.keys(decoded)).toEqual(['__proto__', 'constructor', 'prototype', '__proto_', 'args'])
    expect(Object.getOwnPropertyDescriptor(decoded, '__proto__')?.value).toEqual(payload)
    expect(decoded['__proto_']).toBe('other')
    expect((decoded as { polluted?: unknown }).polluted).toBeUndefined()
    const arg = (decoded['args'] as Array<Record<string, unknown>>)[0] as Record<string, unknown>
    expect(Object.getPrototypeOf(arg)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(arg, '__proto__')?.value).toEqual(payload)
    const deepest = ((arg['nested'] as Array<Record<string, unknown>>)[0] as { a: Record<string, unknown> }).a
    expect(Object.getPrototypeOf(deepest)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(deepest, '__proto__')?.value).toEqual(payload)
    expect(decoded).toEqual(input)
  })

  it('keeps __proto__ keys exact inside Map and Set payloads and with long string headers', () => {
    const input = JSON.parse('{"v":{"__proto__":{"polluted":true}}}') as { v: object }
    const decoded = encoder.decode(encoder.encode({ m: new Map([['k', input.v]]), s: new Set([input.v]) }))
    const fromMap = (decoded['m'] as Map<string, object>).get('k') as object
    expect(Object.getPrototypeOf(fromMap)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(fromMap, '__proto__')?.value).toEqual(payload)
    const fromSet = [...(decoded['s'] as Set<object>)][0] as object
    expect(Object.getOwnPropertyDescriptor(fromSet, '__proto__')?.value).toEqual(payload)

    // "__proto__" written with a str 8 header (as some encoders do) is recognised too.
    const body = bytes(0x81, 0xd9, 0x09, Buffer.from('__proto__'), 0x81, str('polluted'), 0xc3)
    const viaStr8 = encoder.decode(body)
    expect(Object.getPrototypeOf(viaStr8)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(viaStr8, '__proto__')?.value).toEqual(payload)
  })
})

describe('an undecodable payload on a queue', () => {
  it('is set aside by the broker while the worker carries on with the next message', async () => {
    const broker = new StubBroker({ encoder })
    const seen: unknown[] = []
    const echo = actor((value: unknown) => void seen.push(value), { broker, actorName: 'echo' })
    const valid = Buffer.from(echo.message(new Map([['ok', 1n]])).encode(encoder))
    broker.putRaw('default', valid.subarray(0, valid.length - 3))
    broker.putRaw('default', withValue(bytes(0xd4, 0x78, 0x00, 0x92, str('a'), str('g'))))
    await echo.send(new Map([['ok', 1n]]))
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    try {
      await broker.join('default')
      await worker.join()
    } finally {
      await worker.stop()
    }
    expect(seen).toEqual([new Map([['ok', 1n]])])
    expect(broker.rejected.map((r) => r.reason)).toEqual([
      expect.stringMatching(/not a valid MessagePack message: unexpected end of data/),
      expect.stringMatching(/unsupported extension type 120/),
    ])
  })
})
