import {
  type CancelMode,
  type CancelNotice,
  type CancelSubscription,
  type MessageState,
  ConfigurationError,
  DecodeError,
  InvalidArgumentError,
  type TrackedMessage,
  type TrackingBackend,
  type TrackingPage,
  type TrackingQuery,
  type TrackingUpdate,
  type ScheduleMark,
  type ThroughputCount,
  type UniqueClaim,
  type WorkerHeartbeat,
  errorMeta,
  noopLogger,
  type Logger,
} from '@tq/core'
import { OutageLog, decodeCursor, encodeCursor, matches, pageSize, type Cursor } from '@tq/core/adapter'
import type { Redis } from 'ioredis'
import { classifyRedisError } from '../classify-error.ts'
import { RedisClientHandle, isReplyError, type AdapterRedisOptions } from '../shared/index.ts'
import { decodeRecord, fieldMap, writeCalls } from './codec.ts'
import { RedisTrackingControl } from './control.ts'
import { RedisScheduling } from './scheduling.ts'
import { defineTrackingScripts, runTrackingScript, type TrackingArg } from './scripts.ts'

export interface RedisTrackingBackendOptions {
  /** `redis://…` or `rediss://…` (default `redis://127.0.0.1:6379`). Ignored with `client`. */
  url?: string
  /** Extra ioredis options for the client opened from `url`. Ignored with `client`. */
  redisOptions?: AdapterRedisOptions
  /** An existing ioredis client (without a `keyPrefix`): borrowed, not closed unless `closeClient`. */
  client?: Redis
  /** Close a given `client` on `close()` too (default false). */
  closeClient?: boolean
  /**
   * The prefix of every key (default `tq-tracking`). Keep it apart from the broker's namespace
   * (`dramatiq`): tracking keys never enter Dramatiq's layout.
   */
  prefix?: string
  /** Where connection errors of a client it opened are logged, once per outage (default: nowhere). */
  logger?: Logger
}

/**
 * States without an index of their own: every message passes through them, so keeping one would
 * cost two index writes per message; a listing of them scans the queue, actor or full index and
 * filters (they are common, so a page fills quickly). Keep in step with tracking-common.lua.
 */
const UNINDEXED_STATES: ReadonlySet<MessageState> = new Set(['queued', 'succeeded'])

/** Most index entries one list script call reads (it holds the server while it runs). */
const SCAN_PER_CALL = 1000
/** Entries a page may scan: this many per record asked for, and at least `MIN_SCAN`. */
const SCAN_PER_ITEM = 10
const MIN_SCAN = 1000

/** A list script entry: id, score, then the record's HGETALL (`full`) or the searched fields (`search`). */
type Entry = [id: Buffer, score: Buffer, ...rest: unknown[]]
type ListReply = [scanned: number, exhausted: number, more: number, lastScore: Buffer, lastId: Buffer, entries: Entry[]]

/**
 * A `TrackingBackend` on Redis. Keys live under their own prefix (`tq-tracking:` by default), so
 * a Python Dramatiq peer sharing the server is unaffected:
 *
 * - `<prefix>:m:<id>`: a hash per message (scalar fields, JSON for arguments, options and
 *   progress, the body as raw bytes, one `a:<n>` field per attempt), expiring `retention` ms
 *   after the record's last update or a little later (up to 2 % of the retention, two hours at
 *   most: an update soon after the last leaves the expiry as it is);
 * - `<prefix>:all`, `<prefix>:q:<queue>`, `<prefix>:a:<actor>`, `<prefix>:s:<state>`: sorted
 *   sets of ids scored by `enqueuedAt`, the newest-first listings (no `s:` index for `queued`
 *   and `succeeded`, the states every message passes through: those listings filter a scan);
 * - `<prefix>:expiry` (when each record expires) and `<prefix>:where` (the queue and actor of
 *   each id, for a record whose hash is gone before the sweep): each write sweeps a bounded
 *   number of expired records out of the indexes.
 *
 * `write()` sends each call's fields as one JSON argument (cheap to send and to take in), and
 * touches only what changed: a state change moves the id between two state indexes and nothing
 * else (the record's fields say which indexes hold it).
 *
 * `write()` makes one Lua call per 50 attempt or state updates (25 enqueues), one after the
 * other (each a few hundred microseconds of the server, so the broker's commands are not held up
 * behind a long script), each update applied atomically, in order.
 * `list()` reads the most selective index (a rare state, then actor, then queue) and scans at most
 * `max(1000, 10 × limit)` entries per page: a page that is short but has a `cursor` means more
 * records may follow, the next page goes on from where the scan stopped.
 */
