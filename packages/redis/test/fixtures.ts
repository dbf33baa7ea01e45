import { readFileSync } from 'node:fs'
import type { Redis } from 'ioredis'

/** The Dramatiq 2.2 wire fixtures (see fixtures/dramatiq-wire/README.md at the repo root). */
const FIXTURES = new URL('../../../fixtures/dramatiq-wire/', import.meta.url)

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Fixture = any

export function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'))
}

/** Dramatiq's documented foreign-producer recipe: HSET <ns>:<q>.msgs <rid> <payload>; RPUSH <ns>:<q> <rid>. */
export async function putLikePython(client: Redis, namespace: string, encoded: string): Promise<void> {
  const parsed = JSON.parse(encoded) as { queue_name: string; options: { redis_message_id: string } }
  const queue = parsed.queue_name
  const rid = parsed.options.redis_message_id
  await client.hset(`${namespace}:${queue}.msgs`, rid, encoded)
  await client.rpush(`${namespace}:${queue}`, rid)
}

export interface KeyDump {
  type: string
  pttl: number
  value: unknown
}

/**
 * Every key of a namespace in the fixtures' dump format, with the namespace renamed to
 * `dramatiq`: lists as arrays, hashes as objects (Redis order), sets sorted, zsets as
 * `{member, score}` in score order.
 */
export async function dumpNamespace(client: Redis, namespace: string): Promise<Record<string, KeyDump>> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await client.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000)
    cursor = next
    keys.push(...found)
  } while (cursor !== '0')
  const out: Record<string, KeyDump> = {}
  for (const key of keys.sort()) {
    const type = await client.type(key)
    const pttl = await client.pttl(key)
    let value: unknown
    if (type === 'list') value = await client.lrange(key, 0, -1)
    else if (type === 'hash') value = await client.hgetall(key)
    else if (type === 'set') value = (await client.smembers(key)).sort()
    else if (type === 'zset') {
      const flat = await client.zrange(key, '0', '-1', 'WITHSCORES')
      const entries: Array<{ member: string; score: number }> = []
      for (let i = 0; i < flat.length; i += 2) entries.push({ member: flat[i] as string, score: Number(flat[i + 1]) })
      value = entries
    } else value = await client.get(key)
    out[`dramatiq:${key.slice(namespace.length + 1)}`] = { type, pttl, value }
  }
  return out
}

/** A fixture dump without the reader's `parsed` copies. */
export function stripParsed(dump: Record<string, KeyDump & { parsed?: unknown }>): Record<string, KeyDump> {
  const out: Record<string, KeyDump> = {}
  for (const [key, { type, pttl, value }] of Object.entries(dump)) out[key] = { type, pttl, value }
  return out
}

/** Replace every occurrence of each `from` with its `to`, in keys and values alike. */
export function substitute<T>(value: T, replacements: ReadonlyArray<readonly [string, string]>): T {
  let text = JSON.stringify(value)
  for (const [from, to] of replacements) text = text.split(from).join(to)
  return JSON.parse(text) as T
}

/**
 * Set every heartbeat score to 0 (they are the clock at the time of a command), and sort set
 * members again (ids were substituted after the capture tool sorted them).
 */
export function zeroHeartbeats(input: Record<string, KeyDump>): Record<string, KeyDump> {
  const dump: Record<string, KeyDump> = {}
  for (const [key, entry] of Object.entries(input)) {
    dump[key] = entry.type === 'set' ? { ...entry, value: [...(entry.value as string[])].sort() } : entry
  }
  const hb = dump['dramatiq:__heartbeats__']
  if (!hb) return dump
  return {
    ...dump,
    'dramatiq:__heartbeats__': {
      ...hb,
      value: (hb.value as Array<{ member: string }>).map((e) => ({ member: e.member, score: 0 })),
    },
  }
}
