import {
  DecodeError,
  InvalidArgumentError,
  MESSAGE_STATES,
  type MessageState,
  type TrackedAttempt,
  type TrackedMessage,
  type TrackingUpdate,
} from '@tq/core'
import { toBuffer } from '../shared/client.ts'
import type { TrackingArg } from './scripts.ts'

const STATES: ReadonlySet<string> = new Set(MESSAGE_STATES)

/** JSON for a field that may be undefined ('' tells the script to remove the field). */
const optionalJson = (value: unknown): string => (value === undefined ? '' : (JSON.stringify(value) ?? ''))

function checkTime(update: TrackingUpdate): string {
  if (!Number.isFinite(update.at)) {
    throw new InvalidArgumentError(`Tracking update of ${update.messageId} has a bad time: ${update.at}`)
  }
  return String(update.at)
}

function checkState(update: TrackingUpdate, state: MessageState): MessageState {
  if (!STATES.has(state)) {
    throw new InvalidArgumentError(
      `Tracking update of ${update.messageId} has an unknown state ${JSON.stringify(state)}`,
    )
  }
  return state
}

/**
 * Append one update's fields to `out`, in the layout tracking-write.lua documents (every field
 * a string; an enqueue's body goes to `bodies`, the script reads it from its own argument). The
 * only JSON made here is what the record stores (arguments, options, attempt, progress).
 */
export function encodeUpdate(update: TrackingUpdate, out: string[], bodies: Buffer[]): void {
  const at = checkTime(update)
  switch (update.kind) {
    case 'enqueued':
      out.push(
        'e',
        update.messageId,
        at,
        update.actorName,
        update.queueName,
        checkState(update, update.state),
        optionalJson(update.args),
        optionalJson(update.kwargs),
        update.argsTruncated ? '1' : '0',
        JSON.stringify(update.options ?? {}),
        update.eta === undefined ? '' : String(update.eta),
      )
      bodies.push(toBuffer(update.body))
      return
    case 'attempt': {
      const { attempt } = update
      if (!Number.isSafeInteger(attempt.number)) {
        throw new InvalidArgumentError(
          `Tracking update of ${update.messageId} has a bad attempt number: ${attempt.number}`,
        )
      }
      out.push(
        'a',
        update.messageId,
        at,
        String(attempt.number),
        JSON.stringify(attempt),
        attempt.workerId,
        update.state === undefined ? '' : checkState(update, update.state),
      )
      return
    }
    case 'state':
      out.push('s', update.messageId, at, checkState(update, update.state))
      return
    case 'progress':
      out.push('p', update.messageId, at, optionalJson(update.progress))
      return
    default: {
      const unknown: { kind?: unknown; messageId?: unknown } = update
      throw new InvalidArgumentError(
        `Unknown tracking update kind ${JSON.stringify(unknown.kind)} for ${String(unknown.messageId)}`,
      )
    }
  }
}

/** A lone UTF-16 surrogate (sent as UTF-8, it becomes U+FFFD). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

/**
 * The fields of a batch as one JSON array of strings: one argument for the script (which
 * `cjson.decode`s it) instead of one per field, far cheaper to send. A string with a lone
 * surrogate (which JSON escapes and cjson refuses) is sent as its UTF-8 encoding would carry
 * it, with U+FFFD in its place, as a field of its own would be.
 */
export function packFields(fields: readonly string[]): string {
  const json = JSON.stringify(fields)
  // JSON.stringify writes \uXXXX for lone surrogates only (and for control characters, < \ud8).
  if (!/\\ud[89a-f]/.test(json)) return json
  return JSON.stringify(fields.map((field) => field.replace(LONE_SURROGATE, '\ufffd')))
}