export class RedisTrackingBackend implements TrackingBackend {
  readonly client: Redis
  readonly prefix: string
  readonly #handle: RedisClientHandle
  readonly #control: RedisTrackingControl
  readonly #scheduling: RedisScheduling
  /** The last write asked for (settled when its calls are done): the next one goes after it. */
  #writes: Promise<void> = Promise.resolve()

  constructor(options: RedisTrackingBackendOptions = {}) {
    const prefix = options.prefix ?? 'tq-tracking'
    if (prefix === '' || prefix === 'dramatiq') {
      throw new ConfigurationError(
        `RedisTrackingBackend needs a prefix of its own, got ${JSON.stringify(prefix)} ` +
          "(tracking keys must stay out of Dramatiq's namespace)",
      )
    }
    this.prefix = prefix
    this.#handle = new RedisClientHandle(options, {
      owner: 'RedisTrackingBackend',
      keyPrefixAdvice: '; set `prefix` instead',
      defaults: { lazyConnect: true },
    })
    this.client = this.#handle.client
    if (this.#handle.owned) {
      // Without a listener ioredis prints every reconnect failure; commands still fail as they should.
      const outage = new OutageLog((options.logger ?? noopLogger).child({ component: 'tracking-redis' }))
      this.client.on('error', (error: unknown) => outage.failed('Redis connection error', errorMeta(error)))
      this.client.on('ready', () => outage.recovered('Redis connection re-established'))
    }
    defineTrackingScripts(this.client)
    this.#control = new RedisTrackingControl(this.client, prefix)
    this.#scheduling = new RedisScheduling(this.client, prefix)
  }

  /** The Redis key of a message's record. */
  recordKey(messageId: string): string {
    return `${this.prefix}:m:${messageId}`
  }

  async write(updates: readonly TrackingUpdate[], retention: number): Promise<void> {
    if (updates.length === 0) return
    if (!Number.isFinite(retention) || retention < 0) {
      throw new InvalidArgumentError(`Tracking retention must be a finite number of ms >= 0, got ${retention}`)
    }
    // Encode everything first: a bad update fails the call before anything is written.
    const calls = writeCalls(this.prefix, updates, retention, Date.now())
    // Writes go out in the order they were asked for, even when one is asked for while another
    // is still going: a later update of a message must not land before an earlier one.
    const sent = this.#writes.then(() => this.#send(calls))
    this.#writes = sent.catch(() => undefined)
    return sent
  }

  async #send(calls: readonly TrackingArg[][]): Promise<void> {
    await this.#handle.verifyDatabase(classifyRedisError)
    try {
      // One call after the other, not pipelined: Redis takes in a pipeline's calls together, and
      // the broker's fetches and acks would wait for them all.
      for (const args of calls) await runTrackingScript(this.client, 'write', args)
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  /**
   * The record, or `undefined`. A key at the record's place that is not a record (not a hash, or
   * fields that do not decode) throws `DecodeError`; `list()` skips such keys.
   */
  async get(messageId: string): Promise<TrackedMessage | undefined> {
    const key = this.recordKey(messageId)
    await this.#handle.verifyDatabase(classifyRedisError)
    let flat: Buffer[]
    try {
      flat = (await this.client.callBuffer('HGETALL', key)) as Buffer[]
    } catch (error) {
      if (isReplyError(error) && (error as Error).message.startsWith('WRONGTYPE')) {
        throw new DecodeError(
          `The tracking record of ${messageId} (Redis key ${key}) is corrupt: not a hash`,
          key,
          error,
        )
      }
      throw classifyRedisError(error)
    }
    return flat.length === 0 ? undefined : decodeRecord(messageId, fieldMap(flat), key)
  }

  async list(query: TrackingQuery = {}): Promise<TrackingPage> {
    const limit = pageSize(query)
    const from = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
    await this.#handle.verifyDatabase(classifyRedisError)
    try {
      return query.search !== undefined && query.search !== ''
        ? await this.#search(query, limit, from)
        : await this.#scan(query, limit, from)
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  async delete(messageId: string): Promise<void> {
    await this.#handle.verifyDatabase(classifyRedisError)
    try {
      await runTrackingScript(this.client, 'delete', [this.prefix, messageId])
    } catch (error) {
      throw classifyRedisError(error)
    }
  }

  /** Close the client if this backend opened it (a given `client` only with `closeClient`), and the cancel subscribers. */
  async close(): Promise<void> {
    this.#control.close()
    await this.#handle.release()
  }

  /** Without a text search, the script filters: whole records come back, one call per 1000 entries scanned. */
  async #scan(query: TrackingQuery, limit: number, from: Cursor | undefined): Promise<TrackingPage> {
    const budget = Math.max(MIN_SCAN, SCAN_PER_ITEM * limit)
    const items: TrackedMessage[] = []
    let position = from
    let scanned = 0
    let returned = 0
    for (;;) {
      const reply = await this.#listCall(query, position, Math.min(SCAN_PER_CALL, budget - scanned), limit - returned)
      const [count, exhausted, more, lastScore, lastId, entries] = reply
      scanned += count
      let lastEntry: Cursor | undefined
      for (const entry of entries) {
        returned++
        lastEntry = entryCursor(entry)
        const record = this.#decodeEntry(lastEntry.messageId, (entry[2] ?? []) as Buffer[])
        if (record && matches(record, query)) items.push(record)
      }
      if (more === 1 && lastEntry) return { items, cursor: encodeCursor(lastEntry) }
      if (more === 1 && position) return { items, cursor: encodeCursor(position) }
      if (exhausted === 1 || count === 0) return { items }
      position = { enqueuedAt: Number(lastScore.toString()), messageId: lastId.toString('utf8') }
      if (scanned >= budget) return { items, cursor: encodeCursor(position) }
    }
  }

  /**
   * With a text search: the script returns the fields it reads of the entries that pass the
   * exact filters, `matches` picks, then one pipeline fetches the records of the page.
   */
  async #search(query: TrackingQuery, limit: number, from: Cursor | undefined): Promise<TrackingPage> {
    const budget = Math.max(MIN_SCAN, SCAN_PER_ITEM * limit)
    const found: Cursor[] = []
    let position = from
    let scanned = 0
    let cursor: Cursor | undefined
    for (;;) {
      const reply = await this.#listCall(query, position, Math.min(SCAN_PER_CALL, budget - scanned), 0)
      const [count, exhausted, , lastScore, lastId, entries] = reply
      scanned += count
      for (const entry of entries) {
        const candidate = searchCandidate(entry)
        if (candidate && matches(candidate, query)) found.push(entryCursor(entry))
      }
      if (found.length > limit) {
        found.length = limit
        cursor = found.at(-1)
        break
      }
      if (exhausted === 1 || count === 0) break
      position = { enqueuedAt: Number(lastScore.toString()), messageId: lastId.toString('utf8') }
      if (scanned >= budget) {
        cursor = position
        break
      }
    }
    const items: TrackedMessage[] = []
    if (found.length > 0) {
      const pipeline = this.client.pipeline()
      for (const { messageId } of found) pipeline.callBuffer('HGETALL', this.recordKey(messageId))
      const replies = (await pipeline.exec()) ?? []
      found.forEach(({ messageId }, i) => {
        const [error, flat] = replies[i] ?? []
        // Gone (expired, deleted) or changed since the scan: left out of the page.
        const record = error ? undefined : this.#decodeEntry(messageId, flat as Buffer[])
        if (record && matches(record, query)) items.push(record)
      })
    }
    return cursor ? { items, cursor: encodeCursor(cursor) } : { items }
  }

  /** One run of the list script on the most selective index of the query. */
  async #listCall(
    query: TrackingQuery,
    position: Cursor | undefined,
    entries: number,
    wanted: number,
  ): Promise<ListReply> {
    const index =
      query.state !== undefined && !UNINDEXED_STATES.has(query.state)
        ? `${this.prefix}:s:${query.state}`
        : query.actor !== undefined
          ? `${this.prefix}:a:${query.actor}`
          : query.queue !== undefined
            ? `${this.prefix}:q:${query.queue}`
            : `${this.prefix}:all`
    const filter = (value: string | undefined): string[] => (value === undefined ? ['0', ''] : ['1', value])
    const search = query.search !== undefined && query.search !== ''
    return (await runTrackingScript(
      this.client,
      'list',
      [
        this.prefix,
        index,
        position === undefined ? '' : String(position.enqueuedAt),
        position?.messageId ?? '',
        String(entries),
        search ? 'search' : 'full',
        String(wanted),
        ...filter(query.queue),
        ...filter(query.actor),
        ...filter(query.state),
      ],
      true,
    )) as ListReply
  }

  /** A record from a listing, or `undefined` for a corrupt one (a listing skips it). */
  #decodeEntry(messageId: string, flat: Buffer[]): TrackedMessage | undefined {
    if (flat.length === 0) return undefined
    try {
      return decodeRecord(messageId, fieldMap(flat), this.recordKey(messageId))
    } catch (error) {
      if (error instanceof DecodeError) return undefined
      throw error
    }
  }

  // Cancellation, deduplication and heartbeats: see RedisTrackingControl for the keys.

  async requestCancel(messageId: string, mode: CancelMode, ttl: number): Promise<void> {
    await this.#handle.verifyDatabase(classifyRedisError)
    await this.#control.requestCancel(messageId, mode, ttl)
  }

  async clearCancel(messageId: string): Promise<void> {
    await this.#handle.verifyDatabase(classifyRedisError)
    await this.#control.clearCancel(messageId)
  }

  /** On a connection of its own (subscriber mode), closed by the subscription or `close()`. */
  async subscribeCancels(listener: (notice: CancelNotice) => void): Promise<CancelSubscription> {
    await this.#handle.verifyDatabase(classifyRedisError)
    return this.#control.subscribeCancels(listener)
  }

  async claimUnique(key: string, messageId: string, ttl: number): Promise<string | undefined> {
    await this.#handle.verifyDatabase(classifyRedisError)
    return this.#control.claimUnique(key, messageId, ttl)
  }

  async releaseUnique(claims: readonly UniqueClaim[]): Promise<void> {
    await this.#handle.verifyDatabase(classifyRedisError)
    await this.#control.releaseUnique(claims)
  }

  async heartbeat(worker: WorkerHeartbeat, ttl: number): Promise<void> {
    await this.#handle.verifyDatabase(classifyRedisError)
    await this.#control.heartbeat(worker, ttl)
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.#control.removeWorker(workerId)
  }

  async workers(): Promise<WorkerHeartbeat[]> {
    await this.#handle.verifyDatabase(classifyRedisError)
    return this.#control.workers()
  }

  async addThroughput(counts: readonly ThroughputCount[]): Promise<void> {
    await this.#handle.verifyDatabase(classifyRedisError)
    await this.#control.addThroughput(counts)
  }

  async throughput(since: number): Promise<ThroughputCount[]> {
    await this.#handle.verifyDatabase(classifyRedisError)
    return this.#control.throughput(since)
  }

  // The Scheduler's leases and schedule marks: see RedisScheduling for the keys.

  async acquireLease(name: string, owner: string, ttl: number): Promise<boolean> {
    await this.#handle.verifyDatabase(classifyRedisError)
    return this.#scheduling.acquireLease(name, owner, ttl)
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.#handle.verifyDatabase(classifyRedisError)
    await this.#scheduling.releaseLease(name, owner)
  }

  async scheduleMarks(ids: readonly string[]): Promise<Map<string, ScheduleMark>> {
    await this.#handle.verifyDatabase(classifyRedisError)
    return this.#scheduling.scheduleMarks(ids)
  }

  async advanceSchedule(id: string, mark: ScheduleMark): Promise<boolean> {
    await this.#handle.verifyDatabase(classifyRedisError)
    return this.#scheduling.advanceSchedule(id, mark)
  }
}

const entryCursor = (entry: Entry): Cursor => ({
  enqueuedAt: Number(entry[1].toString()),
  messageId: entry[0].toString('utf8'),
})

/** What `matches` reads of a record, from a search entry; `undefined` if it does not decode. */
function searchCandidate(entry: Entry): TrackedMessage | undefined {
  const [id, score, state, queue, actor, args, kwargs] = entry as (Buffer | null)[]
  if (!id || !score || !state) return undefined
  try {
    return {
      messageId: id.toString('utf8'),
      actorName: actor?.toString('utf8') ?? '',
      queueName: queue?.toString('utf8') ?? '',
      state: state.toString('utf8') as TrackedMessage['state'],
      args: args ? (JSON.parse(args.toString('utf8')) as unknown[]) : undefined,
      kwargs: kwargs ? (JSON.parse(kwargs.toString('utf8')) as Record<string, unknown>) : undefined,
      argsTruncated: false,
      options: {},
      enqueuedAt: Number(score.toString()),
      updatedAt: 0,
      attempts: [],
    }
  } catch {
    return undefined
  }
}
