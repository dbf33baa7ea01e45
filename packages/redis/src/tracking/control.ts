import type {
  CancelMode,
  CancelNotice,
  CancelSubscription,
  ThroughputCount,
  UniqueClaim,
  WorkerHeartbeat,
} from '@tq/core'
import type { Redis } from 'ioredis'
import { classifyRedisError } from '../classify-error.ts'

/** Claim a unique key (KEYS[1]) for ARGV[1] for ARGV[2] ms; returns the id holding it, or nil when claimed. */
const CLAIM_LUA = `
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`

/** Compare-and-delete of unique keys: KEYS are the keys, ARGV the ids that must hold them. */
const RELEASE_LUA = `
local released = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released`

const MINUTE = 60_000
/** How long the per-minute throughput counts are kept. */
const THROUGHPUT_KEPT = 3 * 3_600_000

const MODES: ReadonlySet<string> = new Set(['cancel', 'delete', 'clear'])

/**
 * The Redis side of cancellation, deduplication and heartbeats for `RedisTrackingBackend`, under
 * the backend's prefix:
 *
 * - `<prefix>:cancels`: a hash of the cancels in force (`id` → `<mode>:<expires at>`), and a
 *   pub/sub channel of the same name carrying `<mode>:<id>` notices to every worker;
 * - `<prefix>:u:<key>`: the id of the message holding a unique key (set when absent, expiring);
 * - `<prefix>:workers`: a hash of worker heartbeats (`id` → JSON with its expiry);
 * - `<prefix>:tp:<minute>`: the attempts finished in a minute (`p:<queue>`, `f:<queue>` for the
 *   failed ones), kept 3 hours.
 */
export class RedisTrackingControl {
  readonly #client: Redis
  readonly #prefix: string
  readonly #subscribers = new Set<Redis>()

  constructor(client: Redis, prefix: string) {
    this.#client = client
    this.#prefix = prefix
    const defined = client as unknown as Record<string, unknown>
    if (typeof defined['tqTrackingClaim'] !== 'function') {
      client.defineCommand('tqTrackingClaim', { numberOfKeys: 1, lua: CLAIM_LUA })
      client.defineCommand('tqTrackingRelease', { lua: RELEASE_LUA })
    }
  }

