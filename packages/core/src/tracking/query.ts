import { InvalidArgumentError } from '../errors.ts'
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MESSAGE_STATES, type TrackedMessage, type TrackingQuery } from './backend.ts'

/** Where a page stopped: the last record's `enqueuedAt` and id (listings run newest first). */
export interface Cursor {
  enqueuedAt: number
  messageId: string
}

export function encodeCursor(record: Pick<TrackedMessage, 'enqueuedAt' | 'messageId'>): string {
  return Buffer.from(JSON.stringify([record.enqueuedAt, record.messageId])).toString('base64url')
}

/** The cursor of a query; `InvalidArgumentError` for one this code did not make. */
export function decodeCursor(cursor: string): Cursor {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && typeof value[0] === 'number' && typeof value[1] === 'string') {
      return { enqueuedAt: value[0], messageId: value[1] }
    }
  } catch {
    // reported below
  }
  throw new InvalidArgumentError(`Not a tracking cursor: ${JSON.stringify(cursor.slice(0, 64))}`)
}

/** The page size of a query (default 50, between 1 and 500), checking the state it names. */
export function pageSize(query: TrackingQuery): number {
  if (query.state !== undefined && !MESSAGE_STATES.includes(query.state)) {
    throw new InvalidArgumentError(
      `Unknown message state ${JSON.stringify(query.state)} (one of ${MESSAGE_STATES.join(', ')})`,
    )
  }
  const limit = query.limit ?? DEFAULT_PAGE_SIZE
  if (!Number.isInteger(limit) || limit < 1)
    throw new InvalidArgumentError(`limit must be a positive integer, got ${limit}`)
  return Math.min(limit, MAX_PAGE_SIZE)
}

/** Newest first; the same `enqueuedAt` by id, descending. */
export function newestFirst(a: Cursor, b: Cursor): number {
  return b.enqueuedAt - a.enqueuedAt || (a.messageId < b.messageId ? 1 : a.messageId > b.messageId ? -1 : 0)
}

/** Whether `record` comes after `cursor` in a newest-first listing. */
export function isAfter(record: Cursor, cursor: Cursor): boolean {
  return newestFirst(cursor, record) < 0
}

/** Whether a record matches a query's filters. */
export function matches(record: TrackedMessage, query: TrackingQuery): boolean {
  if (query.queue !== undefined && record.queueName !== query.queue) return false
  if (query.state !== undefined && record.state !== query.state) return false
  if (query.actor !== undefined && record.actorName !== query.actor) return false
  if (query.search !== undefined && query.search !== '') {
    const needle = query.search.toLowerCase()
    const haystack = [
      record.messageId,
      record.actorName,
      JSON.stringify(record.args ?? []),
      JSON.stringify(record.kwargs ?? {}),
    ]
    if (!haystack.some((text) => text.toLowerCase().includes(needle))) return false
  }
  return true
}
