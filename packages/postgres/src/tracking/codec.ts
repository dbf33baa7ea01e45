import {
  DecodeError,
  InvalidArgumentError,
  MESSAGE_STATES,
  type MessageState,
  type TrackedAttempt,
  type TrackingUpdate,
} from '@tq/core'
import type { StoredRecord } from '@tq/core/adapter'

const STATES: ReadonlySet<string> = new Set(MESSAGE_STATES)

/** Text PostgreSQL cannot store in a `text` column. */
const NUL = '\u0000'
/** Longest id, actor or queue name (UTF-8 bytes): it must fit a btree entry (and a NOTIFY payload). */
const MAX_NAME_BYTES = 2000

function checkText(update: TrackingUpdate, field: string, value: unknown, empty = true): void {
  if (
    typeof value !== 'string' ||
    (!empty && value === '') ||
    value.includes(NUL) ||
    // At most 3 bytes per UTF-16 unit: only a long one may be over.
    (value.length > MAX_NAME_BYTES / 3 && Buffer.byteLength(value) > MAX_NAME_BYTES)
  ) {
    throw new InvalidArgumentError(
      `Tracking update of ${String(update.messageId).slice(0, 100)} has a bad ${field}: ` +
        `${JSON.stringify(String(value).slice(0, 100))} (a string without NUL characters, at most ${MAX_NAME_BYTES} bytes)`,
    )
  }
}

function checkState(update: TrackingUpdate, state: unknown): void {
  if (typeof state !== 'string' || !STATES.has(state)) {
    throw new InvalidArgumentError(
      `Tracking update of ${update.messageId} has an unknown state ${JSON.stringify(state)}`,
    )
  }
}

/** Check an update's shape, so a bad one fails `write()` before anything is written. */
export function checkUpdate(update: TrackingUpdate): void {
  checkText(update, 'message id', update.messageId, false)
  if (typeof update.at !== 'number' || !Number.isFinite(update.at)) {
    throw new InvalidArgumentError(`Tracking update of ${update.messageId} has a bad time: ${String(update.at)}`)
  }
  switch (update.kind) {
    case 'enqueued':
      checkText(update, 'actor name', update.actorName)
      checkText(update, 'queue name', update.queueName)
      checkState(update, update.state)
      if (!(update.body instanceof Uint8Array)) {
        throw new InvalidArgumentError(`Tracking update of ${update.messageId} has no body (a Uint8Array)`)
      }
      return
    case 'attempt':
      if (
        typeof update.attempt !== 'object' ||
        update.attempt === null ||
        !Number.isSafeInteger(update.attempt.number)
      ) {
        throw new InvalidArgumentError(`Tracking update of ${update.messageId} has a bad attempt`)
      }
      if (update.state !== undefined) checkState(update, update.state)
      return
    case 'state':
      checkState(update, update.state)
      return
    case 'progress':
      return
    default: {
      const unknown: { kind?: unknown; messageId?: unknown } = update
      throw new InvalidArgumentError(
        `Unknown tracking update kind ${JSON.stringify(unknown.kind)} for ${String(unknown.messageId)}`,
      )
    }
  }
}

/** The columns `write()` reads of a record it is about to change (not the arguments or body). */
export interface LockedRow {
  message_id: string
  queue: string
  actor: string
  state: string
  state_at: unknown
  enqueued_at: unknown
  updated_at: unknown
  expires_at: unknown
  data: string
}

/** A whole record's row, as `get()` and `list()` read it. */
export interface RecordRow extends Omit<LockedRow, 'expires_at'> {
  args: string | null
  kwargs: string | null
  body: Uint8Array | null
}

