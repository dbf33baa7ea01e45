import { DecodeError, InvalidArgumentError, type Encoder } from '@tq/core'
import { Packr, Unpackr, type Options } from 'msgpackr'
import { MsgpackExtension } from './internal/ext-types.ts'
import { PendingCollection, enterDecode, leaveDecode, registerExtensions } from './internal/extensions.ts'
import { prepare, setOwn, type PrepareState } from './internal/prepare.ts'
import { HAS_BIG_INT64, HAS_COLLECTIONS, HAS_PROTO_KEY, scan } from './internal/scan.ts'
import { widenIntegers } from './internal/widen.ts'

export interface MsgpackEncoderOptions {
  /**
   * Decoded binary values (`Buffer`s) are copies of their bytes. With `false` they are views
   * into the message payload: a little faster, but each one keeps the whole payload in memory.
   * Default `true`.
   */
  copyBuffers?: boolean
  /**
   * Write `undefined` as nil, so it decodes as `null` (what `JSON` and most MessagePack
   * libraries expect) instead of as MessagePack extension 0. Default `false`.
   */
  undefinedAsNil?: boolean
}

// With 'auto', msgpackr reads an int64/uint64 as a number when it fits in 53 bits and as a
// BigInt otherwise (its typings predate the value). 'number' is faster and exact below 2^53,
// so it is used unless the scan saw a larger one.
const INT64_AUTO = 'auto' as unknown as NonNullable<Options['int64AsType']>

/**
 * A MessagePack `Encoder` for tq messages, built on msgpackr.
 *
 * The payload is Dramatiq's wire dict as a plain MessagePack map (the same keys, in the same
 * order, as with `JSONEncoder`), so any MessagePack library can read it. Beyond JSON it keeps
 * `Date`, `Map`, `Set`, `BigInt`, `Uint8Array`/`Buffer`, `undefined`, `NaN`/`Infinity` and
 * integers up to 64 bits exact. msgpackr's records and structured cloning are off: every
 * payload decodes on its own.
 *
 * Decoding accepts only standard MessagePack plus the extension types in `MsgpackExtension`
 * (checked before any value is built), never runs code from the payload, keeps `__proto__`
 * and `constructor` keys as plain data, and throws `DecodeError` for anything else: truncated
 * or trailing bytes, unknown extensions, or a top-level value that is not a map.
 */
export class MsgpackEncoder implements Encoder {
  readonly #packr: Packr
  /**
   * Indexed by scan flags: with `HAS_PROTO_KEY`, maps decode as `Map`s that `finish` turns into
   * objects, so `__proto__` keys stay exact (msgpackr renames them); otherwise msgpackr builds
   * the objects itself. With `HAS_BIG_INT64`, int64s beyond 2^53 decode as BigInts.
   */
  readonly #unpackrs: readonly Unpackr[]

  constructor(options: MsgpackEncoderOptions = {}) {
    registerExtensions()
    const copyBuffers = options.copyBuffers ?? true
    const common = { useRecords: false, structuredClone: false, moreTypes: false, copyBuffers } satisfies Options
    this.#packr = new Packr({
      ...common,
      mapsAsObjects: true,
      variableMapSize: true,
      useToJSON: false,
      encodeUndefinedAsNil: options.undefinedAsNil ?? false,
      largeBigIntToFloat: false,
      largeBigIntToString: false,
      useBigIntExtension: false,
    })
    const unpackrs: Unpackr[] = []
    for (let flags = 0; flags <= (HAS_PROTO_KEY | HAS_BIG_INT64); flags++) {
      unpackrs[flags] = new Unpackr({
        ...common,
        mapsAsObjects: (flags & HAS_PROTO_KEY) === 0,
        int64AsType: (flags & HAS_BIG_INT64) === 0 ? 'number' : INT64_AUTO,
      })
    }
    this.#unpackrs = unpackrs
  }

  encode(data: Record<string, unknown>): Uint8Array {
    const state: PrepareState = { wideIntegers: false }
    let prepared: unknown
    try {
      prepared = prepare(data, state)
    } catch (error) {
      if (error instanceof InvalidArgumentError) throw error
      throw new InvalidArgumentError(
        `Message cannot be encoded as MessagePack (${describe(error)}); is it circular or nested too deeply?`,
        { cause: error },
      )
    }
    let bytes: Uint8Array
    try {
      bytes = this.#packr.pack(prepared)
    } catch (error) {
      throw new InvalidArgumentError(`Message cannot be encoded as MessagePack (${describe(error)})`, { cause: error })
    }
    // Integers beyond 32 bits travel as int64 (a Python peer reads an int, not a float).
    if (state.wideIntegers) widenIntegers(bytes)
    return bytes
  }

  decode(bytes: Uint8Array): Record<string, unknown> {
    let flags: number
    try {
      flags = scan(bytes)
    } catch (error) {
      throw new DecodeError(`Message body is not a valid MessagePack message: ${describe(error)}`, bytes, error)
    }
    // A fresh Buffer view: msgpackr caches a DataView on its input, and reads Buffers fastest.
    const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const exact = (flags & HAS_PROTO_KEY) !== 0
    const unpackr = this.#unpackrs[flags & (HAS_PROTO_KEY | HAS_BIG_INT64)] as Unpackr
    let value: unknown
    enterDecode()
    try {
      value = unpackr.unpack(source)
      if ((flags & (HAS_COLLECTIONS | HAS_PROTO_KEY)) !== 0) value = finish(value, unpackr, exact)
    } catch (error) {
      throw new DecodeError(`Message body could not be decoded as MessagePack: ${describe(error)}`, bytes, error)
    } finally {
      leaveDecode()
    }
    if (!isRecord(value)) throw new DecodeError('Message body is not a MessagePack map', bytes)
    return value
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype
}

/**
 * Decode the pending Map/Set payloads and, on the exact path, turn decoded maps into objects.
 * Every container here was just built by the decoder, so it is updated in place.
 */
function finish(value: unknown, unpackr: Unpackr, exact: boolean): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = finish(value[i], unpackr, exact)
    return value
  }
  if (PendingCollection.is(value)) {
    // The scan proved the payload is exactly one array (of even length for a Map).
    const items = unpackr.unpack(value.payload) as unknown[]
    for (let i = 0; i < items.length; i++) items[i] = finish(items[i], unpackr, exact)
    if (value.type === MsgpackExtension.SET) return new Set(items)
    const map = new Map<unknown, unknown>()
    for (let i = 0; i < items.length; i += 2) map.set(items[i], items[i + 1])
    return map
  }
  if (exact && value instanceof Map) {
    const record: Record<string, unknown> = {}
    for (const [key, item] of value as Map<unknown, unknown>)
      setOwn(record, keyString(key), finish(item, unpackr, exact))
    return record
  }
  if (value instanceof Date || value instanceof Uint8Array) return value
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) {
    const item = record[key]
    if (typeof item === 'object' && item !== null) record[key] = finish(item, unpackr, exact)
  }
  return record
}

/** A map key as an object key, the way msgpackr names non-string keys on the fast path. */
function keyString(key: unknown): string {
  switch (typeof key) {
    case 'string':
      return key
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(key)
    default:
      if (key === null) return 'null'
      // The scan admits only strings, numbers, booleans and nil as map keys.
      throw new DecodeError(`Map key of type ${typeof key} cannot be an object key`, key)
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