/** The record of `messageId` from its hash's fields, or a `DecodeError` saying what is wrong. */
export function decodeRecord(messageId: string, fields: ReadonlyMap<string, Buffer>, key: string): TrackedMessage {
  const fail = (reason: string, cause?: unknown): never => {
    throw new DecodeError(`The tracking record of ${messageId} (Redis key ${key}) is corrupt: ${reason}`, key, cause)
  }
  const text = (field: string): string | undefined => fields.get(field)?.toString('utf8')
  const json = (field: string): unknown => {
    const raw = text(field)
    if (raw === undefined) return undefined
    try {
      return JSON.parse(raw)
    } catch (error) {
      return fail(`${field} is not JSON`, error)
    }
  }
  const number = (field: string): number | undefined => {
    const raw = text(field)
    if (raw === undefined) return undefined
    const value = Number(raw)
    return raw.trim() !== '' && Number.isFinite(value) ? value : fail(`${field} is not a number: ${raw.slice(0, 40)}`)
  }
  const isObject = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value)

  const state = text('state')
  if (state === undefined || !STATES.has(state)) fail(`unknown state ${JSON.stringify(state?.slice(0, 40))}`)
  const enqueuedAt = number('enqueuedAt') ?? fail('no enqueuedAt')
  const updatedAt = number('updatedAt') ?? fail('no updatedAt')
  const args = json('args')
  if (args !== undefined && !Array.isArray(args)) fail('args is not an array')
  const kwargs = json('kwargs')
  if (kwargs !== undefined && !isObject(kwargs)) fail('kwargs is not an object')
  const options = json('options') ?? {}
  if (!isObject(options)) fail('options is not an object')

  const attempts: TrackedAttempt[] = []
  for (const [field, raw] of fields) {
    if (!field.startsWith('a:')) continue
    let attempt: unknown
    try {
      attempt = JSON.parse(raw.toString('utf8'))
    } catch (error) {
      fail(`${field} is not JSON`, error)
    }
    if (!isObject(attempt) || typeof attempt['number'] !== 'number') fail(`${field} is not an attempt`)
    attempts.push(attempt as TrackedAttempt)
  }
  attempts.sort((a, b) => a.number - b.number)

  const record: TrackedMessage = {
    messageId,
    actorName: text('actor') ?? '',
    queueName: text('queue') ?? '',
    state: state as MessageState,
    args: args as unknown[] | undefined,
    kwargs: kwargs as Record<string, unknown> | undefined,
    argsTruncated: text('argsTruncated') === '1',
    options: options as Record<string, unknown>,
    enqueuedAt,
    updatedAt,
    attempts,
  }
  const eta = number('eta')
  if (eta !== undefined) record.eta = eta
  const workerId = text('workerId')
  if (workerId !== undefined) record.workerId = workerId
  if (fields.has('progress')) record.progress = json('progress')
  const body = fields.get('body')
  // A copy: reply Buffers may be views of a larger one.
  if (body !== undefined) record.body = new Uint8Array(body)
  return record
}

/** A flat HGETALL reply (field, value, …) as a map of field names to values. */
export function fieldMap(flat: readonly Buffer[]): Map<string, Buffer> {
  const map = new Map<string, Buffer>()
  for (let i = 0; i + 1 < flat.length; i += 2) map.set((flat[i] as Buffer).toString('utf8'), flat[i + 1] as Buffer)
  return map
}

/**
 * The most work in one script call, in attempt, state or progress updates (an enqueue, which
 * starts a record and its index entries, counts as `ENQUEUE_COST`); more go in further calls,
 * one after the other. Redis runs nothing else while a script runs, so a call is kept to a few
 * hundred microseconds, about as long as a worker's prefetched messages last, and the broker's
 * fetches and acks get their turn between calls.
 */
const UPDATES_PER_CALL = 50
const ENQUEUE_COST = 2
/** Expired records a write may sweep beyond one per update it carries (its last call sweeps). */
const SWEEP_EXTRA = 100

/**
 * The updates in calls of at most `UPDATES_PER_CALL` of work, in order. A message's updates may
 * fall in two calls: they run one after the other, and each update is applied on its own (a
 * reader between the two calls sees a state the message was in).
 */
function callsOf(updates: readonly TrackingUpdate[]): (readonly TrackingUpdate[])[] {
  const calls: (readonly TrackingUpdate[])[] = []
  let start = 0
  let cost = 0
  for (let i = 0; i < updates.length; i++) {
    const next = (updates[i] as TrackingUpdate).kind === 'enqueued' ? ENQUEUE_COST : 1
    if (cost + next > UPDATES_PER_CALL && i > start) {
      calls.push(updates.slice(start, i))
      start = i
      cost = 0
    }
    cost += next
  }
  calls.push(start === 0 ? updates : updates.slice(start))
  return calls
}

/**
 * The arguments of the write script calls for `updates` (see tracking-write.lua), everything
 * encoded up front: a bad update fails before anything is written.
 */
export function writeCalls(
  prefix: string,
  updates: readonly TrackingUpdate[],
  retention: number,
  now: number,
): TrackingArg[][] {
  const chunks = callsOf(updates)
  return chunks.map((chunk, i): TrackingArg[] => {
    const fields: string[] = []
    const bodies: Buffer[] = []
    for (const update of chunk) encodeUpdate(update, fields, bodies)
    // The last call sweeps, for the whole write (a sweep is a fixed cost per call).
    const sweep = i === chunks.length - 1 ? updates.length + SWEEP_EXTRA : 0
    return [prefix, String(now), String(retention), String(sweep), packFields(fields), ...bodies]
  })
}
