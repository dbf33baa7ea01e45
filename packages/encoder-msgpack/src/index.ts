export { MsgpackEncoder } from './msgpack-encoder.ts'
export type { MsgpackEncoderOptions } from './msgpack-encoder.ts'
export { MsgpackExtension } from './internal/ext-types.ts'
