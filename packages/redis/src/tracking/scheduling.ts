import type { ScheduleMark } from '@tq/core'
import type { Redis } from 'ioredis'
import { classifyRedisError } from '../classify-error.ts'

/** Take (or extend, for its owner) the lease KEYS[1] for ARGV[1] for ARGV[2] ms: 1 when ARGV[1] holds it. */
const LEASE_LUA = `
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

/** Delete the lease KEYS[1] if ARGV[1] holds it. */
const RELEASE_LEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`

/**
 * Store the mark ARGV[2] (JSON) of schedule ARGV[1] in the hash KEYS[1] unless the stored one's
 * \`through\` is at or past ARGV[3]: 1 when stored. A stored mark that does not decode is replaced.
 */
const ADVANCE_LUA = `
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local ok, mark = pcall(cjson.decode, stored)
  if ok and type(mark) == 'table' and type(mark.through) == 'number' and mark.through >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`

type Scripts = {
  tqLease(key: string, owner: string, ttl: string): Promise<number>
  tqReleaseLease(key: string, owner: string): Promise<number>
  tqAdvanceSchedule(key: string, id: string, mark: string, through: string): Promise<number>
}

/**
 * The Redis side of the `Scheduler` for `RedisTrackingBackend`, under the backend's prefix:
 *
 * - `<prefix>:lease:<name>`: the owner holding a lease (set when absent or held by the same
 *   owner, expiring);
 * - `<prefix>:schedules`: a hash of schedule marks (`id` → JSON).
 */
export class RedisScheduling {
  readonly #client: Redis & Scripts
  readonly #prefix: string

  constructor(client: Redis, prefix: string) {
    this.#client = client as Redis & Scripts
    this.#prefix = prefix
    if (typeof (client as unknown as Record<string, unknown>)['tqLease'] !== 'function') {
      client.defineCommand('tqLease', { numberOfKeys: 1, lua: LEASE_LUA })
      client.defineCommand('tqReleaseLease', { numberOfKeys: 1, lua: RELEASE_LEASE_LUA })
      client.defineCommand('tqAdvanceSchedule', { numberOfKeys: 1, lua: ADVANCE_LUA })
    }
  }

  get #schedulesKey(): string {
    return `${this.#prefix}:schedules`
  }

  async acquireLease(name: string, owner: string, ttl: number): Promise<boolean> {
    const key = `${this.#prefix}:lease:${name}`
    return (await run(() => this.#client.tqLease(key, owner, String(Math.max(1, Math.ceil(ttl)))))) === 1
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await run(() => this.#client.tqReleaseLease(`${this.#prefix}:lease:${name}`, owner))
  }

  async scheduleMarks(ids: readonly string[]): Promise<Map<string, ScheduleMark>> {
    const marks = new Map<string, ScheduleMark>()
    if (ids.length === 0) return marks
    const stored = await run(() => this.#client.hmget(this.#schedulesKey, ...ids))
    ids.forEach((id, i) => {
      const raw = stored[i]
      if (raw === null || raw === undefined) return
      // A mark that does not decode is as good as none: the schedule starts anew from now, and
      // its next advance replaces it (one corrupt field must not stop every schedule).
      const mark = decodeMark(raw)
      if (mark) marks.set(id, mark)
    })
    return marks
  }

  async advanceSchedule(id: string, mark: ScheduleMark): Promise<boolean> {
    const json = JSON.stringify(mark)
    return (await run(() => this.#client.tqAdvanceSchedule(this.#schedulesKey, id, json, String(mark.through)))) === 1
  }
}

async function run<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw classifyRedisError(error)
  }
}

const optionalNumber = (value: unknown): boolean => value === undefined || typeof value === 'number'

function decodeMark(raw: string): ScheduleMark | undefined {
  let mark: unknown
  try {
    mark = JSON.parse(raw)
  } catch {
    return undefined
  }
  const m = mark as Partial<Record<keyof ScheduleMark, unknown>> | null
  const valid =
    typeof m === 'object' &&
    m !== null &&
    typeof m.through === 'number' &&
    optionalNumber(m.lastDue) &&
    optionalNumber(m.lastSentAt) &&
    (m.lastMessageId === undefined || typeof m.lastMessageId === 'string')
  return valid ? (mark as ScheduleMark) : undefined
}
