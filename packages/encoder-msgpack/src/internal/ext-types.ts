/**
 * The MessagePack extension types a `MsgpackEncoder` writes and accepts. Every other extension
 * type (msgpackr's records, structured-clone references, Error, RegExp, typed arrays, string
 * bundles, and anything registered elsewhere in the process) is rejected when decoding.
 */
export const MsgpackExtension = {
  /** `undefined`: fixext 1, payload `0x00` (the convention msgpackr and notepack share). */
  UNDEFINED: 0,
  /** `Date`: the standard MessagePack timestamp (32, 64 or 96 bit). */
  TIMESTAMP: -1,
  /** `BigInt`: payload is the value in big-endian two's complement, as few bytes as fit. */
  BIGINT: 0x49,
  /** `Map`: payload is one MessagePack array `[key1, value1, key2, value2, …]`. */
  MAP: 0x4d,
  /** `Set`: payload is one MessagePack array of the members. */
  SET: 0x53,
} as const

export type MsgpackExtension = (typeof MsgpackExtension)[keyof typeof MsgpackExtension]