/** What `data` holds: the record's fields that are neither columns nor arguments. */
interface DataField {
  argsTruncated?: unknown
  options?: unknown
  attempts?: unknown
  eta?: unknown
  workerId?: unknown
  progress?: unknown
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** A number column (a node-postgres parser may hand it over as text). */
export const numberOf = (value: unknown): number => (typeof value === 'number' ? value : Number(value))

/**
 * The record of a row; `DecodeError` saying what is wrong for a corrupt one. Without the
 * arguments and body when the row carries none (`write()` does not read them).
 */
export function decodeRow(row: LockedRow | RecordRow, table: string): StoredRecord {
  const id = row.message_id
  const fail = (reason: string, cause?: unknown): never => {
    throw new DecodeError(`The tracking record of ${id} (PostgreSQL ${table}) is corrupt: ${reason}`, id, cause)
  }
  const json = (field: string, text: string | null | undefined): unknown => {
    if (text === null || text === undefined) return undefined
    try {
      return JSON.parse(text)
    } catch (error) {
      return fail(`${field} is not JSON`, error)
    }
  }
  const time = (field: string, value: unknown, infinite = false): number => {
    const n = numberOf(value)
    return Number.isFinite(n) || (infinite && n === -Infinity) ? n : fail(`${field} is not a time: ${String(value)}`)
  }
  if (!STATES.has(row.state)) fail(`unknown state ${JSON.stringify(row.state.slice(0, 40))}`)
  const data = json('data', row.data)
  if (!isObject(data)) return fail('data is not an object')
  const { argsTruncated, options, attempts, eta, workerId } = data as DataField
  if (!isObject(options)) fail('options is not an object')
  if (!Array.isArray(attempts) || !attempts.every((a) => isObject(a) && typeof a['number'] === 'number')) {
    fail('attempts is not a list of attempts')
  }
  if (eta !== undefined && typeof eta !== 'number') fail('eta is not a number')
  if (workerId !== undefined && typeof workerId !== 'string') fail('workerId is not a string')
  const record: StoredRecord = {
    messageId: id,
    actorName: row.actor,
    queueName: row.queue,
    state: row.state as MessageState,
    stateAt: time('state_at', row.state_at, true),
    args: undefined,
    kwargs: undefined,
    argsTruncated: argsTruncated === true,
    options: options as Record<string, unknown>,
    enqueuedAt: time('enqueued_at', row.enqueued_at),
    updatedAt: time('updated_at', row.updated_at),
    attempts: attempts as TrackedAttempt[],
  }
  if (eta !== undefined) record.eta = eta as number
  if (workerId !== undefined) record.workerId = workerId as string
  if ('progress' in data) record.progress = data.progress
  if ('args' in row) {
    const args = json('args', row.args)
    if (args !== undefined && !Array.isArray(args)) fail('args is not a list')
    const kwargs = json('kwargs', row.kwargs)
    if (kwargs !== undefined && !isObject(kwargs)) fail('kwargs is not an object')
    record.args = args as unknown[] | undefined
    record.kwargs = kwargs as Record<string, unknown> | undefined
    // A copy: a Buffer node-postgres returns may share its memory.
    if (row.body !== null) record.body = new Uint8Array(row.body)
  }
  return record
}

/** A record as the columns of the write statement take it. */
export interface EncodedRecord {
  messageId: string
  queue: string
  actor: string
  state: string
  stateAt: number
  enqueuedAt: number
  updatedAt: number
  expiresAt: number
  data: string
  /** Whether `args`, `kwargs` and `search` are to be written (else the stored ones stay). */
  argsSet: boolean
  args: string | null
  kwargs: string | null
  search: string
  /** Whether `body` is to be written. */
  bodySet: boolean
  body: Buffer | null
}

function stringify(record: StoredRecord, field: string, value: unknown): string | null {
  try {
    return JSON.stringify(value) ?? null
  } catch (error) {
    throw new InvalidArgumentError(`Tracking update of ${record.messageId} has a ${field} that is not JSON`, {
      cause: error,
    })
  }
}

/** The text a search looks in: the fields `matches()` searches, lowercased as it lowercases them. */
export function searchText(messageId: string, actorName: string, args: string | null, kwargs: string | null): string {
  return `${messageId}\n${actorName}\n${args ?? '[]'}\n${kwargs ?? '{}'}`.toLowerCase()
}

/**
 * The columns of `record`. `argsSet`: its arguments (and so its search text) changed, or the row
 * is written whole; `bodySet` likewise for the body (write() reads neither, so a record it did
 * not rebuild keeps the stored ones).
 */
export function encodeRecord(
  record: StoredRecord,
  argsSet: boolean,
  bodySet: boolean,
  retention: number,
): EncodedRecord {
  const data: DataField = {
    argsTruncated: record.argsTruncated,
    options: record.options,
    attempts: record.attempts,
  }
  if (record.eta !== undefined) data.eta = record.eta
  if (record.workerId !== undefined) data.workerId = record.workerId
  if ('progress' in record) data.progress = record.progress
  const args = argsSet ? stringify(record, 'args', record.args) : null
  const kwargs = argsSet ? stringify(record, 'kwargs', record.kwargs) : null
  const body =
    bodySet && record.body !== undefined
      ? Buffer.from(record.body.buffer, record.body.byteOffset, record.body.byteLength)
      : null
  return {
    messageId: record.messageId,
    queue: record.queueName,
    actor: record.actorName,
    state: record.state,
    stateAt: record.stateAt,
    enqueuedAt: record.enqueuedAt,
    updatedAt: record.updatedAt,
    expiresAt: record.updatedAt + retention,
    data: stringify(record, 'value (options, attempt or progress)', data) ?? '{}',
    argsSet,
    args,
    kwargs,
    search: argsSet ? searchText(record.messageId, record.actorName, args, kwargs) : '',
    bodySet,
    body,
  }
}
