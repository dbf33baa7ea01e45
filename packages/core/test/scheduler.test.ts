// The Scheduler with a controllable clock (cron, every, time zones, DST, missed and overlap
// policies, leader changes) on the StubBroker and a StubTrackingBackend, and its loop on the
// system clock.
import { afterEach, describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  Scheduler,
  StubBroker,
  StubTrackingBackend,
  Tracking,
  Worker,
  actor,
  type Message,
  type Middleware,
  type SchedulerClock,
} from '../src/index.ts'
import { createCapturingLogger, waitFor } from '../src/testing/index.ts'

/** A clock that moves only when told; sleeps resolve when it passes their deadline. */
class ManualClock implements SchedulerClock {
  time: number
  constructor(time: number) {
    this.time = time
  }
  now(): number {
    return this.time
  }
  async sleep(): Promise<void> {
    // Tests call tick() themselves.
  }
  set(time: number | string): void {
    this.time = typeof time === 'string' ? Date.parse(time) : time
  }
}

const open: Array<{ broker: StubBroker; schedulers: Scheduler[]; worker?: Worker }> = []

afterEach(async () => {
  for (const entry of open.splice(0)) {
    for (const scheduler of entry.schedulers) await scheduler.stop()
    await entry.worker?.stop({ timeout: 2000 })
    await entry.broker.close()
  }
})

function setup(options: { tracking?: boolean; start?: number | string } = {}) {
  const backend = new StubTrackingBackend()
  const sent: Message[] = []
  const record: Middleware = { afterEnqueue: (_broker, message) => void sent.push(message) }
  const middleware: Middleware[] = [record]
  if (options.tracking) middleware.push(new Tracking({ backend, flushInterval: 0 }))
  const broker = new StubBroker({ middleware })
  const clock = new ManualClock(0)
  if (options.start !== undefined) clock.set(options.start)
  const entry: (typeof open)[number] = { broker, schedulers: [] }
  open.push(entry)
  const job = actor('report', (_n: number) => undefined, { broker, queueName: 'reports' })
  const scheduler = (extra: { lease?: number; maxMissed?: number; grace?: number } = {}) => {
    const s = new Scheduler({ broker, backend, clock, ...extra })
    entry.schedulers.push(s)
    return s
  }
  return { backend, broker, clock, sent, job, scheduler, entry }
}

const iso = (ms: number): string => new Date(ms).toISOString()

