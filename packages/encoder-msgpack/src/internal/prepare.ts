/**
 * The encode-side pass: turns a value into what msgpackr should write.
 *
 * msgpackr on its own writes a `Map` as a plain MessagePack map (it would decode as an object),
 * a `Set` as a bare array, a `BigInt` as an int64 (it would decode as a number), and some class
 * instances as arrays. This pass wraps `Map`, `Set` and `BigInt` in the marker classes that
 * carry tq's extension types and treats every other object the way `JSON.stringify` does.
 * Containers are copied only when something inside them changes, so plain data passes through
 * without allocating.
 */
import { InvalidArgumentError } from '@tq/core'
import { BigIntMarker, MapMarker, SetMarker } from './extensions.ts'

/** What the pass noticed on the way. */
export interface PrepareState {
  /** An integer beyond 32 bits was seen (msgpackr writes those as float64; see `widenIntegers`). */
  wideIntegers: boolean
}

export function prepare(value: unknown, state: PrepareState): unknown {
  switch (typeof value) {
    case 'object':
      return value === null ? null : prepareObject(value, state)
    case 'number':
      if ((value > 0xffffffff || value < -0x80000000) && Number.isSafeInteger(value)) state.wideIntegers = true
      return value
    case 'bigint':
      return new BigIntMarker(value)
    case 'function':
      throw new InvalidArgumentError(
        `Message cannot be encoded as MessagePack: a function (${value.name || 'anonymous'}) is not data`,
      )
    case 'symbol':
      throw new InvalidArgumentError(`Message cannot be encoded as MessagePack: ${String(value)} is not data`)
    default:
      // string, boolean, undefined
      return value
  }
}

function prepareObject(value: object, state: PrepareState): unknown {
  const proto: unknown = Object.getPrototypeOf(value)
  if (proto === Object.prototype) {
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return viaToJSON(value, state)
    return prepareRecord(value as Record<string, unknown>, false, state)
  }
  if (Array.isArray(value)) return prepareArray(value, state)
  if (value instanceof Date || value instanceof Uint8Array) return value
  if (value instanceof Map) {
    const flat: unknown[] = []
    for (const [k, v] of value as Map<unknown, unknown>) flat.push(prepare(k, state), prepare(v, state))
    return new MapMarker(flat)
  }
  if (value instanceof Set) {
    const items: unknown[] = []
    for (const item of value as Set<unknown>) items.push(prepare(item, state))
    return new SetMarker(items)
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return viaToJSON(value, state)
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || isSharedArrayBuffer(value)) {
    throw new InvalidArgumentError(
      `Message cannot be encoded as MessagePack: ${value.constructor.name} is not supported; pass a Uint8Array (or Buffer) view of its bytes`,
    )
  }
  // Class instances (Error, RegExp, user classes) become plain objects of their own
  // enumerable properties, as with JSON; msgpackr would otherwise write some of them as arrays.
  return prepareRecord(value as Record<string, unknown>, proto !== null, state)
}

function viaToJSON(value: object, state: PrepareState): unknown {
  return prepare((value as { toJSON: (key: string) => unknown }).toJSON(''), state)
}

function isSharedArrayBuffer(value: object): boolean {
  return typeof SharedArrayBuffer === 'function' && value instanceof SharedArrayBuffer
}

function prepareArray(array: unknown[], state: PrepareState): unknown[] {
  let out: unknown[] | undefined
  for (let i = 0; i < array.length; i++) {
    const before = array[i]
    const after = prepare(before, state)
    if (out === undefined) {
      if (after === before) continue
      out = array.slice(0, i)
    }
    out.push(after)
  }
  return out ?? array
}

function prepareRecord(
  record: Record<string, unknown>,
  alwaysCopy: boolean,
  state: PrepareState,
): Record<string, unknown> {
  const keys = Object.keys(record)
  let out: Record<string, unknown> | undefined = alwaysCopy ? {} : undefined
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string
    const before = record[key]
    const after = prepare(before, state)
    if (out === undefined) {
      if (after === before) continue
      out = {}
      for (let j = 0; j < i; j++) setOwn(out, keys[j] as string, record[keys[j] as string])
    }
    setOwn(out, key, after)
  }
  return out ?? record
}

/** Define `key` as an own data property (plain assignment of `__proto__` would set the prototype). */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true })
  else target[key] = value
}
