import { createHash } from 'node:crypto'
import { Cron } from 'croner'
import type { AnyActor, MessageOptionsInput } from '../actor.ts'
import { InvalidArgumentError } from '../errors.ts'

/** What a schedule does about due times that passed while no scheduler was up (or leading). */
export type MissedPolicy = 'skip' | 'once' | 'all'
/** What a schedule does when a due time comes while its previous run is still queued or running. */
export type OverlapPolicy = 'allow' | 'skip'

export interface ScheduleOptions {
  /** A 5-field (minute precision) or 6-field (seconds first) cron expression. */
  cron?: string
  /** Every this many ms, counted from `startAt` (else from the Unix epoch), so every process agrees on the due times. */
  every?: number
  /** The IANA time zone `cron` is read in (default `UTC`). */
  tz?: string
  /** The actor's arguments for every run. */
  args?: unknown[]
  kwargs?: Record<string, unknown>
  /** Message options for every run (`maxRetries`, `timeLimit`, …). */
  options?: MessageOptionsInput
  /**
   * Due times that passed with no scheduler leading (a deploy, an outage, a failover): `skip`
   * them, send `once` for all of them (default), or send `all` of them (at most the scheduler's
   * `maxMissed`, oldest first). A due time at most `grace` ms old is on time, never missed.
   */
  missed?: MissedPolicy
  /** `skip`: send nothing for a due time while the schedule's previous run is queued, delayed, running or retrying (read from tracking). Default `allow`. */
  overlap?: OverlapPolicy
  /** No due time before this one (Unix ms or a Date). */
  startAt?: Date | number
  /** No due time after this one. */
  endAt?: Date | number
}

const MISSED: ReadonlySet<string> = new Set(['skip', 'once', 'all'])
const OVERLAP: ReadonlySet<string> = new Set(['allow', 'skip'])

function time(value: Date | number | undefined, name: string, id: string): number | undefined {
  if (value === undefined) return undefined
  const ms = value instanceof Date ? value.getTime() : value
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    throw new InvalidArgumentError(`Schedule ${id}: ${name} must be a Date or Unix ms, got ${String(value)}`)
  }
  return ms
}

/**
 * The id of the message a `Scheduler` sends for schedule `scheduleId` at due time `due` (Unix
 * ms): the same in every process, shaped as a name-based (version 5) UUID. Find a run with it
 * (`admin.message(scheduledMessageId('nightly-report', Date.parse('2026-12-04T02:30:00Z')))`).
 */
