import type { TrackingUpdate } from '@tq/core'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisTrackingBackend } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'
import { enqueued, plain, reference } from './tracking-helpers.ts'

// How RedisTrackingBackend keeps its layout cheap to write: expiries moved only past a slack,
// P:where written when the queue or actor changes, the sweep reading the record it removes, and
// a batch's fields sent as one JSON argument.

const DAY = 86_400_000
const raw = rawClient()
const prefixes: string[] = []
const opened: RedisTrackingBackend[] = []

afterAll(async () => {
  for (const backend of opened) await backend.close()
  for (const prefix of prefixes) await deleteNamespace(raw, prefix)
  await raw.quit()
})

function backendOn(): { backend: RedisTrackingBackend; prefix: string } {
  const prefix = uniqueNamespace('tracking-layout')
  prefixes.push(prefix)
  const backend = new RedisTrackingBackend({ url: REDIS_URL, prefix })
  opened.push(backend)
  return { backend, prefix }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Every index and bookkeeping entry of `id` under `prefix`, as `key` → score. */
async function entriesOf(prefix: string, id: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {}
  for (const key of await raw.keys(`${prefix}:*`)) {
    const type = await raw.type(key)
    if (type === 'zset') {
      const score = await raw.zscore(key, id)
      if (score !== null) found[key.slice(prefix.length)] = score
    } else if (type === 'hash' && key === `${prefix}:where`) {
      const where = await raw.hget(key, id)
      if (where !== null) found[':where'] = where
    }
  }
  return found
}

describe('RedisTrackingBackend layout', () => {
  it('moves an expiry only when the deadline passes it (a 1 % slack), or a shorter retention comes', async () => {
    const { backend, prefix } = backendOn()
    const t = Date.now()
    const retention = 100_000 // slack: 1000 ms
    const key = `${prefix}:m:e1`
    const expiry = async () => Number(await raw.zscore(`${prefix}:expiry`, 'e1'))
    await backend.write([enqueued('e1', t)], retention)
    expect(await expiry()).toBe(t + retention + 1000)
    expect(await raw.hget(key, 'expiresAt')).toBe(String(t + retention + 1000))
    // Redis drops the hash a slack after the expiry, so the sweep finds it there.
    const pttl = await raw.pttl(key)
    expect(t + pttl).toBeGreaterThan(t + retention + 1000)
    expect(Date.now() + pttl).toBeLessThanOrEqual(t + retention + 2000 + 50)

    const attempt = { number: 1, workerId: 'w', startedAt: t + 10, finishedAt: t + 900 }
    await backend.write([{ kind: 'attempt', at: t + 900, messageId: 'e1', attempt, state: 'succeeded' }], retention)
    expect(await expiry()).toBe(t + retention + 1000)
    expect((await backend.get('e1'))?.updatedAt).toBe(t + 900)

    await backend.write([{ kind: 'progress', at: t + 1500, messageId: 'e1', progress: 0.5 }], retention)
    expect(await expiry()).toBe(t + 1500 + retention + 1000)

    await backend.write([{ kind: 'progress', at: t + 1600, messageId: 'e1', progress: 0.6 }], 50_000)
    expect(await expiry()).toBe(t + 1600 + 50_000 + 500)
    expect(await raw.pttl(key)).toBeLessThanOrEqual(1600 + 50_000 + 1000)
  })

  it('writes P:where when the queue or actor changes, not on a state change', async () => {
    const { backend, prefix } = backendOn()
    const t = Date.now()
    await backend.write([enqueued('w1', t, { queueName: 'first', actorName: 'one' })], DAY)
    expect(JSON.parse((await raw.hget(`${prefix}:where`, 'w1')) ?? 'null')).toEqual(['first', 'one'])
    await raw.hset(`${prefix}:where`, 'w1', 'untouched')
    await backend.write([{ kind: 'state', at: t + 1, messageId: 'w1', state: 'dead' }], DAY)
    expect(await raw.hget(`${prefix}:where`, 'w1')).toBe('untouched')
    expect(await entriesOf(prefix, 'w1')).toMatchObject({ ':s:dead': String(t), ':q:first': String(t) })

    await backend.write([enqueued('w1', t + 2, { queueName: 'second', actorName: 'one', state: 'retrying' })], DAY)
    expect(JSON.parse((await raw.hget(`${prefix}:where`, 'w1')) ?? 'null')).toEqual(['second', 'one'])
    const entries = await entriesOf(prefix, 'w1')
    expect(Object.keys(entries).sort()).toEqual(
      [':a:one', ':all', ':expiry', ':q:second', ':s:retrying', ':where'].sort(),
    )
  })

  it('keeps a batch that starts and finishes an attempt out of the running index', async () => {
    const { backend, prefix } = backendOn()
    const t = Date.now()
    const attempt = { number: 1, workerId: 'w', startedAt: t + 1 }
    const updates: TrackingUpdate[] = [
      enqueued('r1', t),
      { kind: 'attempt', at: t + 1, messageId: 'r1', attempt, state: 'running' },
      { kind: 'attempt', at: t + 2, messageId: 'r1', attempt: { ...attempt, finishedAt: t + 2 } },
      { kind: 'state', at: t + 2, messageId: 'r1', state: 'succeeded' },
    ]
    await backend.write(updates, DAY)
    expect(await raw.zcard(`${prefix}:s:running`)).toBe(0)
    // queued and succeeded have no index: every message passes through them.
    expect(await raw.exists(`${prefix}:s:queued`, `${prefix}:s:succeeded`)).toBe(0)
    expect(await raw.zscore(`${prefix}:all`, 'r1')).toBe(String(t))
    expect(await raw.hexists(`${prefix}:m:r1`, 'workerId')).toBe(0)
    expect(plain(await backend.get('r1'))).toEqual(plain(reference(updates).get('r1')))
  })

  it('sweeps a due record off the indexes its fields name (P:where not needed)', async () => {
    const { backend, prefix } = backendOn()
    const t = Date.now()
    const retention = 100_000 // slack: 1000 ms
    // Last updated so long ago that its expiry is 1300 ms away (and its hash 2300 ms).
    const at = t - retention + 300
    await backend.write([enqueued('s1', at, { queueName: 'sq', actorName: 'sa' })], retention)
    await backend.write([{ kind: 'state', at: at + 1, messageId: 's1', state: 'failed' }], retention)
    await raw.hdel(`${prefix}:where`, 's1')
    await sleep(1500)
    expect(await raw.exists(`${prefix}:m:s1`)).toBe(1)
    await backend.write([enqueued('other', Date.now(), { queueName: 'oq', actorName: 'oa' })], DAY)
    expect(await entriesOf(prefix, 's1')).toEqual({})
    expect(await raw.exists(`${prefix}:m:s1`)).toBe(0)
    expect(await backend.get('s1')).toBeUndefined()
  })

  it('sweeps a record whose hash Redis dropped first, by P:where and every state index', async () => {
    const { backend, prefix } = backendOn()
    const t = Date.now()
    // 50 ms: no slack, Redis drops the hash as it falls due.
    await backend.write([enqueued('d1', t, { queueName: 'dq', actorName: 'da' })], 50)
    await backend.write([{ kind: 'state', at: t + 1, messageId: 'd1', state: 'dead' }], 50)
    await sleep(150)
    expect(await raw.exists(`${prefix}:m:d1`)).toBe(0)
    expect(Object.keys(await entriesOf(prefix, 'd1')).length).toBeGreaterThan(0)
    await backend.write([enqueued('kept', Date.now())], DAY)
    expect(await entriesOf(prefix, 'd1')).toEqual({})
    expect(await raw.zcard(`${prefix}:s:dead`)).toBe(0)

    // An id whose dropped record left entries behind starts anew when it comes back.
    await backend.write([enqueued('d2', Date.now(), { queueName: 'dq', actorName: 'da', state: 'delayed' })], 50)
    await sleep(150)
    await backend.write([enqueued('d2', Date.now(), { queueName: 'dq2', actorName: 'da2' })], DAY)
    expect(Object.keys(await entriesOf(prefix, 'd2')).sort()).toEqual(
      [':a:da2', ':all', ':expiry', ':q:dq2', ':where'].sort(),
    )
  })

  it('replaces a hash without a state (garbage) whole', async () => {
    const { backend, prefix } = backendOn()
    await raw.hset(`${prefix}:m:g1`, { enqueuedAt: 'soon', eta: '5', progress: '{"old":true}', 'a:7': '{"n":7}' })
    const t = Date.now()
    await backend.write([enqueued('g1', t)], DAY)
    const record = await backend.get('g1')
    expect(record?.progress).toBeUndefined()
    expect(record?.attempts).toEqual([])
    expect(plain(record)).toEqual(plain(reference([enqueued('g1', t)]).get('g1')))
  })

  it('carries any text through the one JSON argument, lone surrogates as U+FFFD', async () => {
    const { backend } = backendOn()
    const t = Date.now()
    const args = ['\u0000\u001f\u007f', 'é😀\u2028', '"quoted" \\ back\\slash', '\\ud800 (text)', '\ud800 lone']
    await backend.write([enqueued('text-1', t, { args, kwargs: { 'k\u0001': '\udfff' } })], DAY)
    const record = await backend.get('text-1')
    expect(record?.args).toEqual(args)
    expect(record?.kwargs).toEqual({ 'k\u0001': '\udfff' })

    // Outside JSON a lone surrogate travels as UTF-8 does: as U+FFFD.
    await backend.write([enqueued('text-\ud800-2', t, { actorName: 'act\udc00or' })], DAY)
    expect((await backend.get('text-\ud800-2'))?.actorName).toBe('act\ufffdor')
    expect((await backend.list({ actor: 'act\ufffdor' })).items.map((r) => r.messageId)).toEqual(['text-\ufffd-2'])
  })
})
