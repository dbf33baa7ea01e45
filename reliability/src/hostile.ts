// Hostile payloads, put straight on a broker's queue (bypassing tq), and the check that each was
// dead-lettered with a logged, typed reason while the worker stayed up.
import { randomUUID } from 'node:crypto'
import type { Ledger } from './ledger.ts'
import type { RawPut, Target } from './targets/target.ts'
import { diagnosed, type LogLine, type TqWorker } from './tq-process.ts'

export const MiB = 1024 * 1024

export interface HostileCase {
  label: string
  bytes: Uint8Array
  /** `dead-letter`: must land in the dead-letter queue; `run`: a valid message that must run (its id). */
  expect: 'dead-letter' | 'run'
  /** For `run`: the ledger id it records. */
  id?: number
  /** The error type the log must name (`err.type`). */
  errorType?: string
  /** What the logged reason must say. */
  because?: RegExp
}

/** A well-formed message in Dramatiq's wire format, with `patch` applied on top. */
export function wire(queueName: string, patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    queue_name: queueName,
    actor_name: 'record',
    args: [0],
    kwargs: {},
    options: {},
    message_id: randomUUID(),
    message_timestamp: Date.now(),
    ...patch,
  }
}

const json = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value))
const text = (value: string): Uint8Array => Buffer.from(value, 'latin1')

/**
 * The hostile inputs. `validId` is the ledger id the one huge but valid message records;
 * `limit`, when the broker has one below 5 MiB (SQS), replaces the huge cases' size.
 */
export function hostileCases(queueName: string, validId: number, options: { huge?: number } = {}): HostileCase[] {
  const huge = options.huge ?? 5 * MiB
  const pad = 'A'.repeat(huge)
  const good = JSON.stringify(wire(queueName, { args: [validId] }))
  // `__proto__` as an own key, as JSON.parse creates it, at the top, in kwargs and in options;
  // the second one is due-delayed (an eta in the past), so the worker moves it to its queue first.
  const proto = (id: number, eta: string): string =>
    `{"__proto__":{"polluted":"top"},"queue_name":${JSON.stringify(queueName)},"actor_name":"record","args":[${id}],"kwargs":{"__proto__":{"polluted":"kwargs"}},"options":{${eta}"__proto__":{"polluted":"options"}},"message_id":"${randomUUID()}","message_timestamp":${Date.now()}}`
  const utf8 = Buffer.concat([
    Buffer.from(good.slice(0, -1) + ',"x":"'),
    Buffer.from([0xc3, 0x28, 0xff, 0xfe]),
    Buffer.from('"}'),
  ])
  // A chain of valid (minimal) messages nested through options.pipe_target, deeper than the
  // stack allows, in about 0.5 MB (under SQS's 1 MiB, so every broker takes it).
  const deep = 5000
  const level = `{"queue_name":${JSON.stringify(queueName)},"actor_name":"record","message_id":"m","message_timestamp":1,"options":{"pipe_target":`
  const nested = `${level.repeat(deep)}${good}${'}}'.repeat(deep)}`
  return [
    {
      label: 'invalid JSON',
      bytes: text(good.slice(0, 40)),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /not valid JSON/,
    },
    {
      label: 'empty body',
      bytes: new Uint8Array(0),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /not valid JSON/,
    },
    {
      label: 'JSON but not an object',
      bytes: json([1, 2, 3]),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /not a JSON object/,
    },
    {
      label: 'wrong type: args is a string',
      bytes: json(wire(queueName, { args: '0' })),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /args must be an array/,
    },
    {
      label: 'wrong type: actor_name is a number',
      bytes: json(wire(queueName, { actor_name: 42 })),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /actor_name must be a string/,
    },
    {
      label: 'wrong type: message_timestamp is a string',
      bytes: json(wire(queueName, { message_timestamp: 'yesterday' })),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /message_timestamp must be a number/,
    },
    {
      label: 'missing fields: {}',
      bytes: json({}),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /queue_name must be a string/,
    },
    {
      label: 'missing field: message_id',
      bytes: json({ ...wire(queueName), message_id: undefined }),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /message_id must be a string/,
    },
    {
      label: 'unknown actor',
      bytes: json(wire(queueName, { actor_name: 'no_such_actor' })),
      expect: 'dead-letter',
      errorType: 'ActorNotFoundError',
      because: /no_such_actor/,
    },
    { label: 'invalid UTF-8', bytes: utf8, expect: 'dead-letter', errorType: 'DecodeError', because: /UTF-8/ },
    // tq's contract: a "__proto__" key is plain data (kept exactly, never a prototype). The run
    // checks that it runs and that nothing in the worker gained a prototype from it.
    {
      label: '__proto__ keys (kept as plain data)',
      bytes: text(proto(validId + 1, '')),
      expect: 'run',
      id: validId + 1,
    },
    {
      label: '__proto__ keys in a delayed message (kept as plain data)',
      bytes: text(proto(validId + 2, `"eta":${Date.now() - 1000},`)),
      expect: 'run',
      id: validId + 2,
    },
    {
      label: `deeply nested pipe_target (${deep} levels)`,
      bytes: text(nested),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /Maximum call stack/,
    },
    {
      label: `huge: ${huge} bytes of non-JSON`,
      bytes: text(`<${pad}>`),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /not valid JSON/,
    },
    {
      label: `huge: ${huge} bytes, args of the wrong type`,
      bytes: json(wire(queueName, { args: pad })),
      expect: 'dead-letter',
      errorType: 'DecodeError',
      because: /args must be an array/,
    },
    {
      label: `huge: a valid ${huge}-byte message`,
      bytes: json(wire(queueName, { args: [validId, pad] })),
      expect: 'run',
      id: validId,
    },
  ]
}

