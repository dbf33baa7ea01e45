/**
 * msgpackr writes every number outside the 32-bit integer range as a float64, so a timestamp
 * in milliseconds would reach a Python peer as `1700000000000.0`. This pass walks bytes that
 * msgpackr just wrote and rewrites each float64 holding a safe integer as an int64 (both are
 * nine bytes, so it is done in place). Decoding reads such int64s back as numbers.
 *
 * The input is trusted (we wrote it), so the walk is linear and checks nothing. The payloads of
 * tq's Map and Set extensions are MessagePack themselves, so the walk steps into them; every
 * other extension and all string and binary payloads are skipped.
 */
import { MsgpackExtension } from './ext-types.ts'

const TWO_32 = 0x100000000

export function widenIntegers(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const end = bytes.length
  let pos = 0
  while (pos < end) {
    const token = bytes[pos] as number
    if (token <= 0x9f || token >= 0xe0) {
      // fixint, fixmap and fixarray headers
      pos += 1
      continue
    }
    if (token <= 0xbf) {
      pos += 1 + (token & 0x1f)
      continue
    }
    switch (token) {
      case 0xcb: {
        const value = view.getFloat64(pos + 1)
        if (Number.isSafeInteger(value)) {
          const high = Math.floor(value / TWO_32)
          bytes[pos] = 0xd3
          view.setInt32(pos + 1, high)
          view.setUint32(pos + 5, value - high * TWO_32)
        }
        pos += 9
        break
      }
      case 0xc4:
      case 0xd9:
        pos += 2 + (bytes[pos + 1] as number)
        break
      case 0xc5:
      case 0xda:
        pos += 3 + view.getUint16(pos + 1)
        break
      case 0xc6:
      case 0xdb:
        pos += 5 + view.getUint32(pos + 1)
        break
      case 0xc7:
        pos = ext(bytes, pos + 2, bytes[pos + 1] as number)
        break
      case 0xc8:
        pos = ext(bytes, pos + 3, view.getUint16(pos + 1))
        break
      case 0xc9:
        pos = ext(bytes, pos + 5, view.getUint32(pos + 1))
        break
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        pos = ext(bytes, pos + 1, 1 << (token - 0xd4))
        break
      case 0xcc:
      case 0xd0:
        pos += 2
        break
      case 0xcd:
      case 0xd1:
      case 0xdc:
      case 0xde:
        pos += 3
        break
      case 0xca:
      case 0xce:
      case 0xd2:
      case 0xdd:
      case 0xdf:
        pos += 5
        break
      case 0xcf:
      case 0xd3:
        pos += 9
        break
      default:
        // nil, false, true (0xc0, 0xc2, 0xc3); msgpackr never writes 0xc1 here
        pos += 1
    }
  }
}

/** Where the walk continues after an extension whose type byte is at `typeAt`. */
function ext(bytes: Uint8Array, typeAt: number, length: number): number {
  const type = bytes[typeAt]
  // Step into Map and Set payloads; skip every other payload.
  return type === MsgpackExtension.MAP || type === MsgpackExtension.SET ? typeAt + 1 : typeAt + 1 + length
}
