import { Message, type Encoder, type OutgoingMessage } from '@tq/core'
import { redrivenMessage } from '@tq/core/adapter'
import { insertValues } from './insert-values.ts'
import type { PgPool } from './pg-types.ts'
import type { BrokerQueries } from './queries.ts'
import { inTransaction } from './transact.ts'

/** Dead letters moved per transaction by a redrive. */
const REDRIVE_CHUNK = 100

/** What a redrive needs from its broker. */
export interface RedriveHost {
  readonly pool: PgPool
  readonly queries: BrokerQueries
  readonly channel: string
  encoder(): Encoder
  beforeEnqueue(message: Message): Promise<void>
  afterEnqueue(message: Message, body: Uint8Array): Promise<void>
}

/**
 * Move up to `limit` dead letters of `canonical` back to it, oldest first, as `redrivenMessage`
 * makes them (due now, retry count reset): each batch of 100 is inserted and deleted in one
 * transaction, so nothing is lost or doubled if the process dies. Undecodable ones stay (the
 * cursor moves past them). Resolves with how many moved.
 */
export async function redrive(host: RedriveHost, canonical: string, limit: number): Promise<number> {
  let moved = 0
  let after = '0'
  while (moved < limit) {
    const take = Math.min(REDRIVE_CHUNK, limit - moved)
    const batch = await inTransaction(host.pool, async (client) => {
      const { rows } = await client.query<{ id: string; body: Buffer }>(host.queries.lockDead, [canonical, take, after])
      const last = rows[rows.length - 1]
      if (!last) return undefined
      const encoder = host.encoder()
      const outgoing: OutgoingMessage[] = []
      const movedIds: string[] = []
      for (const row of rows) {
        let message: Message
        try {
          message = redrivenMessage(Message.decode(row.body, encoder))
        } catch {
          continue
        }
        await host.beforeEnqueue(message)
        outgoing.push({ message, body: message.encode(encoder), canonical, delay: undefined })
        movedIds.push(row.id)
      }
      if (outgoing.length > 0) {
        await client.query(host.queries.enqueue, insertValues(outgoing, host.channel))
        await client.query(host.queries.deleteDead, [movedIds])
      }
      return { last: last.id, outgoing }
    })
    if (!batch) break
    after = batch.last
    moved += batch.outgoing.length
    for (const out of batch.outgoing) await host.afterEnqueue(out.message, out.body)
  }
  return moved
}
