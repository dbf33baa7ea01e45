import type { OutgoingMessage } from '@tq/core'

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** The ms until a message is due: its delay, or what is left of an eta it already carries. */
function delayOf(out: OutgoingMessage): number {
  if (out.delay !== undefined) return Math.max(0, out.delay)
  const eta = out.message.options.eta
  return typeof eta === 'number' && Number.isFinite(eta) ? Math.max(0, eta - Date.now()) : 0
}

/**
 * The parameters of the enqueue statement (`BrokerQueries.enqueue`) for these messages: parallel
 * arrays of queue, message id, body and delay, the channel, and the distinct queues to ring.
 */
export function insertValues(chunk: readonly OutgoingMessage[], channel: string): unknown[] {
  const n = chunk.length
  const queues: string[] = new Array<string>(n)
  const ids: string[] = new Array<string>(n)
  const bodies: Buffer[] = new Array<Buffer>(n)
  const delays: number[] = new Array<number>(n)
  const distinct: string[] = []
  for (let i = 0; i < n; i++) {
    const out = chunk[i] as OutgoingMessage
    queues[i] = out.canonical
    ids[i] = out.message.messageId
    bodies[i] = asBuffer(out.body)
    delays[i] = delayOf(out)
    if (!distinct.includes(out.canonical)) distinct.push(out.canonical)
  }
  return [queues, ids, bodies, delays, channel, distinct]
}
