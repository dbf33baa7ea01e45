import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { AnyActor } from '../actor.ts'
import type { Broker } from '../broker.ts'
import { InvalidArgumentError } from '../errors.ts'
import { errorMeta, type Logger } from '../logger.ts'
import type { MessageState, ScheduleMark, TrackingBackend } from '../tracking/backend.ts'
import { Tracking } from '../tracking/middleware.ts'
import { qName } from '../queue-names.ts'
import { Schedule, type ScheduleOptions } from './schedule.ts'

/** Time as the scheduler sees it: the system clock, or a controllable one in tests. */
export interface SchedulerClock {
  now(): number
  /** Resolve after `ms`, or when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>
}

export interface SchedulerOptions {
  /** Where the messages go (the actors must be declared on it). */
  broker: Broker
  /** Where the leader lease and each schedule's progress are kept (`RedisTrackingBackend`, …). */
  backend: TrackingBackend
  /** Schedulers with the same name (and backend) elect one leader among them (default `default`). */
  name?: string
  /** How long a leader's lease lasts, in ms (default 10 000): a killed leader is replaced within about this long. */
  lease?: number
  /** A due time at most this old (ms) is on time, not missed (default 1000). */
  grace?: number
  /** Most missed due times one schedule with `missed: 'all'` sends at once (default 100); the rest are passed over. */
  maxMissed?: number
  /** Where fires and failures are logged (default: the broker's logger). */
  logger?: Logger
  /** Default: the system clock. */
  clock?: SchedulerClock
}

/** A schedule as `list()` shows it. */
export interface ScheduleInfo {
  id: string
  /** The name of its scheduler. */
  scheduler: string
  actorName: string
  queueName: string
  cron?: string
  every?: number
  tz: string
  missed: ScheduleOptions['missed']
  overlap: ScheduleOptions['overlap']
  /** The next due time (Unix ms), or `undefined` when the schedule has ended. */
  nextRunAt: number | undefined
  /** The last due time a message was sent for, and that message. */
  lastRunAt: number | undefined
  lastMessageId: string | undefined
}

/** What one `tick()` did. */
export interface TickResult {
  /** Whether this scheduler held the lease. */
  leader: boolean
  /** The messages sent, by schedule and due time. */
  sent: Array<{ scheduleId: string; due: number; messageId: string }>
  /**
   * Due times passed over: missed (with `skip`, `once`, or over the `all` cap; the oldest
   * `maxMissed` of them are listed), or overlapping a run not finished (`overlap: 'skip'`).
   */
  passed: Array<{ scheduleId: string; due: number; reason: 'missed' | 'overlap' }>
  /** How long until the next tick should run, in ms. */
  wait: number
}

const systemClock: SchedulerClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve()
      const timer = setTimeout(done, ms)
      function done(): void {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
      signal.addEventListener('abort', done, { once: true })
    }),
}

/** States in which a run is not over: with `overlap: 'skip'` the next due time is passed over. */
const UNFINISHED: ReadonlySet<MessageState> = new Set(['queued', 'delayed', 'running', 'retrying'])

/**
 * Sends an actor a message at each due time of its schedules (`cron` in a time zone, or
 * `every` ms), exactly once per due time whatever number of schedulers run: they elect a leader
 * through the backend's lease, each due time's message id is derived from the schedule and the
 * time, and the backend records how far each schedule got, so a new leader (after a restart,
 * a failover) goes on from there, applying the schedule's `missed` policy.
 *
 * ```ts
 * const scheduler = new Scheduler({ broker, backend: new RedisTrackingBackend() })
 * scheduler.add('nightly-report', report, { cron: '30 2 * * *', tz: 'Europe/Paris' })
 * await scheduler.start()
 * ```
 */
export class Scheduler {
  readonly broker: Broker
  readonly backend: TrackingBackend
  readonly name: string
  readonly lease: number
  readonly grace: number
  readonly maxMissed: number
  /** This scheduler's id in the lease (`<host>:<pid>:<random>`). */
  readonly owner: string
  readonly #schedules = new Map<string, Schedule>()
  readonly #clock: SchedulerClock
  readonly #logger: Logger
  #stop: AbortController | undefined
  #loop: Promise<void> | undefined
  #leader = false

  constructor(options: SchedulerOptions) {
    this.broker = options.broker
    this.backend = options.backend
    this.name = options.name ?? 'default'
    this.lease = options.lease ?? 10_000
    this.grace = options.grace ?? 1000
    this.maxMissed = options.maxMissed ?? 100
    for (const [name, value, least] of [
      ['lease', this.lease, 100],
      ['grace', this.grace, 0],
      ['maxMissed', this.maxMissed, 1],
    ] as const) {
      if (!Number.isFinite(value) || value < least) {
        throw new InvalidArgumentError(`Scheduler ${name} must be a number >= ${least}, got ${String(value)}`)
      }
    }
    this.owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
    this.#clock = options.clock ?? systemClock
    this.#logger = (options.logger ?? this.broker.logger).child({ component: 'scheduler', scheduler: this.name })
    this.broker.schedulers.add(this)
  }

