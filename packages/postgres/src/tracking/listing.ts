import { DecodeError, type MessageState, type TrackedMessage, type TrackingPage, type TrackingQuery } from '@tq/core'
import { decodeCursor, encodeCursor, matches, pageSize, publicRecord, type Cursor } from '@tq/core/adapter'
import type { PgQueryable } from '../pg-types.ts'
import { decodeRow, numberOf, type RecordRow } from './codec.ts'

/** Rows a page with filters beyond its index may scan: this many per record asked for, at least `MIN_SCAN`. */
const SCAN_PER_ITEM = 10
const MIN_SCAN = 1000

/** States nearly every message passes through: a listing of one scans a narrower index if it has one. */
const COMMON_STATES: ReadonlySet<MessageState> = new Set(['queued', 'succeeded'])

type Filter = 'state' | 'actor' | 'queue'

/** A row of the listing statement: the scan's tally on every row, a hit's record (or nulls) beside it. */
type ListRow = { scanned: number; last_at: unknown; last_id: string | null } & {
  [K in keyof RecordRow]: RecordRow[K] | null
}

/**
 * The index a listing scans: a rare state's, then the actor's, then the queue's, then a common
 * state's, else the one of every record (each ordered newest first); the other filters are
 * applied to the rows it reads.
 */
function leadOf(query: TrackingQuery): Filter | undefined {
  if (query.state !== undefined && !COMMON_STATES.has(query.state)) return 'state'
  if (query.actor !== undefined) return 'actor'
  if (query.queue !== undefined) return 'queue'
  if (query.state !== undefined) return 'state'
  return undefined
}

const VALUE: Record<Filter, (q: TrackingQuery) => string | undefined> = {
  state: (q) => q.state,
  actor: (q) => q.actor,
  queue: (q) => q.queue,
}

/**
 * One page of `<schema>.tracked_messages`, newest first, in one statement doing bounded work:
 * it reads at most `budget` rows of one index from the cursor on (just `limit + 1` when nothing
 * else filters), keeps those the other filters and the search match, and fetches the records
 * of the first `limit + 1` of them. A page that read its whole budget without filling up ends
 * with a cursor at the last row it read, so the next page goes on from there.
 */
export async function listRecords(db: PgQueryable, table: string, query: TrackingQuery): Promise<TrackingPage> {
  const limit = pageSize(query)
  const from: Cursor | undefined = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
  const needle = query.search === undefined || query.search === '' ? undefined : query.search.toLowerCase()
  const lead = leadOf(query)
  const values: unknown[] = []
  const param = (value: unknown, type: string): string => {
    values.push(value)
    return `$${values.length}::${type}`
  }

  // The lead filter as a range of its index (`>=` with `<=`, or the cursor's row comparison),
  // not an equality: with `=` the planner may walk the newest-first index and filter it, which
  // reads any number of rows to fill the budget; ordering by the lead column too keeps the walk
  // on the lead's index, and the LIMIT then bounds the rows read.
  const scanWhere: string[] = []
  let order = 'enqueued_at DESC, message_id DESC'
  if (lead) {
    const value = param(VALUE[lead](query), 'text')
    scanWhere.push(`${lead} >= ${value}`)
    if (from) {
      const at = param(from.enqueuedAt, 'float8')
      scanWhere.push(`(${lead}, enqueued_at, message_id) < (${value}, ${at}, ${param(from.messageId, 'text')})`)
    } else scanWhere.push(`${lead} <= ${value}`)
    order = `${lead} DESC, ${order}`
  } else if (from) {
    scanWhere.push(
      `(enqueued_at, message_id) < (${param(from.enqueuedAt, 'float8')}, ${param(from.messageId, 'text')})`,
    )
  }
  const hitWhere = [`expires_at > ${param(Date.now(), 'float8')}`]
  let filtered = false
  for (const filter of ['state', 'actor', 'queue'] as const) {
    const value = VALUE[filter](query)
    if (value === undefined) continue
    hitWhere.push(`${filter} = ${param(value, 'text')}`)
    if (filter !== lead) filtered = true
  }
  if (needle !== undefined) {
    hitWhere.push(`strpos(search, ${param(needle, 'text')}) > 0`)
    filtered = true
  }
  const budget = filtered ? Math.max(MIN_SCAN, SCAN_PER_ITEM * limit) : limit + 1
  const text = `WITH scan AS MATERIALIZED (
  SELECT message_id, enqueued_at, queue, actor, state, expires_at${needle === undefined ? '' : ', search'}
  FROM ${table}${scanWhere.length > 0 ? ` WHERE ${scanWhere.join(' AND ')}` : ''}
  ORDER BY ${order} LIMIT ${budget}
), hits AS (
  SELECT message_id, enqueued_at FROM scan WHERE ${hitWhere.join(' AND ')}
  ORDER BY enqueued_at DESC, message_id DESC LIMIT ${limit + 1}
), tally AS (
  SELECT count(*)::int AS scanned FROM scan
), last AS (
  SELECT enqueued_at AS last_at, message_id AS last_id FROM scan ORDER BY enqueued_at, message_id LIMIT 1
)
SELECT tally.scanned, last.last_at, last.last_id, m.message_id, m.queue, m.actor, m.state, m.state_at, m.enqueued_at,
  m.updated_at, m.data::text AS data, m.args::text AS args, m.kwargs::text AS kwargs, m.body
FROM tally LEFT JOIN last ON true LEFT JOIN hits ON true LEFT JOIN ${table} m ON m.message_id = hits.message_id
ORDER BY hits.enqueued_at DESC, hits.message_id DESC`

  const { rows } = await db.query<ListRow>({ text, values })
  const first = rows[0]
  const hits = rows.filter((row): row is ListRow & RecordRow => row.message_id !== null && row.data !== null)
  const items: TrackedMessage[] = []
  for (const row of hits.slice(0, limit)) {
    const record = decodeOrSkip(row, table)
    if (record && matches(record, query)) items.push(record)
  }
  if (hits.length > limit) {
    const last = hits[limit - 1] as RecordRow
    return { items, cursor: encodeCursor({ enqueuedAt: numberOf(last.enqueued_at), messageId: last.message_id }) }
  }
  if (first && numberOf(first.scanned) >= budget && first.last_id !== null) {
    return { items, cursor: encodeCursor({ enqueuedAt: numberOf(first.last_at), messageId: first.last_id }) }
  }
  return { items }
}

/** A listing leaves a corrupt record out (`get()` reports it). */
function decodeOrSkip(row: RecordRow, table: string): TrackedMessage | undefined {
  try {
    return publicRecord(decodeRow(row, table))
  } catch (error) {
    if (error instanceof DecodeError) return undefined
    throw error
  }
}
