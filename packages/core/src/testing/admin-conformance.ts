import { afterEach, describe, expect, it } from 'vitest'
import { actor } from '../actor.ts'
import { Admin } from '../admin/admin.ts'
import type { Broker } from '../broker.ts'
import { CancelledError, ConfigurationError, InvalidArgumentError, MessageNotFoundError } from '../errors.ts'
import { currentMessage } from '../middleware/current-message.ts'
import type { Middleware } from '../middleware/middleware.ts'
import { Scheduler } from '../scheduler/scheduler.ts'
import { scheduledMessageId } from '../scheduler/schedule.ts'
import { Retries } from '../middleware/retries.ts'
import type { TrackingBackend } from '../tracking/backend.ts'
import { StubTrackingBackend } from '../tracking/stub.ts'
import { Tracking } from '../tracking/middleware.ts'
import { Worker } from '../worker.ts'
import { uniqueQueueName, waitFor } from './helpers.ts'

export interface AdminConformanceOptions {
  /** Shown in the suite's name. */
  name: string
  /** A fresh broker for one test, with exactly this middleware. */
  createBroker(options: { middleware: Middleware[] }): Broker | Promise<Broker>
  /** After each test; defaults to `flushAll()` then `close()`. */
  cleanup?(broker: Broker): Promise<void>
  /** Multiplier for the suite's timeouts on slow brokers (default 1). */
  timeScale?: number
  /** A fresh tracking backend for one test (default a `StubTrackingBackend`); closed after it. */
  createTrackingBackend?(): TrackingBackend | Promise<TrackingBackend>
}

