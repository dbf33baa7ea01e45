/**
 * The three extension types tq adds (Map, Set, BigInt), registered with msgpackr.
 *
 * msgpackr keeps extensions in one process-wide table, so registering is global. To keep that
 * from changing anything for other msgpackr users in the process:
 * - encoding only ever sees the private marker classes below, which no other code creates;
 * - decoding through these handlers only works inside `MsgpackEncoder.decode`; anywhere else
 *   they fail the way msgpackr fails on an extension it does not know.
 *
 * A Map or Set payload is itself MessagePack. Decoding it from inside msgpackr's decoder would
 * either copy the whole source per collection (re-entrant decode) or desynchronise msgpackr's
 * native string cache (reading at an offset), so the handlers only keep the payload's bytes as
 * a `PendingCollection`, and `MsgpackEncoder` decodes those after msgpackr returns.
 */
import { addExtension, type Packr } from 'msgpackr'
import { MsgpackExtension } from './ext-types.ts'

/** A `Map`, flattened to `[key1, value1, …]` with every entry already prepared. */
export class MapMarker {
  readonly flat: unknown[]
  constructor(flat: unknown[]) {
    this.flat = flat
  }
}

/** A `Set`, as an array of prepared members. */
export class SetMarker {
  readonly items: unknown[]
  constructor(items: unknown[]) {
    this.items = items
  }
}

/** A `BigInt` (always written as an extension so it decodes as a `BigInt`, never a number). */
export class BigIntMarker {
  readonly value: bigint
  constructor(value: bigint) {
    this.value = value
  }
}

const PENDING: unique symbol = Symbol.for('@tq/encoder-msgpack/pending') as never

/**
 * A Map or Set extension read by msgpackr whose payload is still to be decoded. Recognised by a
 * registry symbol rather than by class, like the state below: msgpackr's table holds the
 * handlers of whichever copy of this package registered last.
 */
export class PendingCollection {
  readonly type: typeof MsgpackExtension.MAP | typeof MsgpackExtension.SET
  readonly payload: Uint8Array
  declare readonly [PENDING]: true
  constructor(type: typeof MsgpackExtension.MAP | typeof MsgpackExtension.SET, payload: Uint8Array) {
    this.type = type
    this.payload = payload
    Object.defineProperty(this, PENDING, { value: true })
  }

  static is(value: object): value is PendingCollection {
    return (value as Record<symbol, unknown>)[PENDING] === true
  }
}

/** Shared by every copy of this package in the process (see `PendingCollection`). */
interface SharedState {
  activeDecodes: number
}

const SHARED: unique symbol = Symbol.for('@tq/encoder-msgpack/state') as never
let state: SharedState | undefined

function shared(): SharedState {
  if (state === undefined) {
    const holder = globalThis as unknown as Record<symbol, SharedState | undefined>
    state = holder[SHARED] ??= { activeDecodes: 0 }
  }
  return state
}

/** Enable the tq extension handlers (pair every call with `leaveDecode` in a `finally`). */
export function enterDecode(): void {
  shared().activeDecodes++
}

export function leaveDecode(): void {
  shared().activeDecodes--
}

function unknownExtension(type: number): never {
  throw new Error(`Unknown extension type ${type}`)
}

/** Big-endian two's complement in as few bytes as hold the value and its sign. */
export function bigintToBytes(value: bigint): Uint8Array {
  const negative = value < 0n
  let hex = (negative ? -value - 1n : value).toString(16)
  if (hex.length % 2 === 1) hex = '0' + hex
  if (parseInt(hex.charAt(0), 16) >= 8) hex = '00' + hex
  const bytes = Buffer.from(hex, 'hex')
  if (negative) for (let i = 0; i < bytes.length; i++) bytes[i] = ~(bytes[i] as number) & 0xff
  return bytes
}

export function bytesToBigint(bytes: Uint8Array): bigint {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
  return BigInt.asIntN(bytes.byteLength * 8, BigInt('0x' + hex))
}

let registered = false

/** Register the handlers once per process (the first `MsgpackEncoder` does it). */
export function registerExtensions(): void {
  if (registered) return
  registered = true
  addExtension({
    Class: MapMarker,
    type: MsgpackExtension.MAP,
    pack(this: Packr, marker: MapMarker) {
      return this.pack(marker.flat)
    },
    unpack(payload: Uint8Array) {
      if (shared().activeDecodes === 0) unknownExtension(MsgpackExtension.MAP)
      return new PendingCollection(MsgpackExtension.MAP, payload)
    },
  })
  addExtension({
    Class: SetMarker,
    type: MsgpackExtension.SET,
    pack(this: Packr, marker: SetMarker) {
      return this.pack(marker.items)
    },
    unpack(payload: Uint8Array) {
      if (shared().activeDecodes === 0) unknownExtension(MsgpackExtension.SET)
      return new PendingCollection(MsgpackExtension.SET, payload)
    },
  })
  addExtension({
    Class: BigIntMarker,
    type: MsgpackExtension.BIGINT,
    pack(marker: BigIntMarker) {
      return bigintToBytes(marker.value)
    },
    unpack(payload: Uint8Array) {
      if (shared().activeDecodes === 0) unknownExtension(MsgpackExtension.BIGINT)
      return bytesToBigint(payload)
    },
  })
}
