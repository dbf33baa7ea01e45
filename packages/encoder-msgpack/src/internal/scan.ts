/**
 * A validating pass over MessagePack bytes that allocates nothing and runs no code.
 *
 * msgpackr's decoder understands more than a message may contain: its record extension (which
 * compiles readers with `new Function`), structured-clone references, Error and RegExp
 * extensions, and any extension registered by other code in the process. Those live in one
 * process-wide table that cannot be switched off per decoder, so every payload goes through
 * this scan first: it accepts exactly the standard MessagePack types plus the extension types
 * in `MsgpackExtension`, and proves the bytes hold one complete top-level map with nothing
 * after it. Only then does msgpackr build values.
 *
 * The scan is iterative (an explicit stack), so hostile nesting cannot overflow the call stack
 * here, and every step consumes at least one byte, so it ends within `bytes.length` steps.
 */
import { MsgpackExtension } from './ext-types.ts'

/** Set when the payload holds a `Map` or `Set` extension (their contents are decoded afterwards). */
export const HAS_COLLECTIONS = 1
/** Set when some map has the key `"__proto__"` (decoded on the slow, exact-keys path). */
export const HAS_PROTO_KEY = 2
/** Set when some int64/uint64 is beyond 2^53 (read as a BigInt rather than a number). */
export const HAS_BIG_INT64 = 4

export class ScanError extends Error {
  readonly offset: number
  constructor(reason: string, offset: number) {
    super(`${reason} at byte ${offset}`)
    this.name = 'ScanError'
    this.offset = offset
  }
}

// Frame kinds.
const ARRAY = 0
const MAP = 1
/** The single value inside a Map extension's payload: an array of even length. */
const MAP_PAYLOAD = 2
/** The single value inside a Set extension's payload: an array. */
const SET_PAYLOAD = 3

const TIMESTAMP = MsgpackExtension.TIMESTAMP & 0xff
const PROTO = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f] // "__proto__"

function isProto(bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < 9; i++) if (bytes[at + i] !== PROTO[i]) return false
  return true
}

/**
 * Check that `bytes` is one MessagePack map built only from allowed types. Returns a bit set of
 * `HAS_COLLECTIONS`, `HAS_PROTO_KEY` and `HAS_BIG_INT64`; throws `ScanError` naming the first problem.
 */
