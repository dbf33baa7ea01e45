/**
 * The one place where tq's camelCase names meet Dramatiq's snake_case wire names.
 *
 * Known option names are mapped both ways; any other option key passes through unchanged in
 * both directions, so options a Python peer's middleware adds survive a round trip through tq.
 * Options whose values are messages (`pipe_target`, `group_completion_callbacks`) are mapped
 * recursively.
 */
import { DecodeError } from './errors.ts'

/** A message as it travels: Dramatiq's seven keys, in Dramatiq's order. */
export interface WireMessage {
  queue_name: string
  actor_name: string
  args: unknown[]
  kwargs: Record<string, unknown>
  options: Record<string, unknown>
  message_id: string
  message_timestamp: number
}

const OPTION_NAMES: ReadonlyArray<readonly [camel: string, wire: string]> = [
  ['eta', 'eta'],
  ['delay', 'delay'],
  ['retries', 'retries'],
  ['traceback', 'traceback'],
  ['throws', 'throws'],
  ['requeueTimestamp', 'requeue_timestamp'],
  ['redisMessageId', 'redis_message_id'],
  ['brokerPriority', 'broker_priority'],
  ['maxRetries', 'max_retries'],
  ['minBackoff', 'min_backoff'],
  ['maxBackoff', 'max_backoff'],
  ['retryWhen', 'retry_when'],
  ['onRetryExhausted', 'on_retry_exhausted'],
  ['timeLimit', 'time_limit'],
  ['maxAge', 'max_age'],
  ['notifyShutdown', 'notify_shutdown'],
  ['onSuccess', 'on_success'],
  ['onFailure', 'on_failure'],
  ['storeResults', 'store_results'],
  ['resultTtl', 'result_ttl'],
  ['pipeIgnore', 'pipe_ignore'],
  ['pipeTarget', 'pipe_target'],
  ['groupCompletionUuid', 'group_completion_uuid'],
  ['groupCompletionCallbacks', 'group_completion_callbacks'],
  // Tracking's deduplication (tq's own: a Python peer carries them along unread).
  ['uniqueKey', 'unique_key'],
  ['uniqueFor', 'unique_for'],
  ['uniqueUntil', 'unique_until'],
]

const TO_WIRE = new Map<string, string>(OPTION_NAMES.map(([c, w]) => [c, w]))
const FROM_WIRE = new Map<string, string>(OPTION_NAMES.map(([c, w]) => [w, c]))

/** Register another camelCase ↔ wire option name pair (for a middleware's own options). */
export function registerOptionName(camel: string, wire: string): void {
  TO_WIRE.set(camel, wire)
  FROM_WIRE.set(wire, camel)
}

/** The wire name of a camelCase option (unknown names are returned unchanged). */
export function optionToWire(name: string): string {
  return TO_WIRE.get(name) ?? name
}

/** The camelCase name of a wire option (unknown names are returned unchanged). */
export function optionFromWire(name: string): string {
  return FROM_WIRE.get(name) ?? name
}

/** The fields of a message in tq's camelCase form. */
export interface MessageFields {
  queueName: string
  actorName: string
  args: unknown[]
  kwargs: Record<string, unknown>
  options: Record<string, unknown>
  messageId: string
  messageTimestamp: number
}

export function optionsToWire(options: Record<string, unknown>): Record<string, unknown> {
  // Built in place (every enqueue goes through here); a "__proto__" key stays plain data.
  const out: Record<string, unknown> = {}
  for (const key in options) {
    if (!Object.hasOwn(options, key)) continue
    const value = options[key]
    if (value === undefined) continue
    if (key === 'pipeTarget' && isFields(value)) out['pipe_target'] = fieldsToWire(value)
    else if (key === 'groupCompletionCallbacks' && Array.isArray(value))
      out['group_completion_callbacks'] = (value as unknown[]).map((m) => (isFields(m) ? fieldsToWire(m) : m))
    else defineData(out, TO_WIRE.get(key) ?? key, value)
  }
  return out
}

export function optionsFromWire(options: Record<string, unknown>, path = 'options'): Record<string, unknown> {
  // Built in place (every delivery goes through here): no entries array, no fromEntries.
  const out: Record<string, unknown> = {}
  for (const key in options) {
    if (!Object.hasOwn(options, key)) continue
    const value = options[key]
    if (key === 'pipe_target' && value !== null && value !== undefined)
      out['pipeTarget'] = fieldsFromWire(value, `${path}.pipe_target`)
    else if (key === 'group_completion_callbacks' && Array.isArray(value))
      out['groupCompletionCallbacks'] = value.map((m, i) =>
        fieldsFromWire(m, `${path}.group_completion_callbacks[${i}]`),
      )
    else defineData(out, FROM_WIRE.get(key) ?? key, value)
  }
  return out
}

/** `out[key] = value` as an own property, so a `"__proto__"` key stays plain data. */
function defineData(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
  else out[key] = value
}

function isFields(value: unknown): value is MessageFields {
  return typeof value === 'object' && value !== null && 'actorName' in value && 'queueName' in value
}

export function fieldsToWire(m: MessageFields): WireMessage {
  return {
    queue_name: m.queueName,
    actor_name: m.actorName,
    args: m.args,
    kwargs: m.kwargs,
    options: optionsToWire(m.options),
    message_id: m.messageId,
    message_timestamp: m.messageTimestamp,
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** Validate a decoded wire dict and map it to camelCase fields. Throws `DecodeError` naming the bad field. */
export function fieldsFromWire(value: unknown, path = 'message'): MessageFields {
  if (!isPlainObject(value)) throw new DecodeError(`${path} is not an object`, value)
  const d = value
  const queueName = stringField(d, 'queue_name', path)
  const actorName = stringField(d, 'actor_name', path)
  const messageId = stringField(d, 'message_id', path)
  const args = d['args'] ?? []
  if (!Array.isArray(args)) throw new DecodeError(`${path}.args must be an array, got ${describe(args)}`, value)
  const kwargs = d['kwargs'] ?? {}
  if (!isPlainObject(kwargs)) throw new DecodeError(`${path}.kwargs must be an object, got ${describe(kwargs)}`, value)
  const options = d['options'] ?? {}
  if (!isPlainObject(options))
    throw new DecodeError(`${path}.options must be an object, got ${describe(options)}`, value)
  const ts = d['message_timestamp']
  if (typeof ts !== 'number' || !Number.isFinite(ts))
    throw new DecodeError(`${path}.message_timestamp must be a number, got ${describe(ts)}`, value)
  return {
    queueName,
    actorName,
    args,
    kwargs,
    options: optionsFromWire(options, `${path}.options`),
    messageId,
    messageTimestamp: ts,
  }
}

function stringField(d: Record<string, unknown>, key: string, path: string): string {
  const v = d[key]
  if (typeof v !== 'string') throw new DecodeError(`${path}.${key} must be a string, got ${describe(v)}`, d)
  return v
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (v === undefined) return 'nothing'
  if (Array.isArray(v)) return 'an array'
  return typeof v
}