  get #cancelsKey(): string {
    return `${this.#prefix}:cancels`
  }

  async requestCancel(messageId: string, mode: CancelMode, ttl: number): Promise<void> {
    await this.#run(() =>
      this.#client
        .multi()
        .hset(this.#cancelsKey, messageId, `${mode}:${Date.now() + ttl}`)
        .publish(this.#cancelsKey, `${mode}:${messageId}`)
        .exec(),
    )
  }

  async clearCancel(messageId: string): Promise<void> {
    await this.#run(() =>
      this.#client.multi().hdel(this.#cancelsKey, messageId).publish(this.#cancelsKey, `clear:${messageId}`).exec(),
    )
  }

  /** The cancels in force (dropping lapsed ones). */
  async #pendingCancels(client: Redis): Promise<Map<string, CancelMode>> {
    const all = await client.hgetall(this.#cancelsKey)
    const now = Date.now()
    const pending = new Map<string, CancelMode>()
    const lapsed: string[] = []
    for (const [messageId, value] of Object.entries(all)) {
      const colon = value.indexOf(':')
      const mode = value.slice(0, colon)
      if ((mode !== 'cancel' && mode !== 'delete') || !(Number(value.slice(colon + 1)) > now)) lapsed.push(messageId)
      else pending.set(messageId, mode)
    }
    if (lapsed.length > 0) await client.hdel(this.#cancelsKey, ...lapsed)
    return pending
  }

  /**
   * A connection of its own in subscriber mode. ioredis resubscribes after a reconnect; the
   * cancels published while it was away are read back from the hash and passed to `listener`.
   */
  async subscribeCancels(listener: (notice: CancelNotice) => void): Promise<CancelSubscription> {
    const subscriber = this.#client.duplicate({ lazyConnect: true, connectionName: `${this.#prefix}:cancels` })
    this.#subscribers.add(subscriber)
    // Errors show up as reconnects (and the resync below); unhandled, ioredis would print them.
    subscriber.on('error', () => undefined)
    let closed = false
    subscriber.on('message', (channel: string, text: string) => {
      if (closed || channel !== this.#cancelsKey) return
      const colon = text.indexOf(':')
      const mode = text.slice(0, colon)
      if (colon > 0 && MODES.has(mode))
        listener({ messageId: text.slice(colon + 1), mode: mode as CancelNotice['mode'] })
    })
    const close = async (): Promise<void> => {
      // Heard nothing more from here on, whatever is still in flight on the socket.
      closed = true
      if (!this.#subscribers.delete(subscriber)) return
      subscriber.disconnect()
    }
    try {
      await subscriber.connect()
      await subscriber.subscribe(this.#cancelsKey)
      const pending = await this.#pendingCancels(this.#client)
      // Connected now: a later 'ready' is a reconnect.
      subscriber.on('ready', () => {
        this.#pendingCancels(this.#client).then(
          (again) => {
            for (const [messageId, mode] of again) listener({ messageId, mode })
          },
          () => undefined,
        )
      })
      return { pending, close }
    } catch (error) {
      await close()
      throw classifyRedisError(error)
    }
  }

  async claimUnique(key: string, messageId: string, ttl: number): Promise<string | undefined> {
    // One script: atomically set when absent, and say who holds it otherwise (SET NX GET needs Redis 7).
    const held = await this.#run(() => this.#scripts.tqTrackingClaim(this.#uniqueKey(key), messageId, String(ttl)))
    return typeof held === 'string' && held !== messageId ? held : undefined
  }

  async releaseUnique(claims: readonly UniqueClaim[]): Promise<void> {
    if (claims.length === 0) return
    const keys = claims.map((claim) => this.#uniqueKey(claim.key))
    await this.#run(() =>
      this.#scripts.tqTrackingRelease(keys.length, ...keys, ...claims.map((claim) => claim.messageId)),
    )
  }

  async heartbeat(worker: WorkerHeartbeat, ttl: number): Promise<void> {
    const entry = JSON.stringify({ ...worker, expiresAt: worker.lastSeen + ttl })
    await this.#run(() => this.#client.hset(`${this.#prefix}:workers`, worker.id, entry))
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.#run(() => this.#client.hdel(`${this.#prefix}:workers`, workerId))
  }

  async workers(): Promise<WorkerHeartbeat[]> {
    const all = await this.#run(() => this.#client.hgetall(`${this.#prefix}:workers`))
    const now = Date.now()
    const live: WorkerHeartbeat[] = []
    const lapsed: string[] = []
    for (const [id, text] of Object.entries(all)) {
      let entry: (WorkerHeartbeat & { expiresAt?: unknown }) | undefined
      try {
        entry = JSON.parse(text) as WorkerHeartbeat & { expiresAt?: unknown }
      } catch {
        entry = undefined
      }
      if (!entry || typeof entry.expiresAt !== 'number' || entry.expiresAt <= now) {
        lapsed.push(id)
        continue
      }
      const { expiresAt: _expiresAt, ...worker } = entry
      live.push(worker)
    }
    if (lapsed.length > 0) await this.#run(() => this.#client.hdel(`${this.#prefix}:workers`, ...lapsed))
    return live.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  async addThroughput(counts: readonly ThroughputCount[]): Promise<void> {
    if (counts.length === 0) return
    const pipeline = this.#client.pipeline()
    const minutes = new Set<number>()
    for (const count of counts) {
      const key = this.#throughputKey(count.minute)
      minutes.add(count.minute)
      pipeline.hincrby(key, `p:${count.queue}`, count.processed)
      if (count.failed > 0) pipeline.hincrby(key, `f:${count.queue}`, count.failed)
    }
    for (const minute of minutes) pipeline.pexpireat(this.#throughputKey(minute), minute + THROUGHPUT_KEPT)
    const replies = await this.#run(() => pipeline.exec())
    for (const [error] of replies ?? []) if (error) throw classifyRedisError(error)
  }

  async throughput(since: number): Promise<ThroughputCount[]> {
    const first = Math.floor(since / MINUTE) * MINUTE
    const minutes: number[] = []
    for (let minute = first; minute <= Date.now(); minute += MINUTE) minutes.push(minute)
    const pipeline = this.#client.pipeline()
    for (const minute of minutes) pipeline.hgetall(this.#throughputKey(minute))
    const replies = (await this.#run(() => pipeline.exec())) ?? []
    const counts: ThroughputCount[] = []
    for (const [i, [error, reply]] of replies.entries()) {
      if (error) throw classifyRedisError(error)
      const minute = minutes[i] as number
      const fields = reply as Record<string, string>
      for (const [field, value] of Object.entries(fields)) {
        if (!field.startsWith('p:')) continue
        const queue = field.slice(2)
        counts.push({ minute, queue, processed: Number(value), failed: Number(fields[`f:${queue}`] ?? 0) })
      }
    }
    return counts.sort((a, b) => a.minute - b.minute || (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0))
  }

  /** Close the subscriber connections still open. */
  close(): void {
    for (const subscriber of this.#subscribers) subscriber.disconnect()
    this.#subscribers.clear()
  }

  get #scripts(): Record<'tqTrackingClaim' | 'tqTrackingRelease', (...args: (string | number)[]) => Promise<unknown>> {
    return this.#client as unknown as Record<
      'tqTrackingClaim' | 'tqTrackingRelease',
      (...args: (string | number)[]) => Promise<unknown>
    >
  }

  #throughputKey(minute: number): string {
    return `${this.#prefix}:tp:${minute}`
  }

  #uniqueKey(key: string): string {
    return `${this.#prefix}:u:${key}`
  }

  async #run<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (error) {
      throw classifyRedisError(error)
    }
  }
}
