import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../errors.ts'
import type { TrackingBackend, TrackingUpdate } from '../tracking/backend.ts'

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
 * from updates in any arrival order, newest-first listings with filters and cursors, retention.
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
      // A stale state update changes nothing either.
      await backend.write([{ kind: 'state', at: t + 1, messageId: id, state: 'dead' }], DAY)
      expect((await backend.get(id))?.state).toBe('running')
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
  })
}