  /** How many schedules it has. */
  get size(): number {
    return this.#schedules.size
  }

  /** Whether this scheduler led at its last tick. */
  get isLeader(): boolean {
    return this.#leader
  }

  /** Add a schedule (ids are unique per scheduler: `remove` one to replace it). */
  add(id: string, actor: AnyActor, options: ScheduleOptions): this {
    if (this.#schedules.has(id)) {
      throw new InvalidArgumentError(`Schedule ${id} exists already (remove it first to replace it)`)
    }
    if (this.broker.actors.get(actor.actorName) !== actor) {
      throw new InvalidArgumentError(
        `Schedule ${id}: actor ${actor.actorName} is not declared on the scheduler's broker`,
      )
    }
    const schedule = new Schedule(id, actor, options)
    if (schedule.overlap === 'skip' && !this.#tracking) {
      throw new InvalidArgumentError(
        `Schedule ${id}: overlap 'skip' reads the previous run's state from tracking: add the Tracking middleware to the broker (and to its workers')`,
      )
    }
    this.#schedules.set(id, schedule)
    return this
  }

  /** Stop sending for a schedule here (what the backend recorded of it stays). */
  remove(id: string): boolean {
    return this.#schedules.delete(id)
  }

  /** The schedules, with their next and last due times. */
  async list(): Promise<ScheduleInfo[]> {
    const schedules = [...this.#schedules.values()]
    const marks = await this.backend.scheduleMarks(schedules.map((s) => s.id))
    const now = this.#clock.now()
    return schedules.map((schedule) => {
      const mark = marks.get(schedule.id)
      const info: ScheduleInfo = {
        id: schedule.id,
        scheduler: this.name,
        actorName: schedule.actor.actorName,
        queueName: qName(schedule.actor.queueName),
        tz: schedule.tz,
        missed: schedule.missed,
        overlap: schedule.overlap,
        nextRunAt: schedule.nextAfter(Math.max(now - 1, mark?.through ?? now - 1)),
        lastRunAt: mark?.lastDue,
        lastMessageId: mark?.lastMessageId,
      }
      if (schedule.cron !== undefined) info.cron = schedule.cron
      if (schedule.every !== undefined) info.every = schedule.every
      return info
    })
  }

  /** Run in the background: lead (or stand by), sending due messages, until `stop()`. */
  async start(): Promise<void> {
    if (this.#loop) return
    const stop = new AbortController()
    this.#stop = stop
    this.#loop = this.#run(stop.signal)
  }

  /** Stop the loop and give the lease up (a standby takes over at once). */
  async stop(): Promise<void> {
    const loop = this.#loop
    if (!loop) return
    this.#stop?.abort()
    await loop
    this.#loop = undefined
    this.#stop = undefined
    if (this.#leader) {
      this.#leader = false
      await this.backend.releaseLease(this.#leaseName, this.owner).catch((error: unknown) => {
        this.#logger.warn('Could not give the scheduler lease up (it lapses by itself)', errorMeta(error))
      })
    }
  }

  /** The broker's Tracking middleware, if it has one. */
  get #tracking(): Tracking | undefined {
    return this.broker.middleware.find((m): m is Tracking => m instanceof Tracking)
  }

