import { afterEach, describe, expect, it } from 'vitest'
import { actor } from '../actor.ts'
import { Admin } from '../admin/admin.ts'
import type { Broker } from '../broker.ts'
import { ConfigurationError, InvalidArgumentError } from '../errors.ts'
import type { Middleware } from '../middleware/middleware.ts'
import { Retries } from '../middleware/retries.ts'
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
}

/** What `Admin` must do on every broker, run against its real server. */
export function adminConformanceSuite(options: AdminConformanceOptions): void {
  const t = (ms: number): number => ms * (options.timeScale ?? 1)

  describe(`admin conformance: ${options.name}`, () => {
    const open: Array<{ broker: Broker; workers: Worker[] }> = []
    afterEach(async () => {
      for (const { broker, workers } of open.splice(0)) {
        for (const worker of workers) await worker.stop({ timeout: t(5000) })
        if (options.cleanup) await options.cleanup(broker)
        else {
          await broker.flushAll()
          await broker.close()
        }
      }
    })
    const setup = async (withTracking = true) => {
      const tracking = new Tracking({ backend: new StubTrackingBackend() })
      const middleware: Middleware[] = [new Retries({ minBackoff: 1, maxBackoff: 5, maxRetries: 0 })]
      if (withTracking) middleware.push(tracking)
      const broker = await options.createBroker({ middleware })
      const entry = { broker, workers: [] as Worker[] }
      open.push(entry)
      const startWorker = async (): Promise<Worker> => {
        const worker = new Worker(broker, { workerTimeout: 100 })
        entry.workers.push(worker)
        await worker.start()
        return worker
      }
      return { broker, tracking, admin: new Admin({ broker }), queueName: uniqueQueueName('tq_admin'), startWorker }
    }

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
      expect(await admin.redrive(queueName)).toBe(0)
    })

    it('says what is missing: no tracking, an undeclared queue, no id', async () => {
      const { admin } = await setup(false)
      await expect(admin.messages()).rejects.toBeInstanceOf(ConfigurationError)
      await expect(admin.purge('never_declared_here')).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(admin.message('')).rejects.toBeInstanceOf(InvalidArgumentError)
    })
  })
}
