import { MESSAGE_STATES, type TrackedMessage, type TrackingUpdate } from '@tq/core'
import { applyUpdate, publicRecord, type StoredRecord } from '@tq/core/adapter'
import type { Redis } from 'ioredis'

// Helpers of tracking-backend.test.ts.

const encoder = new TextEncoder()

export function enqueued(
  messageId: string,
  at: number,
  extra: Partial<Extract<TrackingUpdate, { kind: 'enqueued' }>> = {},
): TrackingUpdate {
  return {
    kind: 'enqueued',
    at,
    messageId,
    actorName: 'send_email',
    queueName: 'mail',
    state: 'queued',
    args: ['ada@example.com'],
    kwargs: {},
    argsTruncated: false,
    options: {},
    eta: undefined,
    body: encoder.encode(messageId),
    ...extra,
  }
}

/** The reference: `applyUpdate` over the updates, in order. */
export function reference(updates: readonly TrackingUpdate[]): Map<string, TrackedMessage> {
  const records = new Map<string, StoredRecord>()
  for (const update of updates) records.set(update.messageId, applyUpdate(records.get(update.messageId), update))
  return new Map([...records].map(([id, record]) => [id, publicRecord(record)]))
}

/** A record as plain JSON (undefined fields dropped, the body as base64), for comparisons. */
export const plain = (record: TrackedMessage | undefined): unknown =>
  record && JSON.parse(JSON.stringify({ ...record, body: record.body && Buffer.from(record.body).toString('base64') }))

/** A small seeded PRNG (mulberry32), so a failing case can be replayed. */
export function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Random updates of a few messages: out of order, equal times, partial records, every kind. */
export function randomUpdates(next: () => number, ids: readonly string[], count: number, t: number): TrackingUpdate[] {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T
  const updates: TrackingUpdate[] = []
  for (let i = 0; i < count; i++) {
    const messageId = pick(ids)
    const at = t + Math.floor(next() * 20)
    const kind = pick(['enqueued', 'enqueued', 'attempt', 'attempt', 'state', 'progress'] as const)
    if (kind === 'enqueued') {
      updates.push(
        enqueued(messageId, at, {
          queueName: pick(['mail', 'reports']),
          actorName: pick(['send_email', 'build_report']),
          state: pick(['queued', 'delayed', 'retrying'] as const),
          args: next() < 0.2 ? undefined : [i, `arg-${i}`],
          kwargs: next() < 0.2 ? undefined : { i },
          argsTruncated: next() < 0.2,
          options: { retries: i },
          eta: next() < 0.5 ? undefined : at + 1000,
          body: Uint8Array.from([i & 255, 0, 255, 10, 13]),
        }),
      )
    } else if (kind === 'attempt') {
      const attempt = {
        number: 1 + Math.floor(next() * 3),
        workerId: `host:${i}:1`,
        startedAt: at,
        ...(next() < 0.5 ? { finishedAt: at + 1 } : {}),
        ...(next() < 0.3 ? { error: { type: 'TypeError', message: `boom ${i}` } } : {}),
      }
      const state = next() < 0.7 ? pick(['running', 'running', 'failed'] as const) : undefined
      updates.push({ kind: 'attempt', at, messageId, attempt, ...(state ? { state } : {}) })
    } else if (kind === 'state') {
      updates.push({ kind: 'state', at, messageId, state: pick(MESSAGE_STATES) })
    } else {
      updates.push({ kind: 'progress', at, messageId, progress: next() < 0.2 ? undefined : { done: i } })
    }
  }
  return updates
}

/** Split updates into consecutive batches of random sizes. */
export function batches<T>(next: () => number, items: readonly T[]): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length;) {
    const size = 1 + Math.floor(next() * 8)
    out.push(items.slice(i, i + size))
    i += size
  }
  return out
}

/**
 * `total` records written straight into Redis under `prefix` (a Lua loop: far faster than as
 * many updates), in the layout tracking-write.lua makes: all queued on `bulk` by `send_email`,
 * one per ms from `t0`, except message 777 (actor `rare_actor`, an argument `needle`).
 */
export async function fillLargeIndex(client: Redis, prefix: string, total: number, t0: number): Promise<void> {
  const lua = `
    local P, from, to, t0 = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
    local expires = string.format('%.0f', t0 + 86400000 * 2)
    for n = from, to do
      local id = 'bulk-' .. n
      local at = string.format('%.0f', t0 + n)
      local actor = n == 777 and 'rare_actor' or 'send_email'
      local args = n == 777 and '["needle"]' or ('["user-' .. n .. '@example.com",{"n":' .. n .. '}]')
      redis.call('HSET', P .. ':m:' .. id, 'state', 'queued', 'stateAt', at, 'enqueuedAt', at, 'updatedAt', at,
        'actor', actor, 'queue', 'bulk', 'args', args, 'kwargs', '{}', 'argsTruncated', '0', 'options', '{}',
        'body', '{"message_id":"' .. id .. '"}')
      redis.call('PEXPIREAT', P .. ':m:' .. id, expires)
      redis.call('ZADD', P .. ':all', at, id)
      redis.call('ZADD', P .. ':q:bulk', at, id)
      redis.call('ZADD', P .. ':a:' .. actor, at, id)
      redis.call('HSET', P .. ':where', id, cjson.encode({'bulk', actor}))
      redis.call('ZADD', P .. ':expiry', expires, id)
    end
    return to - from + 1`
  for (let from = 0; from < total; from += 20_000) {
    await client.eval(lua, 0, prefix, from, Math.min(total, from + 20_000) - 1, t0)
  }
}