export function scan(bytes: Uint8Array): number {
  const end = bytes.length
  if (end === 0) throw new ScanError('empty payload', 0)
  const first = bytes[0] as number
  if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf))
    throw new ScanError('top-level value is not a map', 0)

  let flags = 0
  let pos = 0
  // The current frame; enclosing frames are saved on `stack` as (remaining, kind, payloadEnd).
  let remaining = 1
  let kind = ARRAY
  let payloadEnd = -1
  const stack: number[] = []

  for (;;) {
    while (remaining === 0) {
      if (payloadEnd >= 0 && pos !== payloadEnd) throw new ScanError('extension payload has extra bytes', pos)
      if (stack.length === 0) {
        if (pos !== end) throw new ScanError('extra bytes after the message', pos)
        return flags
      }
      payloadEnd = stack.pop() as number
      kind = stack.pop() as number
      remaining = stack.pop() as number
    }
    if (pos >= end) throw new ScanError('unexpected end of data', pos)

    const start = pos
    const isKey = kind === MAP && (remaining & 1) === 0
    const inPayload = kind >= MAP_PAYLOAD
    remaining--
    const token = bytes[pos++] as number

    // One of these is set when the token opens an array or a map of `count` values.
    let count = -1
    let opens = ARRAY
    // Bytes of payload after the header (strings, binaries, numbers).
    let skip = 0

    if (token <= 0x7f || token >= 0xe0) {
      // positive / negative fixint
    } else if (token <= 0x8f) {
      count = (token & 0x0f) * 2
      opens = MAP
    } else if (token <= 0x9f) {
      count = token & 0x0f
    } else if (token <= 0xbf) {
      skip = token & 0x1f
      if (isKey && skip === 9 && pos + 9 <= end && isProto(bytes, pos)) flags |= HAS_PROTO_KEY
    } else {
      switch (token) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break
        case 0xc1:
          throw new ScanError('reserved byte 0xc1', start)
        case 0xc4: // bin 8
        case 0xc5: // bin 16
        case 0xc6: {
          // bin 32
          if (isKey) throw new ScanError('binary map key', start)
          const width = token === 0xc4 ? 1 : token === 0xc5 ? 2 : 4
          skip = readLength(bytes, pos, width)
          pos += width
          break
        }
        case 0xc7: // ext 8
        case 0xc8: // ext 16
        case 0xc9: {
          // ext 32
          const width = token === 0xc7 ? 1 : token === 0xc8 ? 2 : 4
          const length = readLength(bytes, pos, width)
          pos += width
          const opened = extension(bytes, pos, length, start, isKey)
          if (opened >= 0) {
            if (inPayload) throw new ScanError('extension payload does not hold an array', start)
            flags |= HAS_COLLECTIONS
            stack.push(remaining, kind, payloadEnd)
            remaining = 1
            kind = opened
            payloadEnd = pos + 1 + length
            pos += 1
            continue
          }
          skip = 1 + length
          break
        }
        case 0xca: // float 32
          skip = 4
          break
        case 0xcb: // float 64
          skip = 8
          break
        case 0xcc: // uint 8
        case 0xd0: // int 8
          skip = 1
          break
        case 0xcd: // uint 16
        case 0xd1: // int 16
          skip = 2
          break
        case 0xce: // uint 32
        case 0xd2: // int 32
          skip = 4
          break
        case 0xcf: // uint 64
        case 0xd3: {
          // int 64
          skip = 8
          if (pos + 8 <= end) {
            const high = readLength(bytes, pos, 4)
            // Beyond what a number holds exactly: |value| >= 2^53.
            if (token === 0xcf ? high > 0x1fffff : high > 0x1fffff && high < 0xffe00000) flags |= HAS_BIG_INT64
          }
          break
        }
        case 0xd4: // fixext 1
        case 0xd5: // fixext 2
        case 0xd6: // fixext 4
        case 0xd7: // fixext 8
        case 0xd8: {
          // fixext 16
          const length = 1 << (token - 0xd4)
          const opened = extension(bytes, pos, length, start, isKey)
          if (opened >= 0) {
            if (inPayload) throw new ScanError('extension payload does not hold an array', start)
            flags |= HAS_COLLECTIONS
            stack.push(remaining, kind, payloadEnd)
            remaining = 1
            kind = opened
            payloadEnd = pos + 1 + length
            pos += 1
            continue
          }
          skip = 1 + length
          break
        }
        case 0xd9: // str 8
        case 0xda: // str 16
        case 0xdb: {
          // str 32
          const width = token === 0xd9 ? 1 : token === 0xda ? 2 : 4
          skip = readLength(bytes, pos, width)
          pos += width
          if (isKey && skip === 9 && pos + 9 <= end && isProto(bytes, pos)) flags |= HAS_PROTO_KEY
          break
        }
        case 0xdc: // array 16
        case 0xdd: {
          // array 32
          const width = token === 0xdc ? 2 : 4
          count = readLength(bytes, pos, width)
          pos += width
          break
        }
        case 0xde: // map 16
        case 0xdf: {
          // map 32
          const width = token === 0xde ? 2 : 4
          count = readLength(bytes, pos, width) * 2
          pos += width
          opens = MAP
          break
        }
        default:
          throw new ScanError(`unknown token 0x${token.toString(16)}`, start)
      }
    }

    if (inPayload && count < 0) throw new ScanError('extension payload does not hold an array', start)
    if (count >= 0) {
      if (isKey) throw new ScanError('map key is not a string or number', start)
      if (inPayload && opens !== ARRAY) throw new ScanError('extension payload does not hold an array', start)
      if (kind === MAP_PAYLOAD && count % 2 !== 0)
        throw new ScanError('Map extension holds an odd number of values', start)
      // Every value takes at least one byte, so a count beyond the remaining bytes is truncation.
      if (count > end - pos) throw new ScanError('unexpected end of data', pos)
      stack.push(remaining, kind, payloadEnd)
      remaining = count
      kind = opens
      payloadEnd = -1
      continue
    }
    if (skip > end - pos) throw new ScanError('unexpected end of data', end)
    pos += skip
  }
}

function readLength(bytes: Uint8Array, at: number, width: number): number {
  if (at + width > bytes.length) throw new ScanError('unexpected end of data', bytes.length)
  if (width === 1) return bytes[at] as number
  if (width === 2) return ((bytes[at] as number) << 8) | (bytes[at + 1] as number)
  return (
    (bytes[at] as number) * 0x1000000 +
    (((bytes[at + 1] as number) << 16) | ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number))
  )
}

/**
 * Validate an extension whose type byte is at `at` and whose payload (`length` bytes) follows.
 * Returns the frame kind to open for Map/Set payloads, or -1 when the payload is opaque.
 */
function extension(bytes: Uint8Array, at: number, length: number, start: number, isKey: boolean): number {
  if (length + 1 > bytes.length - at) throw new ScanError('unexpected end of data', bytes.length)
  const type = bytes[at] as number
  if (isKey) throw new ScanError(`extension type ${signed(type)} used as a map key`, start)
  switch (type) {
    case MsgpackExtension.UNDEFINED:
      return -1
    case TIMESTAMP:
      // 1 byte is how msgpackr writes an invalid Date; 4, 8 and 12 are the standard forms.
      if (length === 1 || length === 4 || length === 8 || length === 12) return -1
      throw new ScanError(`timestamp of ${length} bytes`, start)
    case MsgpackExtension.BIGINT:
      if (length === 0) throw new ScanError('empty BigInt extension', start)
      return -1
    case MsgpackExtension.MAP:
      return MAP_PAYLOAD
    case MsgpackExtension.SET:
      return SET_PAYLOAD
    default:
      throw new ScanError(`unsupported extension type ${signed(type)}`, start)
  }
}

const signed = (byte: number): number => (byte > 0x7f ? byte - 0x100 : byte)
