import type { Encoder } from '../encoder.ts'
import { DecodeError, errorMessage } from '../errors.ts'
import { errorMeta, type Logger } from '../logger.ts'
import { Message } from '../message.ts'

export type DecodeResult = { ok: true; message: Message } | { ok: false; reason: string }

/**
 * Decode a delivered body, or log why it cannot be decoded (an error entry "Undecodable message
 * dead-lettered" with `reason` and `meta`, e.g. the queue and the broker's id of the delivery)
 * and return the reason: the consumer then dead-letters the delivery and never hands it to the
 * worker. Never throws.
 */
export function decodeOrReport(
  body: Uint8Array,
  encoder: Encoder,
  logger: Logger,
  meta: Record<string, unknown>,
): DecodeResult {
  try {
    return { ok: true, message: Message.decode(body, encoder) }
  } catch (error) {
    const reason = error instanceof DecodeError ? error.message : errorMessage(error)
    logger.error('Undecodable message dead-lettered', { ...meta, reason, ...errorMeta(error) })
    return { ok: false, reason }
  }
}