/** A log entry that names `put` (by broker id or message id anywhere in its fields) with an error type. */
export function findReason(worker: TqWorker, put: RawPut, messageId: string | undefined): LogLine | undefined {
  return worker.logs.find((l) => {
    const err = l.meta['err'] as { type?: unknown } | undefined
    if (!err || typeof err.type !== 'string') return false
    const meta = JSON.stringify(l.meta)
    return meta.includes(put.id) || (messageId !== undefined && meta.includes(messageId))
  })
}

/** The `message_id` of a payload, when it has a readable one. */
export function messageIdOf(bytes: Uint8Array): string | undefined {
  if (bytes.length > 1024 * 1024) return undefined
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as { message_id?: unknown }
    // Only an id long enough not to match unrelated log lines by accident (UUIDs).
    return typeof value.message_id === 'string' && value.message_id.length >= 16 ? value.message_id : undefined
  } catch {
    return undefined
  }
}

export interface HostileOutcome {
  label: string
  outcome: 'dead-lettered' | 'ran' | 'refused at send' | 'missing'
  reason?: string
}

/**
 * Put every case on the target's queue, then good messages, and wait until the good ones ran
 * and every dead-letter case is in the dead-letter queue. Returns what happened to each case.
 */
export async function runHostile(
  target: Target,
  ledger: Ledger,
  worker: TqWorker,
  cases: readonly HostileCase[],
  options: { goodAfter: number; timeout: number },
): Promise<{ outcomes: HostileOutcome[]; refused: Map<string, unknown> }> {
  const puts = new Map<HostileCase, RawPut>()
  const refused = new Map<string, unknown>()
  for (const c of cases) {
    try {
      puts.set(c, await target.putRaw(c.bytes, c.label))
    } catch (error) {
      refused.set(c.label, error)
    }
  }
  // Good messages sent after the hostile ones: ids 0 … goodAfter-1.
  await target.send(Array.from({ length: options.goodAfter }, (_, i) => i))
  const runIds = cases.filter((c) => c.expect === 'run' && puts.has(c)).length
  await diagnosed([worker], ledger.waitForDistinct(options.goodAfter + runIds, options.timeout))
  const expectedDead = cases.filter((c) => c.expect === 'dead-letter' && puts.has(c))
  const deadline = Date.now() + options.timeout
  let dead: Uint8Array[] = []
  for (;;) {
    dead = await target.deadLetters()
    if (dead.length >= expectedDead.length || Date.now() > deadline) break
    await new Promise((r) => setTimeout(r, 100))
  }
  const counts = await ledger.counts()
  const outcomes: HostileOutcome[] = cases.map((c) => {
    if (refused.has(c.label)) {
      const error = refused.get(c.label)
      return {
        label: c.label,
        outcome: 'refused at send',
        reason: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      }
    }
    const put = puts.get(c) as RawPut
    if (c.expect === 'run') {
      return { label: c.label, outcome: counts.has(String(c.id)) ? 'ran' : 'missing' }
    }
    const isDead = dead.some((d) => Buffer.compare(Buffer.from(d), Buffer.from(c.bytes)) === 0)
    const line = findReason(worker, put, messageIdOf(c.bytes))
    const err = line?.meta['err'] as { type?: string; message?: string } | undefined
    return {
      label: c.label,
      outcome: isDead ? 'dead-lettered' : 'missing',
      ...(err ? { reason: `${err.type}: ${String(err.message).slice(0, 160)}` } : {}),
    }
  })
  return { outcomes, refused }
}