/** What `Admin` must do on every broker, run against its real server. */
export function adminConformanceSuite(options: AdminConformanceOptions): void {
  const t = (ms: number): number => ms * (options.timeScale ?? 1)

  describe(`admin conformance: ${options.name}`, () => {
    const open: Array<{ broker: Broker; workers: Worker[]; backend: TrackingBackend }> = []
    afterEach(async () => {
      for (const { broker, workers, backend } of open.splice(0)) {
        for (const worker of workers) await worker.stop({ timeout: t(5000) })
        await backend.close?.()
        if (options.cleanup) await options.cleanup(broker)
        else {
          await broker.flushAll()
          await broker.close()
        }
      }
    })
    const setup = async (withTracking = true) => {
      const backend = (await options.createTrackingBackend?.()) ?? new StubTrackingBackend()
      const tracking = new Tracking({ backend, flushInterval: 10 })
      const middleware: Middleware[] = [new Retries({ minBackoff: 1, maxBackoff: 5, maxRetries: 0 })]
      if (withTracking) middleware.push(tracking)
      const broker = await options.createBroker({ middleware })
      const entry = { broker, workers: [] as Worker[], backend }
      open.push(entry)
      const startWorker = async (): Promise<Worker> => {
        const worker = new Worker(broker, { workerTimeout: 100 })
        entry.workers.push(worker)
        await worker.start()
        return worker
      }
      return {
        broker,
        backend,
        tracking,
        admin: new Admin({ broker }),
        queueName: uniqueQueueName('tq_admin'),
        startWorker,
      }
    }
    const stateOf = async (admin: Admin, messageId: string) => (await admin.message(messageId))?.state
    const readyIn = async (admin: Admin, queueName: string) =>
      (await admin.queues()).find((q) => q.name === queueName)?.ready

    it('counts every declared queue: ready, delayed and dead', async () => {
      const { broker, admin, queueName, startWorker } = await setup()
      const other = `${queueName}_other`
      const job = actor(
        'job',
        (fail: boolean) => {
          if (fail) throw new Error('dies')
        },
        { broker, queueName },
      )
      actor('idle', () => undefined, { broker, queueName: other })
      await job.send(false)
      await job.send(false)
      await job.sendWithOptions({ args: [false], delay: 600_000 })
      let last: unknown
      await waitFor(
        async () => {
          const queues = await admin.queues()
          last = queues
          const mine = queues.find((q) => q.name === queueName)
          return mine?.ready === 2 && mine.delayed === 1 && mine.dead === 0
        },
        { timeout: t(10_000), message: '2 ready and 1 delayed' },
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}; last: ${JSON.stringify(last)}`)
      })
      const names = (await admin.queues()).map((q) => q.name)
      expect(names).toContain(queueName)
      expect(names).toContain(other)
      expect(names).toEqual([...names].sort())
      await admin.purge(queueName)
      await job.send(true)
      await startWorker()
      await waitFor(
        async () => {
          const mine = (await admin.queues()).find((q) => q.name === queueName)
          return mine?.ready === 0 && mine.delayed === 0 && mine.dead === 1
        },
        { timeout: t(15_000), message: 'the failed message dead, the purged ones gone' },
      )
    })

    it('lists the tracked messages newest first, by state, and reads one', async () => {
      const { broker, tracking, admin, queueName, startWorker } = await setup()
      const job = actor(
        'job',
        (fail: boolean) => {
          if (fail) throw new Error('dies')
        },
        { broker, queueName },
      )
      const ok = await job.send(false)
      const bad = await job.send(true)
      await startWorker()
      await waitFor(
        async () =>
          (await admin.message(bad.messageId))?.state === 'dead' &&
          (await admin.message(ok.messageId))?.state === 'succeeded',
        { timeout: t(15_000), message: 'one dead, one succeeded' },
      )
      await tracking.flush()
      const page = await admin.messages({ queue: queueName })
      expect(page.items.map((m) => m.messageId).sort()).toEqual([bad.messageId, ok.messageId].sort())
      const times = page.items.map((m) => m.enqueuedAt)
      expect(times).toEqual([...times].sort((a, b) => b - a))
      const dead = await admin.messages({ queue: queueName, state: 'dead' })
      expect(dead.items.map((m) => m.messageId)).toEqual([bad.messageId])
      expect(dead.items[0]?.attempts[0]?.error?.message).toBe('dies')
      expect(await admin.message('no-such-message')).toBeUndefined()
    })

    it('redrives dead letters back to their queue, each once, with the retry count reset', async () => {
      const { broker, admin, queueName, startWorker } = await setup()
      let failing = true
      const runs = new Map<number, number>()
      const job = actor(
        'job',
        (i: number) => {
          runs.set(i, (runs.get(i) ?? 0) + 1)
          if (failing) throw new Error('dies')
        },
        { broker, queueName },
      )
      for (let i = 0; i < 5; i++) await job.send(i)
      const worker = await startWorker()
      await waitFor(async () => (await admin.queues()).find((q) => q.name === queueName)?.dead === 5, {
        timeout: t(15_000),
        message: '5 dead letters',
      })
      await worker.stop({ timeout: t(5000) })
      expect(await admin.redrive(queueName, { limit: 2 })).toBe(2)
      let last: unknown
      await waitFor(
        async () => {
          const mine = (await admin.queues()).find((q) => q.name === queueName)
          last = mine
          return mine?.ready === 2 && mine.dead === 3
        },
        { timeout: t(15_000), message: '2 back in the queue, 3 still dead' },
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}; last: ${JSON.stringify(last)}`)
      })
      expect(await admin.redrive(queueName)).toBe(3)
      failing = false
      await startWorker()
      await waitFor(() => [...runs.values()].every((n) => n === 2) && runs.size === 5, {
        timeout: t(15_000),
        message: 'every redriven message run once more',
      })
      await waitFor(
        async () => {
          const mine = (await admin.queues()).find((q) => q.name === queueName)
          return mine?.ready === 0 && mine.dead === 0
        },
        { timeout: t(15_000), message: 'nothing left' },
      )
      // Tracking follows: the redrive's enqueue is not recorded after the run it led to.
      await waitFor(
        async () => {
          const page = await admin.messages({ queue: queueName })
          return page.items.length === 5 && page.items.every((m) => m.state === 'succeeded')
        },
        { timeout: t(15_000), message: 'every redriven message recorded succeeded' },
      )
      expect(await admin.redrive(queueName)).toBe(0)
    })

    it('says what is missing: no tracking, an undeclared queue, no id', async () => {
      const { admin } = await setup(false)
      await expect(admin.messages()).rejects.toBeInstanceOf(ConfigurationError)
      await expect(admin.purge('never_declared_here')).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(admin.message('')).rejects.toBeInstanceOf(InvalidArgumentError)
    })
    it('cancels a waiting message: recorded cancelled at once, skipped (acked, never run) when delivered', async () => {
      const { broker, tracking, admin, queueName, startWorker } = await setup()
      const ran: string[] = []
      const job = actor('job', (name: string) => void ran.push(name), { broker, queueName })
      const queued = await job.send('queued')
      await tracking.flush()
      expect(await admin.cancel(queued.messageId)).toEqual({
        messageId: queued.messageId,
        cancelled: true,
        state: 'queued',
      })
      expect(await stateOf(admin, queued.messageId)).toBe('cancelled')
      // A worker started after the cancel, and a delayed message cancelled while it runs.
      await startWorker()
      const delayed = await job.sendWithOptions({ args: ['delayed'], delay: t(1500) })
      await tracking.flush()
      expect((await admin.cancel(delayed.messageId)).state).toBe('delayed')
      const after = await job.sendWithOptions({ args: ['after'], delay: t(2000) })
      await waitFor(async () => (await stateOf(admin, after.messageId)) === 'succeeded', {
        timeout: t(15_000),
        message: 'the message sent after ran',
      })
      expect(ran).toEqual(['after'])
      expect(await stateOf(admin, queued.messageId)).toBe('cancelled')
      expect(await stateOf(admin, delayed.messageId)).toBe('cancelled')
      await waitFor(async () => (await readyIn(admin, queueName)) === 0, { timeout: t(10_000), message: 'acked' })
      expect((await admin.queues()).find((q) => q.name === queueName)?.dead).toBe(0)
    })

    it("cancels a running message: its actor's signal fires with CancelledError within 1 s, and it is not retried", async () => {
      const { broker, tracking, admin, queueName, startWorker } = await setup()
      let runs = 0
      let reason: unknown
      const job = actor(
        'job',
        () => {
          runs++
          const signal = currentMessage()?.signal as AbortSignal
          return new Promise((_resolve, reject) => {
            signal.addEventListener('abort', () => {
              reason = signal.reason
              reject(signal.reason as Error)
            })
          })
        },
        { broker, queueName, maxRetries: 5 },
      )
      const message = await job.send()
      await startWorker()
      await waitFor(async () => (await stateOf(admin, message.messageId)) === 'running', {
        timeout: t(10_000),
        message: 'running',
      })
      const asked = Date.now()
      expect(await admin.cancel(message.messageId)).toMatchObject({ cancelled: true, state: 'running' })
      await waitFor(() => reason !== undefined, { timeout: t(1000), message: 'the signal fired within 1 s' })
      expect(Date.now() - asked).toBeLessThan(t(1000))
      expect(reason).toBeInstanceOf(CancelledError)
      await waitFor(async () => (await stateOf(admin, message.messageId)) === 'cancelled', {
        timeout: t(10_000),
        message: 'recorded cancelled',
      })
      await tracking.flush()
      const record = await admin.message(message.messageId)
      expect(record?.attempts.map((a) => a.error?.type)).toEqual(['CancelledError'])
      await new Promise((resolve) => setTimeout(resolve, t(200)))
      expect(runs).toBe(1)
      const counts = (await admin.queues()).find((q) => q.name === queueName)
      expect(counts).toMatchObject({ ready: 0, delayed: 0, dead: 0 })
    })

    it('says a finished message cannot be cancelled, and refuses unknown ids', async () => {
      const { broker, admin, queueName, startWorker } = await setup()
      const job = actor('job', () => 'done', { broker, queueName })
      const message = await job.send()
      await startWorker()
      await waitFor(async () => (await stateOf(admin, message.messageId)) === 'succeeded', {
        timeout: t(10_000),
        message: 'succeeded',
      })
      expect(await admin.cancel(message.messageId)).toEqual({
        messageId: message.messageId,
        cancelled: false,
        state: 'succeeded',
      })
      await expect(admin.cancel('no-such-message')).rejects.toBeInstanceOf(MessageNotFoundError)
      await expect(admin.retry('no-such-message')).rejects.toBeInstanceOf(MessageNotFoundError)
      expect(await admin.delete('no-such-message')).toBe(false)
    })

    it('deletes a message: its record goes, and a waiting one never runs', async () => {
      const { broker, tracking, admin, queueName, startWorker } = await setup()
      const ran: string[] = []
      const job = actor('job', (name: string) => void ran.push(name), { broker, queueName })
      const doomed = await job.send('doomed')
      const kept = await job.send('kept')
      await tracking.flush()
      expect(await admin.delete(doomed.messageId)).toBe(true)
      expect(await admin.message(doomed.messageId)).toBeUndefined()
      await startWorker()
      await waitFor(async () => (await stateOf(admin, kept.messageId)) === 'succeeded', {
        timeout: t(10_000),
        message: 'the kept one ran',
      })
      await waitFor(async () => (await readyIn(admin, queueName)) === 0, { timeout: t(10_000), message: 'drained' })
      await tracking.flush()
      expect(ran).toEqual(['kept'])
      expect(await admin.message(doomed.messageId)).toBeUndefined()
    })

    it('retries a dead message from its tracked copy, and refuses one still waiting', async () => {
      const { broker, tracking, admin, queueName, startWorker } = await setup()
      let failing = true
      let runs = 0
      const job = actor(
        'job',
        (n: number) => {
          runs++
          if (failing) throw new Error('dies')
          return n
        },
        { broker, queueName },
      )
      const message = await job.send(7)
      await startWorker()
      await waitFor(async () => (await stateOf(admin, message.messageId)) === 'dead', {
        timeout: t(10_000),
        message: 'dead',
      })
      failing = false
      const again = await admin.retry(message.messageId)
      expect(again.messageId).toBe(message.messageId)
      expect(again.args).toEqual([7])
      expect(again.options.retries).toBeUndefined()
      await waitFor(async () => (await stateOf(admin, message.messageId)) === 'succeeded', {
        timeout: t(10_000),
        message: 'succeeded on the retry',
      })
      expect(runs).toBe(2)
      const waiting = await job.sendWithOptions({ args: [1], delay: 600_000 })
      await tracking.flush()
      await expect(admin.retry(waiting.messageId)).rejects.toBeInstanceOf(InvalidArgumentError)
    })

    it('lists the running workers from their heartbeats, with queues and counts', async () => {
      const { broker, admin, queueName, startWorker } = await setup()
      actor('job', () => undefined, { broker, queueName })
      const worker = await startWorker()
      const workers = await admin.workers()
      expect(workers).toHaveLength(1)
      expect(workers[0]).toMatchObject({ pid: process.pid, concurrency: worker.concurrency, inFlight: 0 })
      expect(workers[0]?.queues).toContain(queueName)
      expect(workers[0]?.lastSeen).toBeGreaterThan(Date.now() - 10_000)
      await worker.stop({ timeout: t(5000) })
      expect(await admin.workers()).toEqual([])
    })

    it('counts the attempts finished per minute and queue, from the workers', async () => {
      const { broker, admin, queueName, startWorker } = await setup()
      const job = actor(
        'job',
        (fail: boolean) => {
          if (fail) throw new Error('dies')
        },
        { broker, queueName },
      )
      for (let i = 0; i < 5; i++) await job.send(i === 0)
      const worker = await startWorker()
      await waitFor(async () => (await admin.queues()).find((q) => q.name === queueName)?.dead === 1, {
        timeout: t(15_000),
        message: 'one dead',
      })
      await waitFor(async () => (await readyIn(admin, queueName)) === 0, { timeout: t(10_000), message: 'drained' })
      // A stopping worker sends what it counted.
      await worker.stop({ timeout: t(5000) })
      const mine = (await admin.throughput()).filter((c) => c.queue === queueName)
      expect(mine.reduce((sum, c) => sum + c.processed, 0)).toBe(5)
      expect(mine.reduce((sum, c) => sum + c.failed, 0)).toBe(1)
      await expect(admin.throughput({ minutes: 0 })).rejects.toBeInstanceOf(InvalidArgumentError)
    })

    it('deduplicates: 50 concurrent sends of one key enqueue one message, and the key frees when it finishes', async () => {
      const { broker, admin, queueName, startWorker } = await setup()
      let runs = 0
      const job = actor('job', (n: number) => void (runs += n), { broker, queueName })
      const sent = await Promise.all(
        Array.from({ length: 50 }, () => job.sendWithOptions({ args: [1], uniqueKey: 'report-42', uniqueFor: 60_000 })),
      )
      const ids = new Set(sent.map((m) => m.messageId))
      expect(ids.size).toBe(1)
      await waitFor(async () => (await readyIn(admin, queueName)) === 1, { timeout: t(10_000), message: '1 ready' })
      await startWorker()
      const [id] = [...ids]
      await waitFor(async () => (await stateOf(admin, id as string)) === 'succeeded', {
        timeout: t(10_000),
        message: 'the one message ran',
      })
      expect(runs).toBe(1)
      // Released on finish: the next send enqueues a new message.
      await waitFor(
        async () => {
          const next = await job.sendWithOptions({ args: [1], uniqueKey: 'report-42', uniqueFor: 60_000 })
          return next.messageId !== id
        },
        { timeout: t(5000), message: 'the key released' },
      )
      await waitFor(() => runs === 2, { timeout: t(10_000), message: 'the second message ran' })
      await expect(job.sendWithOptions({ args: [1], uniqueKey: 'no-ttl' })).rejects.toBeInstanceOf(InvalidArgumentError)
    })

    it('schedules: two schedulers, one leader, every due time run once by a worker, none skipped', async () => {
      const { broker, backend, queueName, startWorker } = await setup()
      const ran: string[] = []
      const job = actor('scheduled', () => void ran.push(currentMessage()?.messageId ?? ''), { broker, queueName })
      const every = 200
      const scheduleId = `every-${queueName}`
      const schedulers = [0, 1].map(() =>
        new Scheduler({ broker, backend, name: queueName, lease: t(1000) }).add(scheduleId, job, {
          every,
          missed: 'all',
        }),
      )
      await startWorker()
      for (const scheduler of schedulers) await scheduler.start()
      try {
        await waitFor(() => new Set(ran).size >= 5, { timeout: t(10_000), message: 'five scheduled runs' })
      } finally {
        for (const scheduler of schedulers) await scheduler.stop()
      }
      const mark = (await backend.scheduleMarks([scheduleId])).get(scheduleId)
      const last = mark?.lastDue ?? 0
      await waitFor(() => ran.includes(mark?.lastMessageId ?? ''), { timeout: t(5000), message: 'the last run' })
      // The runs are the due times back from the last one, each once.
      const runs = new Set(ran)
      expect(runs.size).toBe(ran.length)
      let chain = 0
      while (runs.has(scheduledMessageId(scheduleId, last - chain * every))) chain++
      expect(chain).toBe(runs.size)
    })
  })
}
