import { DecodeError, InvalidArgumentError } from './errors.ts'
import { processState } from './internal/process-state.ts'

/**
 * Turns a message's wire dict into bytes and back. `decode` must throw `DecodeError` on input
 * it cannot read, and must never run code found in the input.
 */
export interface Encoder {
  encode(data: Record<string, unknown>): Uint8Array
  decode(bytes: Uint8Array): Record<string, unknown>
}

const NON_ASCII = /[\u0080-\uffff]/g
const HAS_NON_ASCII = /[\u0080-\uffff]/
const escapeChar = (c: string): string => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')
const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Compact JSON, byte-compatible with Dramatiq's JSONEncoder: no spaces, and every non-ASCII
 * character escaped as lowercase `\uXXXX` (astral characters as surrogate pairs), as Python's
 * `json.dumps` writes by default.
 *
 * What JSON cannot carry is lost the way `JSON.stringify` loses it (`undefined` in objects is
 * dropped, `Date` becomes a string, `BigInt` throws). JavaScript has one number type, so a
 * Python float `1.0` arrives as `1` and integers beyond 2^53 lose precision; use
 * `@tq/encoder-msgpack` for richer values.
 */
export class JSONEncoder implements Encoder {
  encode(data: Record<string, unknown>): Uint8Array {
    let text: string
    try {
      text = JSON.stringify(data)
    } catch (error) {
      throw new InvalidArgumentError(
        `Message cannot be encoded as JSON (${(error as Error).message}); use @tq/encoder-msgpack for such values`,
        { cause: error },
      )
    }
    if (HAS_NON_ASCII.test(text)) text = text.replace(NON_ASCII, escapeChar)
    // After escaping the text is pure ASCII, so latin1 is a byte-for-byte copy.
    return Buffer.from(text, 'latin1')
  }

  decode(bytes: Uint8Array): Record<string, unknown> {
    let text: string
    try {
      text = utf8.decode(bytes)
    } catch (error) {
      throw new DecodeError('Message body is not valid UTF-8', bytes, error)
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (error) {
      throw new DecodeError(`Message body is not valid JSON: ${(error as Error).message}`, bytes, error)
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new DecodeError('Message body is not a JSON object', bytes)
    }
    return value as Record<string, unknown>
  }
}

/** The process-wide encoder (a `JSONEncoder` unless `setEncoder` changed it). */
export function getEncoder(): Encoder {
  const state = processState()
  state.encoder ??= new JSONEncoder()
  return state.encoder
}

/** Replace the process-wide encoder. Brokers given an `encoder` option use theirs instead. */
export function setEncoder(encoder: Encoder): void {
  processState().encoder = encoder
}