export function scheduledMessageId(scheduleId: string, due: number): string {
  const hex = createHash('sha1').update(`tq-schedule\0${scheduleId}\0${due}`).digest('hex')
  const variant = ((parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(18, 20)}-${hex.slice(20, 32)}`
}

/** One schedule of a `Scheduler`: when it is due, and what it sends. */
export class Schedule {
  readonly id: string
  readonly actor: AnyActor
  readonly cron: string | undefined
  readonly every: number | undefined
  readonly tz: string
  readonly args: unknown[]
  readonly kwargs: Record<string, unknown>
  readonly options: MessageOptionsInput
  readonly missed: MissedPolicy
  readonly overlap: OverlapPolicy
  readonly startAt: number | undefined
  readonly endAt: number | undefined
  readonly #pattern: Cron | undefined

  constructor(id: string, actor: AnyActor, options: ScheduleOptions) {
    if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('A schedule needs a non-empty string id')
    this.id = id
    this.actor = actor
    const { cron, every } = options
    if ((cron === undefined) === (every === undefined)) {
      throw new InvalidArgumentError(`Schedule ${id}: give exactly one of cron and every`)
    }
    this.tz = options.tz ?? 'UTC'
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: this.tz })
    } catch {
      throw new InvalidArgumentError(
        `Schedule ${id}: unknown time zone ${JSON.stringify(this.tz)} (an IANA name, e.g. Europe/Paris)`,
      )
    }
    this.startAt = time(options.startAt, 'startAt', id)
    this.endAt = time(options.endAt, 'endAt', id)
    if (this.startAt !== undefined && this.endAt !== undefined && this.endAt < this.startAt) {
      throw new InvalidArgumentError(`Schedule ${id}: endAt is before startAt`)
    }
    if (every !== undefined) {
      if (typeof every !== 'number' || !Number.isSafeInteger(every) || every < 1) {
        throw new InvalidArgumentError(`Schedule ${id}: every must be a whole number of ms >= 1, got ${String(every)}`)
      }
      this.every = every
    }
    if (cron !== undefined) {
      if (typeof cron !== 'string') throw new InvalidArgumentError(`Schedule ${id}: cron must be a string`)
      const fields = cron.trim().split(/\s+/).length
      if (fields !== 5 && fields !== 6) {
        throw new InvalidArgumentError(
          `Schedule ${id}: cron takes 5 fields (or 6, seconds first), got ${JSON.stringify(cron)}`,
        )
      }
      try {
        this.#pattern = new Cron(cron, { timezone: this.tz, paused: true })
      } catch (error) {
        throw new InvalidArgumentError(`Schedule ${id}: bad cron ${JSON.stringify(cron)}: ${(error as Error).message}`)
      }
      this.cron = cron
    }
    this.args = options.args ?? []
    this.kwargs = options.kwargs ?? {}
    this.options = options.options ?? {}
    const missed = options.missed ?? 'once'
    if (!MISSED.has(missed)) {
      throw new InvalidArgumentError(
        `Schedule ${id}: missed must be 'skip', 'once' or 'all', got ${JSON.stringify(missed)}`,
      )
    }
    this.missed = missed
    const overlap = options.overlap ?? 'allow'
    if (!OVERLAP.has(overlap)) {
      throw new InvalidArgumentError(
        `Schedule ${id}: overlap must be 'allow' or 'skip', got ${JSON.stringify(overlap)}`,
      )
    }
    this.overlap = overlap
    // A message built once now: options no middleware knows fail here, not at the first due time.
    this.message(this.startAt ?? 0)
  }

  /** The first due time after `after` (exclusive), or `undefined` when there is none (past `endAt`). */
  nextAfter(after: number): number | undefined {
    const from = this.startAt !== undefined && after < this.startAt ? this.startAt - 1 : after
    let next: number | undefined
    if (this.every !== undefined) {
      const anchor = this.startAt ?? 0
      next = anchor + (Math.floor((from - anchor) / this.every) + 1) * this.every
    } else {
      next = this.#pattern?.nextRun(new Date(from))?.getTime()
    }
    return next === undefined || (this.endAt !== undefined && next > this.endAt) ? undefined : next
  }

  /** The last due time at or before `at`, or `undefined` when there is none (before `startAt`). */
  latestAtOrBefore(at: number): number | undefined {
    const upTo = this.endAt !== undefined ? Math.min(at, this.endAt) : at
    let latest: number | undefined
    if (this.every !== undefined) {
      const anchor = this.startAt ?? 0
      latest = anchor + Math.floor((upTo - anchor) / this.every) * this.every
    } else {
      latest = this.#pattern?.previousRuns(1, new Date(upTo + 1))[0]?.getTime()
    }
    return latest === undefined || (this.startAt !== undefined && latest < this.startAt) ? undefined : latest
  }

  /** The id of the message of due time `due`: the same in every process, so a due time is sent once. */
  messageId(due: number): string {
    return scheduledMessageId(this.id, due)
  }

  /** The message of due time `due` (nothing sent). */
  message(due: number): ReturnType<AnyActor['messageWithOptions']> {
    const message = this.actor.messageWithOptions({ ...this.options, args: this.args, kwargs: this.kwargs })
    return message.copy({ messageId: this.messageId(due) })
  }
}