  get #leaseName(): string {
    return `scheduler:${this.name}`
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let wait: number
      try {
        wait = (await this.tick()).wait
      } catch (error) {
        this.#logger.warn('Scheduler tick failed (trying again)', errorMeta(error))
        wait = Math.min(1000, this.lease / 5)
      }
      await this.#clock.sleep(Math.max(1, wait), signal)
    }
  }

  /**
   * One pass: take or extend the lease; as leader, send what is due. `start()` runs it in a
   * loop; tests with a controllable clock call it themselves.
   */
  async tick(): Promise<TickResult> {
    const started = this.#clock.now()
    const result: TickResult = { leader: false, sent: [], passed: [], wait: this.lease / 5 }
    const leader = await this.backend.acquireLease(this.#leaseName, this.owner, this.lease)
    if (leader !== this.#leader) {
      this.#logger.info(leader ? 'Scheduler leads' : 'Scheduler stands by (another leads)', { owner: this.owner })
    }
    this.#leader = leader
    if (!leader) return result
    result.leader = true
    // Sends stop well before the lease could have lapsed: another leader may take over then.
    const leadsUntil = started + (this.lease * 2) / 3
    const schedules = [...this.#schedules.values()]
    const marks = await this.backend.scheduleMarks(schedules.map((s) => s.id))
    let next = started + this.lease / 3
    for (const schedule of schedules) {
      const due = await this.#runSchedule(schedule, marks.get(schedule.id), result, leadsUntil)
      if (due !== undefined) next = Math.min(next, due)
    }
    result.wait = Math.max(0, next - this.#clock.now())
    return result
  }

  /** Send (or pass over) what is due of one schedule; returns its next due time. */
  async #runSchedule(
    schedule: Schedule,
    mark: ScheduleMark | undefined,
    result: TickResult,
    leadsUntil: number,
  ): Promise<number | undefined> {
    const now = this.#clock.now()
    if (!mark) {
      // First seen: due times from now on (one due exactly now included).
      const first: ScheduleMark = { through: now - 1 }
      if (!(await this.backend.advanceSchedule(schedule.id, first))) return undefined
      mark = first
    }
    // Due times before the horizon are missed; the later ones (at most `grace` old) are on time.
    const horizon = now - this.grace
    const missed: number[] = []
    let t = schedule.nextAfter(mark.through)
    for (; t !== undefined && t < horizon && missed.length <= this.maxMissed; t = schedule.nextAfter(t)) missed.push(t)
    // More missed than the cap: the oldest `maxMissed` are known, and the latest.
    const overflow = missed.length > this.maxMissed
    if (overflow) missed.length = this.maxMissed
    const latestMissed = overflow ? schedule.latestAtOrBefore(horizon - 1) : missed.at(-1)
    const onTime: number[] = []
    for (
      t = schedule.nextAfter(Math.max(mark.through, horizon - 1));
      t !== undefined && t <= now;
      t = schedule.nextAfter(t)
    ) {
      onTime.push(t)
    }
    let send: number[]
    if (schedule.missed === 'all') send = [...missed, ...onTime]
    else if (schedule.missed === 'once' && onTime.length === 0 && latestMissed !== undefined) send = [latestMissed]
    else send = onTime
    const sending = new Set(send)
    for (const m of missed)
      if (!sending.has(m)) result.passed.push({ scheduleId: schedule.id, due: m, reason: 'missed' })
    if (overflow) {
      this.#logger.warn(
        `Schedule ${schedule.id}: more than ${this.maxMissed} due times missed since ${new Date(mark.through).toISOString()}; ` +
          (schedule.missed === 'all' ? `the first ${this.maxMissed} are sent, ` : '') +
          'the rest are passed over',
        { schedule: schedule.id },
      )
    }
    const last = onTime.at(-1) ?? latestMissed

    let current = mark
    for (const t of send) {
      if (this.#clock.now() >= leadsUntil) return t
      if (schedule.overlap === 'skip' && (await this.#previousUnfinished(current))) {
        result.passed.push({ scheduleId: schedule.id, due: t, reason: 'overlap' })
        continue
      }
      const message = schedule.message(t)
      await this.broker.enqueue(message)
      // The next due time reads this run's state: its record must be written by then.
      if (schedule.overlap === 'skip') await this.#tracking?.flush()
      const sent: ScheduleMark = {
        through: t,
        lastDue: t,
        lastMessageId: message.messageId,
        lastSentAt: this.#clock.now(),
      }
      if (!(await this.backend.advanceSchedule(schedule.id, sent))) {
        // Another leader got further (this one lost its lease meanwhile): it goes on from there.
        this.#logger.warn(`Schedule ${schedule.id}: another scheduler recorded this due time first`, {
          schedule: schedule.id,
          due: new Date(t).toISOString(),
        })
        return undefined
      }
      current = sent
      result.sent.push({ scheduleId: schedule.id, due: t, messageId: message.messageId })
      this.#logger.info(`Sent ${schedule.actor.actorName} for schedule ${schedule.id}`, {
        schedule: schedule.id,
        due: new Date(t).toISOString(),
        messageId: message.messageId,
      })
    }
    // What was passed over is done with too.
    if (last !== undefined && last > current.through) {
      const { through: _through, ...rest } = current
      await this.backend.advanceSchedule(schedule.id, { ...rest, through: last })
    }
    return schedule.nextAfter(Math.max(now, last ?? now))
  }

  /** Whether the schedule's last run is still queued, delayed, running or retrying, as tracking has it. */
  async #previousUnfinished(mark: ScheduleMark): Promise<boolean> {
    if (mark.lastMessageId === undefined) return false
    const record = await this.backend.get(mark.lastMessageId).catch(() => undefined)
    // No record (expired, deleted): the run is over as far as anyone can tell.
    return record !== undefined && UNFINISHED.has(record.state)
  }
}