describe('Scheduler (controllable clock)', () => {
  it('sends every N ms, aligned to the epoch, once per due time, with an id derived from the due time', async () => {
    const { clock, sent, job, scheduler } = setup({ start: 10_000 })
    const s = scheduler().add('tick', job, { every: 1000, args: [7] })
    // First seen at 10 000: a due time exactly now is sent.
    const first = await s.tick()
    expect(first.leader).toBe(true)
    expect(first.sent.map((x) => x.due)).toEqual([10_000])
    expect(first.wait).toBe(1000)
    for (const t of [10_500, 11_000, 11_000, 11_999, 12_000]) {
      clock.set(t)
      await s.tick()
    }
    expect(sent.map((m) => m.args)).toEqual([[7], [7], [7]])
    const ids = sent.map((m) => m.messageId)
    expect(new Set(ids).size).toBe(3)
    expect(ids[1]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    // Another scheduler (another process, another store even) derives the same id for the same due time.
    const again = new Scheduler({ broker: job.broker, backend: new StubTrackingBackend(), clock })
    again.add('tick', job, { every: 1000, args: [7] })
    await again.tick()
    expect(sent.at(-1)?.messageId).toBe(ids[2])
    const list = await s.list()
    expect(list).toEqual([
      expect.objectContaining({
        id: 'tick',
        actorName: 'report',
        queueName: 'reports',
        every: 1000,
        tz: 'UTC',
        lastRunAt: 12_000,
        lastMessageId: ids[2],
        nextRunAt: 13_000,
      }),
    ])
  })

  it('reads cron in its time zone, across a DST change', async () => {
    const { clock, sent, job, scheduler } = setup({ start: '2026-03-01T00:00:00Z' })
    const s = scheduler().add('monday', job, { cron: '0 6 * * MON', tz: 'America/New_York', args: [1] })
    const fired: string[] = []
    for (let t = Date.parse('2026-03-01T00:00:00Z'); t < Date.parse('2026-03-17T00:00:00Z'); t += 15 * 60_000) {
      clock.set(t)
      const { sent: out } = await s.tick()
      for (const one of out) fired.push(iso(one.due))
    }
    // 06:00 EST is 11:00Z; after 8 March, 06:00 EDT is 10:00Z.
    expect(fired).toEqual(['2026-03-02T11:00:00.000Z', '2026-03-09T10:00:00.000Z', '2026-03-16T10:00:00.000Z'])
    expect(sent).toHaveLength(3)
  })

  it('fires a daily run once on the day its time is skipped, and once on the day it happens twice', async () => {
    const { clock, job, scheduler } = setup({ start: '2026-03-06T00:00:00Z' })
    const s = scheduler()
    s.add('spring', job, { cron: '30 2 * * *', tz: 'America/New_York' })
    s.add('autumn', job, { cron: '30 1 * * *', tz: 'America/New_York' })
    const fired = new Map<string, string[]>()
    const run = async (from: string, to: string) => {
      for (let t = Date.parse(from); t < Date.parse(to); t += 5 * 60_000) {
        clock.set(t)
        for (const one of (await s.tick()).sent)
          fired.set(one.scheduleId, [...(fired.get(one.scheduleId) ?? []), iso(one.due)])
      }
    }
    await run('2026-03-06T00:00:00Z', '2026-03-10T00:00:00Z')
    // New York skips 02:00–03:00 on 8 March: 02:30 fires once, at 03:00 EDT (07:00Z).
    expect(fired.get('spring')).toEqual([
      '2026-03-06T07:30:00.000Z',
      '2026-03-07T07:30:00.000Z',
      '2026-03-08T07:00:00.000Z',
      '2026-03-09T06:30:00.000Z',
    ])
    fired.clear()
    await run('2026-10-30T00:00:00Z', '2026-11-03T00:00:00Z')
    // 1 November has 01:00–02:00 twice: 01:30 fires once (the first, 01:30 EDT = 05:30Z). The
    // months skipped since March are made up for with one run (missed: 'once'), the latest.
    expect(fired.get('autumn')).toEqual([
      '2026-10-29T05:30:00.000Z',
      '2026-10-30T05:30:00.000Z',
      '2026-10-31T05:30:00.000Z',
      '2026-11-01T05:30:00.000Z',
      '2026-11-02T06:30:00.000Z',
    ])
  })

  it('applies the missed policy to due times that passed with no leader: skip, once (default), all (capped)', async () => {
    const { clock, sent, job, scheduler } = setup({ start: 100_000 })
    const s = scheduler({ maxMissed: 3, grace: 200 })
    s.add('skip', job, { every: 1000, missed: 'skip', args: [1] })
    s.add('once', job, { every: 1000, args: [2] })
    s.add('all', job, { every: 1000, missed: 'all', args: [3] })
    clock.set(100_000)
    await s.tick()
    expect(sent.map((m) => m.args[0])).toEqual([1, 2, 3])
    sent.length = 0
    // Down for ten due times (101 000 … 110 000), back 200 ms after the last.
    clock.set(110_200)
    const back = await s.tick()
    const byArg = (n: number) => sent.filter((m) => m.args[0] === n).length
    // 110 000 is on time (within the 200 ms grace): every policy sends it.
    expect(byArg(1)).toBe(1)
    expect(byArg(2)).toBe(1)
    // all: three of the nine missed (the cap), then the on-time one.
    expect(byArg(3)).toBe(4)
    expect(back.sent.filter((x) => x.scheduleId === 'all').map((x) => x.due)).toEqual([
      101_000, 102_000, 103_000, 110_000,
    ])
    // The passed-over ones it looked at (the oldest, up to the cap).
    expect(back.passed.filter((x) => x.scheduleId === 'skip').map((x) => x.due)).toEqual([101_000, 102_000, 103_000])
    // Down again, back 500 ms after the last due time: none is on time.
    sent.length = 0
    clock.set(115_500)
    const late = await s.tick()
    expect(byArg(1)).toBe(0)
    expect(late.sent.filter((x) => x.scheduleId === 'once').map((x) => x.due)).toEqual([115_000])
    expect(byArg(3)).toBe(3)
    // Nothing is sent twice afterwards.
    sent.length = 0
    await s.tick()
    expect(sent).toEqual([])
  })

  it("with overlap 'skip', passes a due time over while the previous run is queued or running", async () => {
    const { clock, sent, job, scheduler, broker, entry } = setup({ tracking: true, start: 50_000 })
    const s = scheduler().add('slow', job, { every: 1000, overlap: 'skip' })
    const t = Math.ceil(Date.now() / 1000) * 1000
    clock.set(t)
    await s.tick()
    clock.set(t + 1000)
    await s.tick()
    expect(sent).toHaveLength(1) // the first is still queued
    clock.set(t + 2000)
    expect((await s.tick()).passed).toEqual([{ scheduleId: 'slow', due: t + 2000, reason: 'overlap' }])
    entry.worker = new Worker(broker, { workerTimeout: 20 })
    await entry.worker.start()
    await waitFor(async () => (await s.backend.get(sent[0]?.messageId ?? ''))?.state === 'succeeded')
    clock.set(t + 3000)
    expect((await s.tick()).sent.map((x) => x.due)).toEqual([t + 3000])
  })

  it('sends each due time once across a leader change: the new leader goes on from what the backend recorded', async () => {
    const { clock, sent, job, scheduler } = setup({ start: 0 })
    const a = scheduler().add('job', job, { every: 1000, missed: 'all' })
    const b = scheduler().add('job', job, { every: 1000, missed: 'all' })
    for (let t = 1000; t <= 3000; t += 500) {
      clock.set(t)
      expect((await a.tick()).leader).toBe(true)
      expect((await b.tick()).leader).toBe(false)
    }
    // a stops (its lease goes back); b leads from the next due time on.
    await a.start()
    await a.stop()
    expect(a.isLeader).toBe(false)
    clock.set(5000)
    const took = await b.tick()
    expect(took.leader).toBe(true)
    expect(took.sent.map((x) => x.due)).toEqual([4000, 5000])
    const dues = sent.map((m) => m.messageId)
    expect(new Set(dues).size).toBe(dues.length)
    expect(sent).toHaveLength(5) // 1000 (first seen at 1000) … 5000
  })

  it('honours startAt and endAt', async () => {
    const { clock, job, scheduler } = setup({ start: 0 })
    const s = scheduler().add('window', job, { every: 1000, startAt: 2500, endAt: new Date(5500) })
    const dues: number[] = []
    for (let t = 0; t <= 9000; t += 250) {
      clock.set(t)
      for (const one of (await s.tick()).sent) dues.push(one.due)
    }
    expect(dues).toEqual([2500, 3500, 4500, 5500])
    expect((await s.list())[0]?.nextRunAt).toBeUndefined()
  })

  it('refuses bad schedules with InvalidArgumentError', () => {
    const { job, scheduler } = setup()
    const s = scheduler()
    const other = actor('elsewhere', () => undefined, { broker: new StubBroker() })
    const bad: Array<[string, () => unknown]> = [
      ['exactly one of cron and every', () => s.add('a', job, {})],
      ['exactly one of cron and every', () => s.add('a', job, { cron: '* * * * *', every: 5 })],
      ['every must be', () => s.add('a', job, { every: 0 })],
      ['every must be', () => s.add('a', job, { every: 1.5 })],
      ['cron takes 5 fields', () => s.add('a', job, { cron: '* * *' })],
      ['bad cron', () => s.add('a', job, { cron: '61 * * * *' })],
      ['unknown time zone', () => s.add('a', job, { cron: '* * * * *', tz: 'Mars/Olympus' })],
      ['missed must be', () => s.add('a', job, { every: 5, missed: 'twice' as never })],
      ['overlap must be', () => s.add('a', job, { every: 5, overlap: 'never' as never })],
      ['endAt is before startAt', () => s.add('a', job, { every: 5, startAt: 10, endAt: 5 })],
      ['not declared on the scheduler', () => s.add('a', other, { every: 5 })],
      ["overlap 'skip' reads", () => s.add('a', job, { every: 5, overlap: 'skip' })],
      ['unknown message option', () => s.add('a', job, { every: 5, options: { maxRetires: 3 } as never })],
    ]
    for (const [message, add] of bad) {
      expect(add, message).toThrow(InvalidArgumentError)
      expect(add, message).toThrow(message)
    }
    s.add('a', job, { every: 5 })
    expect(() => s.add('a', job, { every: 5 })).toThrow('exists already')
    expect(s.remove('a')).toBe(true)
    expect(() => new Scheduler({ broker: job.broker, backend: new StubTrackingBackend(), lease: 10 })).toThrow(
      InvalidArgumentError,
    )
  })
})

describe('Scheduler (system clock)', () => {
  it('runs in the background: two schedulers, one leader, each due time sent once, the standby takes over on stop', async () => {
    const { sent, job, broker, backend, entry } = setup()
    const make = () => {
      const s = new Scheduler({ broker, backend, lease: 300 })
      entry.schedulers.push(s)
      return s.add('fast', job, { every: 50, missed: 'all' })
    }
    const a = make()
    const b = make()
    await a.start()
    await b.start()
    await waitFor(() => sent.length >= 4, { timeout: 5000 })
    const leader = a.isLeader ? a : b
    const standby = leader === a ? b : a
    expect(standby.isLeader).toBe(false)
    await leader.stop()
    const before = sent.length
    await waitFor(() => standby.isLeader && sent.length >= before + 4, { timeout: 5000 })
    await standby.stop()
    const dues = sent.map((m) => m.messageId)
    expect(new Set(dues).size).toBe(dues.length)
    // No gap: consecutive due times, 50 ms apart.
    const marks = await backend.scheduleMarks(['fast'])
    expect(marks.get('fast')?.lastMessageId).toBe(dues.at(-1))
  })

  it('a leader that stops renewing (killed) is replaced once its lease lapses, and the new one sends what it missed', async () => {
    const { sent, job, broker, backend, entry } = setup()
    const make = () => {
      const s = new Scheduler({ broker, backend, lease: 200 })
      entry.schedulers.push(s)
      return s.add('fast', job, { every: 50, missed: 'all' })
    }
    const killed = make()
    // Leads for one tick, then never again (as if SIGKILLed: no stop, no release).
    expect((await killed.tick()).leader).toBe(true)
    const heir = make()
    await heir.start()
    await waitFor(() => heir.isLeader, { timeout: 3000 })
    await waitFor(() => sent.length >= 8, { timeout: 3000 })
    await heir.stop()
    const ids = sent.map((m) => m.messageId)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('keeps going when its backend fails for a while, logging each failed tick', async () => {
    const { sent, job, broker, entry } = setup()
    let failures = 3
    class Flaky extends StubTrackingBackend {
      override async acquireLease(name: string, owner: string, ttl: number): Promise<boolean> {
        if (failures > 0) {
          failures--
          throw new Error('tracking store down')
        }
        return super.acquireLease(name, owner, ttl)
      }
    }
    const flaky = new Flaky()
    const logger = createCapturingLogger()
    const s = new Scheduler({ broker, backend: flaky, lease: 250, logger })
    entry.schedulers.push(s)
    s.add('fast', job, { every: 50 })
    await s.start()
    await waitFor(() => sent.length >= 2, { timeout: 5000 })
    await s.stop()
    const warnings = logger.entries.filter((e) => e.level === 'warn' && e.msg.startsWith('Scheduler tick failed'))
    expect(warnings).toHaveLength(3)
    expect(warnings[0]?.meta).toMatchObject({ err: { message: 'tracking store down' } })
  })
})
