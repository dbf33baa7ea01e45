import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../errors.ts'
import type { CancelNotice, TrackingBackend, TrackingUpdate, WorkerHeartbeat } from '../tracking/backend.ts'
import { waitFor } from './helpers.ts'

export interface TrackingBackendConformanceOptions {
  /** Shown in the suite's name. */
  name: string
  /** A fresh, empty backend for one test (its own namespace). */
  createBackend(): TrackingBackend | Promise<TrackingBackend>
  /** After each test; defaults to `close()`. */
  cleanup?(backend: TrackingBackend): Promise<void>
}

const DAY = 86_400_000

/**
 * The behaviours every `TrackingBackend` must have (run against its real server): records built
 * from updates in any arrival order, newest-first listings with filters and cursors, retention;
 * the cancel channel, atomic unique keys and worker heartbeats.
 */
export function trackingBackendConformanceSuite(options: TrackingBackendConformanceOptions): void {
  describe(`tracking backend conformance: ${options.name}`, () => {
    const open: TrackingBackend[] = []
    afterEach(async () => {
      for (const backend of open.splice(0)) {
        if (options.cleanup) await options.cleanup(backend)
        else await backend.close?.()
      }
    })
    const create = async (): Promise<TrackingBackend> => {
      const backend = await options.createBackend()
      open.push(backend)
      return backend
    }
    const body = (text: string): Uint8Array => new TextEncoder().encode(text)
    const enqueued = (
      messageId: string,
      at: number,
      extra: Partial<Extract<TrackingUpdate, { kind: 'enqueued' }>> = {},
    ): TrackingUpdate => ({
      kind: 'enqueued',
      at,
      messageId,
      actorName: 'send_email',
      queueName: 'mail',
      state: 'queued',
      args: ['ada@example.com', { n: 1 }],
      kwargs: { urgent: true },
      argsTruncated: false,
      options: { maxRetries: 3 },
      eta: undefined,
      body: body(`{"message_id":"${messageId}"}`),
      ...extra,
    })

    it('stores an enqueued message with every field, and returns undefined for an unknown id', async () => {
      const backend = await create()
      const id = randomUUID()
      const at = Date.now()
      await backend.write([enqueued(id, at)], DAY)
      const record = await backend.get(id)
      expect(record).toMatchObject({
        messageId: id,
        actorName: 'send_email',
        queueName: 'mail',
        state: 'queued',
        args: ['ada@example.com', { n: 1 }],
        kwargs: { urgent: true },
        argsTruncated: false,
        options: { maxRetries: 3 },
        enqueuedAt: at,
        updatedAt: at,
        attempts: [],
      })
      expect(Buffer.from(record?.body ?? []).toString()).toBe(`{"message_id":"${id}"}`)
      expect(await backend.get(randomUUID())).toBeUndefined()
    })

    it('follows a message through a failed attempt, a retry and a success', async () => {
      const backend = await create()
      const id = randomUUID()
      const t = Date.now()
      const first = { number: 1, workerId: 'host:1:1', startedAt: t + 1 }
      await backend.write(
        [
          enqueued(id, t),
          { kind: 'attempt', at: t + 1, messageId: id, attempt: first, state: 'running' },
          {
            kind: 'attempt',
            at: t + 2,
            messageId: id,
            attempt: {
              ...first,
              finishedAt: t + 2,
              error: { type: 'TypeError', message: 'boom', stack: 'TypeError: boom' },
            },
          },
          enqueued(id, t + 3, { state: 'retrying', eta: t + 1000, options: { maxRetries: 3, retries: 1 } }),
        ],
        DAY,
      )
      let record = await backend.get(id)
      expect(record?.state).toBe('retrying')
      expect(record?.eta).toBe(t + 1000)
      expect(record?.enqueuedAt).toBe(t)
      expect(record?.options).toEqual({ maxRetries: 3, retries: 1 })
      expect(record?.attempts).toEqual([
        {
          number: 1,
          workerId: 'host:1:1',
          startedAt: t + 1,
          finishedAt: t + 2,
          error: { type: 'TypeError', message: 'boom', stack: 'TypeError: boom' },
        },
      ])
      const second = { number: 2, workerId: 'host:2:1', startedAt: t + 1001 }
      await backend.write([{ kind: 'attempt', at: t + 1001, messageId: id, attempt: second, state: 'running' }], DAY)
      record = await backend.get(id)
      expect(record?.state).toBe('running')
      expect(record?.workerId).toBe('host:2:1')
      await backend.write(
        [
          { kind: 'attempt', at: t + 1002, messageId: id, attempt: { ...second, finishedAt: t + 1002 } },
          { kind: 'state', at: t + 1002, messageId: id, state: 'succeeded' },
          { kind: 'progress', at: t + 1002, messageId: id, progress: { done: 10, of: 10 } },
        ],
        DAY,
      )
      record = await backend.get(id)
      expect(record?.state).toBe('succeeded')
      expect(record?.workerId).toBeUndefined()
      expect(record?.updatedAt).toBe(t + 1002)
      expect(record?.progress).toEqual({ done: 10, of: 10 })
      expect(record?.attempts.map((a) => [a.number, a.finishedAt])).toEqual([
        [1, t + 2],
        [2, t + 1002],
      ])
    })

    it('builds the same record when the worker reports before the producer', async () => {
      const backend = await create()
      const id = randomUUID()
      const t = Date.now()
      const attempt = { number: 1, workerId: 'host:1:1', startedAt: t + 5 }
      // The worker's write lands first; the producer's enqueued update (older) must not undo it.
      await backend.write([{ kind: 'attempt', at: t + 5, messageId: id, attempt, state: 'running' }], DAY)
      await backend.write([enqueued(id, t)], DAY)
      const record = await backend.get(id)
      expect(record?.state).toBe('running')
      expect(record?.actorName).toBe('send_email')
      expect(record?.enqueuedAt).toBe(t)
      expect(record?.workerId).toBe('host:1:1')
      // It still takes the message's options and body (a retry re-sends that body).
      expect(record?.options).toEqual({ maxRetries: 3 })
      expect(new TextDecoder().decode(record?.body)).toBe(`{"message_id":"${id}"}`)
      // A stale state update changes nothing either.
      await backend.write([{ kind: 'state', at: t + 1, messageId: id, state: 'dead' }], DAY)
      expect((await backend.get(id))?.state).toBe('running')
    })

    it('keeps the state further along when two updates carry the same millisecond', async () => {
      const backend = await create()
      const id = randomUUID()
      const t = Date.now()
      const attempt = { number: 1, workerId: 'host:1:1', startedAt: t }
      // The worker started it in the millisecond its producer's enqueue (recorded late) began.
      await backend.write([{ kind: 'attempt', at: t, messageId: id, attempt, state: 'running' }], DAY)
      await backend.write([enqueued(id, t)], DAY)
      expect((await backend.get(id))?.state).toBe('running')
      // Its retry, enqueued in the same millisecond as the failed attempt, moves it on.
      await backend.write([enqueued(id, t, { state: 'retrying', eta: t + 1000 })], DAY)
      expect((await backend.get(id))?.state).toBe('retrying')
      await backend.write([{ kind: 'state', at: t, messageId: id, state: 'succeeded' }], DAY)
      expect((await backend.get(id))?.state).toBe('succeeded')
    })

    it('lists newest first, filters by queue, state, actor and text, and pages with a cursor', async () => {
      const backend = await create()
      const t = Date.now()
      const ids: string[] = []
      const updates: TrackingUpdate[] = []
      for (let i = 0; i < 25; i++) {
        const id = `m-${String(i).padStart(2, '0')}-${randomUUID()}`
        ids.push(id)
        updates.push(
          enqueued(id, t + i, {
            queueName: i % 2 === 0 ? 'even' : 'odd',
            actorName: i % 5 === 0 ? 'report' : 'send_email',
            args: [`user-${i}@example.com`],
            state: i % 3 === 0 ? 'delayed' : 'queued',
          }),
        )
      }
      await backend.write(updates, DAY)
      const all = await backend.list({ limit: 500 })
      expect(all.items.map((r) => r.messageId)).toEqual([...ids].reverse())
      expect(all.cursor).toBeUndefined()

      const seen: string[] = []
      let cursor: string | undefined
      let pages = 0
      do {
        const page = await backend.list({ limit: 7, ...(cursor ? { cursor } : {}) })
        expect(page.items.length).toBeLessThanOrEqual(7)
        seen.push(...page.items.map((r) => r.messageId))
        cursor = page.cursor
        pages++
      } while (cursor && pages < 10)
      expect(seen).toEqual([...ids].reverse())

      const odd = await backend.list({ queue: 'odd', limit: 500 })
      expect(odd.items.every((r) => r.queueName === 'odd')).toBe(true)
      expect(odd.items).toHaveLength(12)
      const delayed = await backend.list({ state: 'delayed', limit: 500 })
      expect(delayed.items.map((r) => r.messageId)).toEqual(ids.filter((_, i) => i % 3 === 0).reverse())
      const reports = await backend.list({ actor: 'report', queue: 'even', limit: 500 })
      expect(reports.items.map((r) => r.messageId)).toEqual([ids[20], ids[10], ids[0]])
      const found = await backend.list({ search: 'USER-17@' })
      expect(found.items.map((r) => r.messageId)).toEqual([ids[17]])
      const byId = await backend.list({ search: ids[4]?.slice(0, 20) ?? '' })
      expect(byId.items.map((r) => r.messageId)).toEqual([ids[4]])
    })

    it('moves a record between state listings as its state changes', async () => {
      const backend = await create()
      const id = randomUUID()
      const t = Date.now()
      await backend.write([enqueued(id, t)], DAY)
      expect((await backend.list({ state: 'queued' })).items.map((r) => r.messageId)).toEqual([id])
      await backend.write([{ kind: 'state', at: t + 1, messageId: id, state: 'dead' }], DAY)
      expect((await backend.list({ state: 'queued' })).items).toEqual([])
      expect((await backend.list({ state: 'dead' })).items.map((r) => r.messageId)).toEqual([id])
    })

    it('refuses a bad cursor, an unknown state and a bad limit with InvalidArgumentError', async () => {
      const backend = await create()
      await expect(backend.list({ cursor: 'not-a-cursor' })).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(backend.list({ state: 'lost' as never })).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(backend.list({ limit: 0 })).rejects.toBeInstanceOf(InvalidArgumentError)
    })

    it('forgets deleted messages and ones not updated within the retention', async () => {
      const backend = await create()
      const now = Date.now()
      const old = randomUUID()
      const fresh = randomUUID()
      const gone = randomUUID()
      await backend.write([enqueued(old, now - 10_000), enqueued(fresh, now), enqueued(gone, now)], 5_000)
      await backend.delete(gone)
      expect(await backend.get(old)).toBeUndefined()
      expect(await backend.get(gone)).toBeUndefined()
      expect((await backend.get(fresh))?.messageId).toBe(fresh)
      expect((await backend.list()).items.map((r) => r.messageId)).toEqual([fresh])
    })

    it('takes a batch of 2000 updates in one write', async () => {
      const backend = await create()
      const t = Date.now()
      const updates: TrackingUpdate[] = []
      for (let i = 0; i < 1000; i++) {
        const id = `bulk-${i}-${randomUUID()}`
        updates.push(enqueued(id, t), { kind: 'state', at: t + 1, messageId: id, state: 'succeeded' })
      }
      await backend.write(updates, DAY)
      const page = await backend.list({ state: 'succeeded', limit: 500 })
      expect(page.items).toHaveLength(500)
      expect(page.cursor).toBeDefined()
    })
    it('carries cancels to every subscriber, and hands the ones in force to a new one', async () => {
      const backend = await create()
      const heardA: CancelNotice[] = []
      const heardB: CancelNotice[] = []
      const a = await backend.subscribeCancels((notice) => heardA.push(notice))
      const b = await backend.subscribeCancels((notice) => heardB.push(notice))
      try {
        expect(a.pending.size).toBe(0)
        const id = randomUUID()
        const gone = randomUUID()
        await backend.requestCancel(id, 'cancel', DAY)
        await backend.requestCancel(gone, 'delete', DAY)
        await waitFor(() => heardA.length === 2 && heardB.length === 2, { timeout: 5000, message: 'both notices' })
        expect(heardA).toEqual([
          { messageId: id, mode: 'cancel' },
          { messageId: gone, mode: 'delete' },
        ])
        const late = await backend.subscribeCancels(() => undefined)
        expect(new Map(late.pending)).toEqual(
          new Map([
            [id, 'cancel'],
            [gone, 'delete'],
          ]),
        )
        await late.close()
        await backend.clearCancel(id)
        await waitFor(() => heardA.length === 3, { timeout: 5000, message: 'the clear notice' })
        expect(heardA[2]).toEqual({ messageId: id, mode: 'clear' })
        const after = await backend.subscribeCancels(() => undefined)
        expect([...after.pending.keys()]).toEqual([gone])
        await after.close()
        // A closed subscription hears nothing more.
        await b.close()
        await backend.requestCancel(randomUUID(), 'cancel', DAY)
        await waitFor(() => heardA.length === 4, { timeout: 5000, message: 'a fourth notice' })
        expect(heardB).toHaveLength(3)
      } finally {
        await a.close()
        await b.close()
      }
    })

    it('lets a cancel lapse after its ttl', async () => {
      const backend = await create()
      await backend.requestCancel(randomUUID(), 'cancel', 50)
      await new Promise((resolve) => setTimeout(resolve, 120))
      const subscription = await backend.subscribeCancels(() => undefined)
      expect(subscription.pending.size).toBe(0)
      await subscription.close()
    })

    it('gives a unique key to exactly one of 50 concurrent claims, until its holder releases it', async () => {
      const backend = await create()
      const key = `job:${randomUUID()}`
      const ids = Array.from({ length: 50 }, () => randomUUID())
      const replies = await Promise.all(ids.map((id) => backend.claimUnique(key, id, DAY)))
      const winners = ids.filter((_, i) => replies[i] === undefined)
      expect(winners).toHaveLength(1)
      const holder = winners[0] as string
      expect(new Set(replies.filter((r) => r !== undefined))).toEqual(new Set([holder]))
      // The holder claiming again keeps it; another is told who holds it.
      expect(await backend.claimUnique(key, holder, DAY)).toBeUndefined()
      expect(await backend.claimUnique(key, 'someone-else', DAY)).toBe(holder)
      // Only the holder releases it.
      await backend.releaseUnique([{ key, messageId: 'someone-else' }])
      expect(await backend.claimUnique(key, 'someone-else', DAY)).toBe(holder)
      await backend.releaseUnique([{ key, messageId: holder }])
      expect(await backend.claimUnique(key, 'next', DAY)).toBeUndefined()
    })

    it('releases a unique key after its ttl at the latest', async () => {
      const backend = await create()
      const key = `job:${randomUUID()}`
      expect(await backend.claimUnique(key, 'first', 50)).toBeUndefined()
      expect(await backend.claimUnique(key, 'second', 50)).toBe('first')
      await new Promise((resolve) => setTimeout(resolve, 120))
      expect(await backend.claimUnique(key, 'second', DAY)).toBeUndefined()
    })

    it('lists workers by their heartbeats, until removed or their ttl passes', async () => {
      const backend = await create()
      const beat = (id: string): WorkerHeartbeat => ({
        id,
        host: 'host-a',
        pid: 42,
        queues: ['default', 'mail'],
        concurrency: 8,
        inFlight: 3,
        processed: 10,
        failed: 1,
        startedAt: Date.now() - 1000,
        lastSeen: Date.now(),
      })
      const a = `a-${randomUUID()}`
      const b = `b-${randomUUID()}`
      const c = `c-${randomUUID()}`
      await backend.heartbeat(beat(a), DAY)
      await backend.heartbeat(beat(b), DAY)
      await backend.heartbeat(beat(c), 50)
      expect((await backend.workers()).map((w) => w.id)).toEqual([a, b, c])
      const { startedAt: _s, lastSeen: _l, ...fields } = beat(a)
      expect((await backend.workers())[0]).toMatchObject(fields)
      await backend.removeWorker(b)
      await new Promise((resolve) => setTimeout(resolve, 120))
      expect((await backend.workers()).map((w) => w.id)).toEqual([a])
    })
    it('adds up per-minute throughput counts and returns the minutes asked for', async () => {
      const backend = await create()
      const minute = Math.floor(Date.now() / 60_000) * 60_000
      const queue = `q_${randomUUID().slice(0, 8)}`
      await backend.addThroughput([
        { minute, queue, processed: 3, failed: 1 },
        { minute: minute - 60_000, queue, processed: 2, failed: 0 },
        { minute: minute - 30 * 60_000, queue, processed: 9, failed: 9 },
      ])
      await backend.addThroughput([{ minute, queue, processed: 4, failed: 2 }])
      const mine = (await backend.throughput(minute - 5 * 60_000)).filter((c) => c.queue === queue)
      expect(mine).toEqual([
        { minute: minute - 60_000, queue, processed: 2, failed: 0 },
        { minute, queue, processed: 7, failed: 3 },
      ])
      expect((await backend.throughput(minute - 60 * 60_000)).filter((c) => c.queue === queue)).toHaveLength(3)
    })

    it('gives a lease to exactly one of 20 concurrent owners, extends it for its owner, frees it on release or after its ttl', async () => {
      const backend = await create()
      const name = `lease-${randomUUID()}`
      const owners = Array.from({ length: 20 }, (_, i) => `owner-${i}`)
      const got = await Promise.all(owners.map((owner) => backend.acquireLease(name, owner, DAY)))
      expect(got.filter(Boolean)).toHaveLength(1)
      const holder = owners[got.indexOf(true)] as string
      const other = owners.find((owner) => owner !== holder) as string
      expect(await backend.acquireLease(name, holder, 80)).toBe(true)
      expect(await backend.acquireLease(name, other, DAY)).toBe(false)
      // Only the holder gives it up.
      await backend.releaseLease(name, other)
      expect(await backend.acquireLease(name, other, DAY)).toBe(false)
      await backend.releaseLease(name, holder)
      expect(await backend.acquireLease(name, other, 50)).toBe(true)
      // Not extended: it lapses, and another takes it.
      await new Promise((resolve) => setTimeout(resolve, 120))
      expect(await backend.acquireLease(name, holder, DAY)).toBe(true)
    })

    it('stores schedule marks that only move forward, atomically', async () => {
      const backend = await create()
      const id = `schedule-${randomUUID()}`
      const absent = `schedule-${randomUUID()}`
      expect(await backend.scheduleMarks([id, absent])).toEqual(new Map())
      const t = Date.now()
      const mark = { through: t, lastDue: t, lastMessageId: randomUUID(), lastSentAt: t + 3 }
      expect(await backend.advanceSchedule(id, mark)).toBe(true)
      expect(await backend.scheduleMarks([id, absent])).toEqual(new Map([[id, mark]]))
      // As far, or behind: refused.
      expect(await backend.advanceSchedule(id, { through: t })).toBe(false)
      expect(await backend.advanceSchedule(id, { through: t - 1000 })).toBe(false)
      expect((await backend.scheduleMarks([id])).get(id)).toEqual(mark)
      // Concurrent advances to the same due time: one wins.
      const next = Array.from({ length: 20 }, (_, i) => ({
        through: t + 500,
        lastDue: t + 500,
        lastMessageId: `m-${i}`,
      }))
      const stored = await Promise.all(next.map((m) => backend.advanceSchedule(id, m)))
      expect(stored.filter(Boolean)).toHaveLength(1)
      expect((await backend.scheduleMarks([id])).get(id)).toEqual(next[stored.indexOf(true)])
      // A mark without a sent message (passed over).
      expect(await backend.advanceSchedule(id, { through: t + 1000 })).toBe(true)
      expect((await backend.scheduleMarks([id])).get(id)).toEqual({ through: t + 1000 })
    })
  })
}
