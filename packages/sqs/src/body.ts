import type { Message as SqsMessage, MessageAttributeValue } from '@aws-sdk/client-sqs'

/**
 * Message attribute that marks a base64 body. Bodies that are valid SQS text (every body the
 * JSON encoder writes) travel as they are; others (a binary encoder's bytes) are base64-encoded
 * and carry this attribute with the value `base64`.
 */
export const BODY_ENCODING_ATTRIBUTE = 'tq-body-encoding'

/** What SQS takes for one message. */
export interface SqsBody {
  body: string
  attributes?: Record<string, MessageAttributeValue>
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Whether a string holds only the characters SQS accepts in a body (#x9 #xA #xD, #x20–#xD7FF, #xE000–#xFFFD, #x10000–#x10FFFF). */
export function isSqsText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x20 && c <= 0xd7ff) continue
    if (c === 0x9 || c === 0xa || c === 0xd) continue
    if (c >= 0xe000 && c <= 0xfffd) continue
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++
        continue
      }
    }
    return false
  }
  return true
}

/** The SQS body for encoded message bytes: the text itself when SQS can carry it, else base64. */
export function toSqsBody(bytes: Uint8Array): SqsBody {
  let text: string | undefined
  try {
    text = utf8.decode(bytes)
  } catch {
    text = undefined
  }
  if (text !== undefined && text.length > 0 && isSqsText(text)) return { body: text }
  return {
    body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
    attributes: { [BODY_ENCODING_ATTRIBUTE]: { DataType: 'String', StringValue: 'base64' } },
  }
}

/** The message bytes of a received SQS message (undoing the base64 of `toSqsBody`). */
export function fromSqsBody(message: Pick<SqsMessage, 'Body' | 'MessageAttributes'>): Uint8Array {
  const body = message.Body ?? ''
  const encoding = message.MessageAttributes?.[BODY_ENCODING_ATTRIBUTE]?.StringValue
  if (encoding === 'base64') return Buffer.from(body, 'base64')
  return Buffer.from(body, 'utf8')
}

/**
 * The size SQS counts against its message limit: the body's UTF-8 bytes plus, for each message
 * attribute, its name, data type and value.
 */
export function sqsMessageSize(body: string, attributes: Record<string, MessageAttributeValue> = {}): number {
  let size = Buffer.byteLength(body, 'utf8')
  for (const [name, value] of Object.entries(attributes)) {
    size += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(value.DataType ?? '', 'utf8')
    if (value.StringValue !== undefined) size += Buffer.byteLength(value.StringValue, 'utf8')
    if (value.BinaryValue !== undefined) size += value.BinaryValue.byteLength
  }
  return size
}

/** Message attributes as SendMessage takes them (received ones carry list fields SQS rejects). */
export function sendableAttributes(
  attributes: Record<string, MessageAttributeValue> | undefined,
): Record<string, MessageAttributeValue> | undefined {
  if (!attributes) return undefined
  const out: Record<string, MessageAttributeValue> = {}
  for (const [name, value] of Object.entries(attributes)) {
    const clean: MessageAttributeValue = { DataType: value.DataType }
    if (value.StringValue !== undefined) clean.StringValue = value.StringValue
    if (value.BinaryValue !== undefined) clean.BinaryValue = value.BinaryValue
    out[name] = clean
  }
  return Object.keys(out).length > 0 ? out : undefined
}

/** A received message's body and attributes as SendMessage takes them, to send it on unchanged. */
export function resendableBody(message: Pick<SqsMessage, 'Body' | 'MessageAttributes'>): SqsBody {
  const attributes = sendableAttributes(message.MessageAttributes)
  return attributes ? { body: message.Body ?? '', attributes } : { body: message.Body ?? '' }
}
