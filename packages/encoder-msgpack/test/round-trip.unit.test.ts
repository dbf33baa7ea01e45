import { InvalidArgumentError, JSONEncoder, Message } from '@tq/core'
import { Unpackr, unpack } from 'msgpackr'
import { describe, expect, it, vi } from 'vitest'
import { MsgpackEncoder, MsgpackExtension } from '../src/index.ts'

const encoder = new MsgpackEncoder()
const roundTrip = <T>(value: T): T => (encoder.decode(encoder.encode({ value })) as { value: T }).value

function wire(args: unknown[], kwargs: Record<string, unknown> = {}, options: Record<string, unknown> = {}) {
  return new Message({
    queueName: 'default',
    actorName: 'echo',
    args,
    kwargs,
    options,
    messageId: '5f1d2c3b-8a4e-4f6a-9b0c-1d2e3f405162',
    messageTimestamp: 1_700_000_000_123,
  })
}

describe('MsgpackEncoder round trips', () => {
  it('keeps a Date, to the millisecond, before and after 1970 and beyond 2106', () => {
    for (const date of [
      new Date(1_700_000_000_123),
      new Date(1_700_000_000_000),
      new Date(0),
      new Date(-1_234_567),
      new Date('1900-02-03T04:05:06.789Z'),
      new Date('2200-01-01T00:00:00.001Z'),
    ]) {
      const back = roundTrip(date)
      expect(back).toBeInstanceOf(Date)
      expect(back.getTime()).toBe(date.getTime())
    }
    expect(Number.isNaN(roundTrip(new Date('invalid')).getTime())).toBe(true)
  })

  it('keeps a Map with any keys and values, distinct from a plain object', () => {
    const map = new Map<unknown, unknown>([
      ['a', 1],
      [2, 'two'],
      [3n, new Date(5)],
      [null, undefined],
      ['__proto__', { x: 1 }],
    ])
    const back = roundTrip({ map, object: { a: 1 } })
    expect(back.map).toBeInstanceOf(Map)
    expect([...back.map.entries()]).toEqual([...map.entries()])
    expect(back.object).not.toBeInstanceOf(Map)
    expect(back.object).toEqual({ a: 1 })
    expect(roundTrip(new Map())).toEqual(new Map())
  })

  it('keeps a Set, in insertion order', () => {
    const set = new Set<unknown>(['b', 'a', 1, 2n, null])
    const back = roundTrip(set)
    expect(back).toBeInstanceOf(Set)
    expect([...back]).toEqual([...set])
    expect(roundTrip(new Set())).toEqual(new Set())
  })

  it('keeps a BigInt of any size as a BigInt, and numbers as numbers', () => {
    const bigints = [
      0n,
      1n,
      -1n,
      127n,
      128n,
      -128n,
      -129n,
      255n,
      256n,
      2n ** 53n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 64n,
      -(2n ** 64n) - 12345n,
      2n ** 521n - 1n,
    ]
    for (const b of bigints) {
      const back = roundTrip(b)
      expect(typeof back).toBe('bigint')
      expect(back).toBe(b)
    }
    const numbers = [
      0,
      1,
      -1,
      127,
      128,
      -33,
      2 ** 31,
      2 ** 32,
      2 ** 32 + 1,
      -(2 ** 31) - 1,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      1.5,
      -0.25,
      2 ** 60,
      1e300,
    ]
    for (const n of numbers) {
      const back = roundTrip(n)
      expect(typeof back).toBe('number')
      expect(back).toBe(n)
    }
    expect(roundTrip(Number.NaN)).toBeNaN()
    expect(roundTrip(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY)
    expect(roundTrip(Number.NEGATIVE_INFINITY)).toBe(Number.NEGATIVE_INFINITY)
  })

  it('keeps Uint8Array and Buffer bytes (decoded as Buffers, which are Uint8Arrays)', () => {
    const bytes = new Uint8Array([0, 1, 2, 254, 255])
    const buffer = Buffer.from('héllo wörld', 'utf8')
    const big = Buffer.alloc(70_000, 7)
    const back = roundTrip({ bytes, buffer, big, empty: new Uint8Array(0), view: bytes.subarray(1, 3) })
    expect(back.bytes).toBeInstanceOf(Uint8Array)
    expect(Buffer.isBuffer(back.buffer)).toBe(true)
    expect([...back.bytes]).toEqual([0, 1, 2, 254, 255])
    expect(back.buffer.toString('utf8')).toBe('héllo wörld')
    expect(back.big.equals(big)).toBe(true)
    expect(back.empty.length).toBe(0)
    expect([...back.view]).toEqual([1, 2])
  })

  it('copies decoded bytes by default, and views the payload with copyBuffers: false', () => {
    const payload = Buffer.from(encoder.encode({ b: Buffer.from([1, 2, 3]) }))
    const copied = encoder.decode(payload) as { b: Buffer }
    const viewed = new MsgpackEncoder({ copyBuffers: false }).decode(payload) as { b: Buffer }
    payload.fill(0)
    expect([...copied.b]).toEqual([1, 2, 3])
    expect([...viewed.b]).toEqual([0, 0, 0])
  })

  it('keeps undefined inside arrays and objects (and as nil with undefinedAsNil)', () => {
    const value = { list: [1, undefined, 3, undefined], nested: { gone: undefined, kept: 1 } }
    const back = roundTrip(value)
    expect(back.list).toHaveLength(4)
    expect(back.list[1]).toBeUndefined()
    expect(1 in back.list).toBe(true)
    expect('gone' in back.nested).toBe(true)
    expect(back).toEqual(value)

    const nil = new MsgpackEncoder({ undefinedAsNil: true })
    expect(nil.decode(nil.encode({ value }))).toEqual({
      value: { list: [1, null, 3, null], nested: { gone: null, kept: 1 } },
    })
  })

  it('keeps deeply mixed nested structures', () => {
    const value = {
      users: new Map<string, unknown>([
        ['ada', { born: new Date('1815-12-10T00:00:00Z'), tags: new Set(['math', 'engines']), id: 2n ** 70n }],
        ['bob', { born: null, tags: new Set(), id: -5n, blob: Buffer.from([9]) }],
      ]),
      matrix: [
        [1, [2, [3, [4, new Map([[new Set([1]), [undefined]]])]]]],
        { deep: { deeper: { deepest: [new Date(1), 'é', '🙂'] } } },
      ],
      text: 'ünïcødé \u2028 \u0000 🙂',
    }
    const back = roundTrip(value)
    expect(back).toEqual(value)
    const ada = back.users.get('ada') as { tags: Set<string>; id: bigint }
    expect(ada.tags).toBeInstanceOf(Set)
    expect(ada.id).toBe(2n ** 70n)
  })

  it('round trips large arrays', () => {
    const numbers = Array.from({ length: 100_000 }, (_, i) => i * 3 - 50_000)
    const records = Array.from({ length: 10_000 }, (_, i) => ({ i, name: `item-${i}`, at: new Date(i) }))
    const back = roundTrip({ numbers, records })
    expect(back.numbers).toEqual(numbers)
    expect(back.records).toHaveLength(10_000)
    expect(back.records[9_999]).toEqual({ i: 9_999, name: 'item-9999', at: new Date(9_999) })
  })

  it('writes other objects the way JSON does (toJSON, else own enumerable properties)', () => {
    class Point {
      x: number
      y: number
      constructor(x: number, y: number) {
        this.x = x
        this.y = y
      }
      get sum(): number {
        return this.x + this.y
      }
    }
    const withToJSON = { toJSON: () => ({ replaced: true }) }
    const error = Object.assign(new Error('boom'), { code: 'E1' })
    const back = roundTrip({
      point: new Point(1, 2),
      withToJSON,
      error,
      regexp: /a/g,
      nullProto: Object.assign(Object.create(null) as object, { a: 1 }),
    })
    expect(back).toEqual({
      point: { x: 1, y: 2 },
      withToJSON: { replaced: true },
      error: { code: 'E1' },
      regexp: {},
      nullProto: { a: 1 },
    })
    expect(Object.getPrototypeOf(back.point)).toBe(Object.prototype)
  })

  it('refuses functions, symbols, other binary types and cycles with InvalidArgumentError', () => {
    const cyclic: Record<string, unknown> = {}
    cyclic['self'] = cyclic
    for (const bad of [
      () => 1,
      Symbol('s'),
      new Float64Array(2),
      new ArrayBuffer(4),
      new DataView(new ArrayBuffer(2)),
      cyclic,
    ]) {
      expect(() => encoder.encode({ bad })).toThrow(InvalidArgumentError)
    }
  })

  it('does not change the value it encodes', () => {
    const map = new Map([['k', 1n]])
    const value = { list: [map, 5_000_000_000], nested: { n: 7n } }
    encoder.encode(value)
    expect(value.list[0]).toBe(map)
    expect(value.list[1]).toBe(5_000_000_000)
    expect(value.nested.n).toBe(7n)
  })
})

describe('MsgpackEncoder wire format', () => {
  const int64 = (token: 0xcf | 0xd3, value: bigint): Buffer => {
    const body = Buffer.alloc(9)
    body[0] = token
    if (token === 0xcf) body.writeBigUInt64BE(value, 1)
    else body.writeBigInt64BE(value, 1)
    return body
  }
  const mapOf = (value: Buffer): Buffer => Buffer.concat([Buffer.from([0x81, 0xa1, 0x76]), value])

  it('reads 64-bit integers from other encoders as numbers up to 2^53 and BigInts beyond', () => {
    const cases: Array<[0xcf | 0xd3, bigint, number | bigint]> = [
      [0xd3, 5n, 5],
      [0xd3, -5n, -5],
      [0xcf, 1_700_000_000_000n, 1_700_000_000_000],
      [0xd3, 2n ** 53n - 1n, Number.MAX_SAFE_INTEGER],
      [0xd3, -(2n ** 53n) + 1n, Number.MIN_SAFE_INTEGER],
      [0xcf, 2n ** 53n + 1n, 2n ** 53n + 1n],
      [0xd3, -(2n ** 53n) - 1n, -(2n ** 53n) - 1n],
      [0xcf, 2n ** 64n - 1n, 2n ** 64n - 1n],
      [0xd3, -(2n ** 63n), -(2n ** 63n)],
    ]
    for (const [token, value, expected] of cases) {
      expect(encoder.decode(mapOf(int64(token, value)))).toEqual({ v: expected })
    }
    // One big value does not turn the small ones in the same payload into BigInts.
    const mixed = Buffer.concat([
      Buffer.from([0x82, 0xa1, 0x61]),
      int64(0xd3, 7n),
      Buffer.from([0xa1, 0x62]),
      int64(0xcf, 2n ** 60n),
    ])
    expect(encoder.decode(mixed)).toEqual({ a: 7, b: 2n ** 60n })
  })

  it('writes integers beyond 32 bits as int64 everywhere, leaving strings and bytes alone', () => {
    const wide = 2 ** 40 + 3
    const asFloat = Buffer.alloc(9)
    asFloat[0] = 0xcb
    asFloat.writeDoubleBE(wide, 1)
    const asInt = int64(0xd3, BigInt(wide))
    const value = {
      top: wide,
      negative: -wide,
      float: 2 ** 40 + 0.5,
      set: new Set([wide]),
      map: new Map([[wide, [wide]]]),
      bytes: Buffer.concat([asFloat, asFloat]),
      text: 'ˇ˘˙˚˛˜˝'.repeat(8), // UTF-8 lead byte 0xcb, the float64 token
      big: 2n ** 100n,
      date: new Date(2 ** 41),
    }
    const body = Buffer.from(encoder.encode(value))
    expect(encoder.decode(body)).toEqual(value)
    // `bytes` holds two copies of the float64 encoding; nothing else may.
    let floats = 0
    for (let at = body.indexOf(asFloat); at >= 0; at = body.indexOf(asFloat, at + 1)) floats++
    expect(floats).toBe(2)
    // top, and the members of the Set and the Map (key and array element).
    let ints = 0
    for (let at = body.indexOf(asInt); at >= 0; at = body.indexOf(asInt, at + 1)) ints++
    expect(ints).toBe(4)
  })

  it('decodes a message to the same wire dict as JSONEncoder, keys in Dramatiq order', () => {
    const message = wire([1, 'two', [3]], { k: 'v' }, { maxRetries: 3, pipeTarget: wire([9]).asDict() })
    const viaMsgpack = encoder.decode(message.encode(encoder))
    const viaJson = new JSONEncoder().decode(message.encode(new JSONEncoder()))
    expect(viaMsgpack).toEqual(viaJson)
    expect(Object.keys(viaMsgpack)).toEqual([
      'queue_name',
      'actor_name',
      'args',
      'kwargs',
      'options',
      'message_id',
      'message_timestamp',
    ])
    expect(Object.keys(viaMsgpack['options'] as object)).toEqual(['max_retries', 'pipe_target'])
    const back = Message.decode(message.encode(encoder), encoder)
    expect(back.asDict()).toEqual(message.asDict())
  })

  it('writes plain MessagePack a generic decoder reads: a map, int timestamps, no records', () => {
    const bytes = wire([1], {}, { eta: 1_700_000_000_999 }).encode(encoder)
    expect(bytes[0]).toBe(0x87) // fixmap of 7 entries
    // A standard decoder with no tq extension types reads it entirely.
    const plain = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' }).unpack(
      bytes,
    ) as Record<string, unknown>
    expect(plain).toEqual({
      queue_name: 'default',
      actor_name: 'echo',
      args: [1],
      kwargs: {},
      options: { eta: 1_700_000_000_999 },
      message_id: '5f1d2c3b-8a4e-4f6a-9b0c-1d2e3f405162',
      message_timestamp: 1_700_000_000_123,
    })
    // The timestamp is an int64 (0xd3), not a float64 (0xcb), so Python reads an int.
    const at = Buffer.from(bytes).indexOf(Buffer.from('message_timestamp'))
    expect(bytes[at + 'message_timestamp'.length]).toBe(0xd3)
  })

  it('makes every payload decodable on its own (no shared structures between messages)', () => {
    const payloads = Array.from({ length: 50 }, (_, i) =>
      encoder.encode({ same: 'shape', i, nested: { a: i, b: [i] } }),
    )
    for (const [i, bytes] of payloads.entries()) {
      // A brand-new decoder, and msgpackr's default stateless one.
      expect(new MsgpackEncoder().decode(bytes)).toEqual({ same: 'shape', i, nested: { a: i, b: [i] } })
      expect(unpack(bytes)).toEqual({ same: 'shape', i, nested: { a: i, b: [i] } })
    }
  })

  it('writes the tq extension types with standard ext framing (documented codes)', () => {
    const bytes = Buffer.from(encoder.encode({ s: new Set([1]), m: new Map([[1, 2]]), b: -2n, u: undefined }))
    // fixext 1 / fixext 2 / fixext 4: header, type, payload; nothing trails the payload.
    expect(bytes.includes(Buffer.from([0xd5, MsgpackExtension.SET, 0x91, 0x01]))).toBe(true)
    expect(bytes.includes(Buffer.from([0xd6, MsgpackExtension.MAP, 0x92, 0x01, 0x02]))).toBe(false) // 3-byte payload → ext 8
    expect(bytes.includes(Buffer.from([0xc7, 0x03, MsgpackExtension.MAP, 0x92, 0x01, 0x02]))).toBe(true)
    expect(bytes.includes(Buffer.from([0xd4, MsgpackExtension.BIGINT, 0xfe]))).toBe(true)
    expect(bytes.includes(Buffer.from([0xd4, MsgpackExtension.UNDEFINED, 0x00]))).toBe(true)
  })
})

describe('two copies of @tq/encoder-msgpack in one process', () => {
  it('share msgpackr’s extension table without breaking each other', async () => {
    const first = new MsgpackEncoder()
    // A second instance of the module graph (msgpackr, in node_modules, stays shared), as a
    // second installed copy of the package would be.
    vi.resetModules()
    const path = '../src/index.ts'
    const copy = (await import(path)) as { MsgpackEncoder: typeof MsgpackEncoder }
    expect(copy.MsgpackEncoder).not.toBe(MsgpackEncoder)
    const second = new copy.MsgpackEncoder() // registers its handlers last
    const value = { m: new Map([[1, new Set([2n])]]), n: -3n }
    for (const [from, to] of [
      [first, second],
      [second, first],
      [first, first],
      [second, second],
    ] as const) {
      expect(to.decode(from.encode(value))).toEqual(value)
    }
  })
})
