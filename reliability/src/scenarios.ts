// The fault scenarios, broker-independent: each runs real `tq worker` processes against a
// Target, injects its fault, waits until every message ran, and returns the tally.
import { join } from 'node:path'
import type { Ledger, Tally } from './ledger.ts'
import { median, report, type Row } from './report.ts'
import { range, type Target } from './targets/target.ts'
import { TqWorker, diagnosed } from './tq-process.ts'

export interface ScenarioContext {
  target: Target
  ledger: Ledger
  /** Scratch dir of the run (worker logs go there). */
  dir: string
}

export interface ScenarioResult {
  tally: Tally
  row: Row
  workers: TqWorker[]
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

let workerSeq = 0

/** Start a `tq worker` (one process) for the context's target and ledger. */
export function startWorker(
  ctx: ScenarioContext,
  options: {
    concurrency?: number
    processes?: number
    actorMs?: number
    args?: string[]
    env?: Record<string, string>
  } = {},
): TqWorker {
  const seq = ++workerSeq
  return new TqWorker({
    env: {
      ...ctx.target.workerEnv(),
      ...ctx.ledger.env,
      TQ_REL_ACTOR_MS: String(options.actorMs ?? 0),
      ...options.env,
    },
    args: [
      '--processes',
      String(options.processes ?? 1),
      '--concurrency',
      String(options.concurrency ?? 8),
      '--worker-shutdown-timeout',
      '30000',
      ...(options.args ?? []),
    ],
    logFile: join(ctx.dir, `${ctx.target.name}-worker-${seq}.log`),
  })
}

/** What these worker processes hold in the broker, summed; undefined where the broker cannot tell. */
async function heldByAll(ctx: ScenarioContext, pids: readonly (number | undefined)[]): Promise<number | undefined> {
  const { target } = ctx
  if (!target.heldBy) return undefined
  let held: number | undefined
  for (const pid of pids) {
    const count = pid === undefined ? undefined : await target.heldBy(pid)
    if (count !== undefined) held = (held ?? 0) + count
  }
  return held
}

/** Messages that are in no dead-letter queue and never ran: what a run lost. */
function finish(
  ctx: ScenarioContext,
  scenario: string,
  started: number,
  tally: Tally,
  faults: number,
  extra: Partial<Row> = {},
): Row {
  const row: Row = {
    broker: ctx.target.name,
    scenario,
    faults,
    messages: tally.expected,
    lost: tally.lost.length,
    duplicated: tally.duplicates,
    seconds: (Date.now() - started) / 1000,
    ...extra,
  }
  report(row)
  return row
}

/**
 * Feeds a backlog in batches: each `next()` sends a fresh batch of ids and resolves once the
 * workers are half-way through it, so every fault lands while messages run and more wait.
 */
class BatchFeeder {
  sent = 0
  readonly ctx: ScenarioContext
  readonly total: number
  readonly batch: number

  constructor(ctx: ScenarioContext, total: number, batch: number) {
    this.ctx = ctx
    this.total = total
    this.batch = batch
  }

  async send(count = this.batch): Promise<void> {
    const n = Math.min(count, this.total - this.sent)
    if (n <= 0) return
    await this.ctx.target.send(range(n, this.sent))
    this.sent += n
  }

  /** Send a batch (none if `send` is false) and wait until all but half a batch of what was sent ran. */
  async halfway(workers: readonly TqWorker[], send = true): Promise<void> {
    if (send) await this.send()
    const target = Math.max(0, this.sent - Math.floor(this.batch / 2))
    await diagnosed(workers, this.ctx.ledger.waitForDistinct(target, 120_000))
  }

  /** Send what is left. */
  async rest(): Promise<void> {
    await this.send(this.total - this.sent)
  }
}

/**
 * kill -9 mid-batch, `cycles` times. Each cycle sends a fresh batch, starts the next `tq worker`
 * while the current one works through it (so one's boot time hides behind the other's work) and,
 * half-way through the batch, SIGKILLs the current one's whole process group. On every third
 * cycle it first SIGKILLs only the worker process, lets the supervisor restart it (after its 1 s
 * backoff) and work through another half batch, and then kills the group. The last worker drains
 * what is left, including what the killed ones held (back after their heartbeat or visibility
 * timeout).
 */
export async function killCycles(
  ctx: ScenarioContext,
  options: {
    cycles: number
    messages: number
    concurrency?: number
    processes?: number
    actorMs?: number
    drainTimeout: number
  },
): Promise<ScenarioResult & { stranded: number[] }> {
  const { target, ledger } = ctx
  const started = Date.now()
  const total = options.messages
  const variants = Math.floor(options.cycles / 3)
  const feeder = new BatchFeeder(ctx, total, Math.max(1, Math.floor(total / (options.cycles + variants + 1))))
  const processes = options.processes ?? 1
  const workerOptions = { concurrency: options.concurrency ?? 8, processes, actorMs: options.actorMs ?? 2 }
  let current = startWorker(ctx, workerOptions)
  const workers: TqWorker[] = [current]
  await current.booted(60_000, processes)
  let kills = 0
  const stranded: number[] = []
  /** After a kill: what the dead worker processes still held in the broker. */
  const countStranded = async (pids: readonly (number | undefined)[]): Promise<void> => {
    const held = await heldByAll(ctx, pids)
    if (held !== undefined) stranded.push(held)
  }
  for (let cycle = 0; cycle < options.cycles; cycle++) {
    const next = startWorker(ctx, workerOptions)
    workers.push(next)
    await feeder.halfway(workers)
    if (cycle % 3 === 2) {
      // A worker process dies alone: the supervisor restarts it (after its 1 s backoff).
      const pid = current.workerPids().at(-1)
      const boots = current.workerPids().length
      const worker = current
      worker.killWorkerProcess(pid as number)
      kills++
      await countStranded([pid])
      await worker.waitForLog(
        (l) => l.msg === 'Worker process booted' && worker.workerPids().length > boots,
        60_000,
        'the restarted worker process',
      )
      await feeder.halfway(workers)
    }
    // Mid-batch: the current worker is running messages and holds a prefetched batch.
    const victims = current.workerPids().slice(-processes)
    current.kill9()
    kills++
    await current.exited
    await countStranded(victims)
    await next.booted(60_000, processes)
    current = next
  }
  await feeder.rest()
  await diagnosed(workers, ledger.waitForDistinct(total, options.drainTimeout))
  await diagnosed(workers, target.drained(options.drainTimeout))
  const code = await current.terminate()
  if (code !== 0) throw new Error(`the draining worker exited with ${code}:\n${current.tail()}`)
  const tally = await ledger.tally(total)
  const scenario = processes > 1 ? `kill -9 mid-batch, ${processes} processes` : 'kill -9 mid-batch'
  const row = finish(ctx, scenario, started, tally, kills, {
    notes:
      `${options.cycles} cycles, concurrency ${workerOptions.concurrency} × ${processes} process(es), actor ${workerOptions.actorMs} ms` +
      (stranded.length > 0 ? `; in flight at each kill: ${stranded.join(', ')}` : ''),
  })
  return { tally, row, workers, stranded }
}

/**
 * Connection cuts while a producer sends and a worker processes: `cuts` times, cut every
 * connection of the producer and the worker, then send a probe on an otherwise empty queue and
 * time cut → probe processed.
 */
export async function connectionCuts(
  ctx: ScenarioContext,
  options: {
    cuts: number
    messages: number
    concurrency?: number
    drainTimeout: number
    /** Row label (default "connection cut under load"). */
    label?: string
    /**
     * The fault (default `target.cut()`): resolves with how many connections it cut (0 fails the
     * run) once the fault is over; recovery is timed from then.
     */
    fault?: () => Promise<number>
    /** How long a probe may take to run after the fault (default 30 s; the test asserts its own bound). */
    probeTimeout?: number
  },
): Promise<ScenarioResult & { recoveries: number[]; sendErrors: number }> {
  const { target, ledger } = ctx
  const started = Date.now()
  const total = options.messages
  const worker = startWorker(ctx, { concurrency: options.concurrency ?? 8, actorMs: 1 })
  await worker.booted()
  // Produce in the background: batches of 50 every 20 ms. A send that fails is sent again
  // (what an application would do); failures are counted.
  let sent = 0
  let sendErrors = 0
  let producing = true
  const producer = (async () => {
    const batch = 50
    while (sent < total) {
      const ids = range(Math.min(batch, total - sent), sent)
      for (;;) {
        try {
          await target.send(ids)
          break
        } catch {
          sendErrors++
          await sleep(50)
        }
      }
      sent += ids.length
      await sleep(20)
    }
    producing = false
  })()
  const recoveries: number[] = []
  /** Fault over → the producer's probe send resolved. */
  const producerRecoveries: number[] = []
  let cut = 0
  const gap = Math.max(1, Math.floor(total / (options.cuts + 1)))
  for (; cut < options.cuts; cut++) {
    // Cut once the worker is busy with the next slice of the load.
    await ledger.waitForDistinct(Math.min(total - 1, (cut + 1) * gap - Math.floor(gap / 2)), 60_000)
    const killed = await (options.fault ?? (() => target.cut()))()
    const at = Date.now()
    if (killed === 0) throw new Error(`${target.name}: the fault found no connection to cut`)
    // The probe goes on a queue of its own, empty otherwise: it runs as soon as both the producer
    // and the worker are back, not after a backlog.
    const probe = `cut-${cut}`
    for (;;) {
      try {
        await target.sendProbe(probe)
        break
      } catch {
        sendErrors++
        await sleep(50)
      }
    }
    producerRecoveries.push(Date.now() - at)
    const ran = await diagnosed([worker], ledger.waitForProbe(probe, options.probeTimeout ?? 30_000))
    recoveries.push(ran - at)
  }
  await producer
  if (producing) throw new Error('producer did not finish')
  await diagnosed([worker], ledger.waitForDistinct(total, options.drainTimeout))
  await diagnosed([worker], target.drained(options.drainTimeout))
  const code = await worker.terminate()
  if (code !== 0) throw new Error(`the worker exited with ${code}:\n${worker.tail()}`)
  const tally = await ledger.tally(total)
  const row = finish(ctx, options.label ?? 'connection cut under load', started, tally, cut, {
    recoveryMs: { median: median(recoveries), max: Math.max(...recoveries) },
    notes: `producer sends again after ${median(producerRecoveries)} / ${Math.max(...producerRecoveries)} ms; ${sendErrors} failed sends retried`,
  })
  return { tally, row, workers: [worker], recoveries, sendErrors }
}

/**
 * Graceful SIGTERM to the supervisor while messages run, `stops` times: each time a fresh batch
 * goes out, the next worker starts, and half-way through the batch the current one gets SIGTERM
 * and must exit 0 with its running messages finished and its prefetched ones returned. The last
 * worker drains.
 */
export async function sigtermCycles(
  ctx: ScenarioContext,
  options: {
    stops: number
    messages: number
    concurrency?: number
    processes?: number
    actorMs?: number
    drainTimeout: number
  },
): Promise<ScenarioResult> {
  const { target, ledger } = ctx
  const started = Date.now()
  const total = options.messages
  const feeder = new BatchFeeder(ctx, total, Math.max(1, Math.floor(total / (options.stops + 1))))
  const processes = options.processes ?? 1
  const workerOptions = { concurrency: options.concurrency ?? 8, processes, actorMs: options.actorMs ?? 30 }
  let current = startWorker(ctx, workerOptions)
  const workers: TqWorker[] = [current]
  await current.booted(60_000, processes)
  let stops = 0
  /** Messages the stopped worker held (running or prefetched) just before each SIGTERM. */
  const heldAtStop: number[] = []
  for (let i = 0; i < options.stops; i++) {
    const next = startWorker(ctx, workerOptions)
    workers.push(next)
    await feeder.halfway(workers)
    const held = await heldByAll(ctx, current.workerPids().slice(-processes))
    if (held !== undefined) heldAtStop.push(held)
    const code = await current.terminate()
    stops++
    if (code !== 0) throw new Error(`tq worker exited ${code} after SIGTERM:\n${current.tail()}`)
    if (current.logs.filter((l) => l.msg === 'Worker process stopped').length < processes) {
      throw new Error(`not every worker process logged "Worker process stopped":\n${current.tail()}`)
    }
    await next.booted(60_000, processes)
    current = next
  }
  await feeder.rest()
  await diagnosed(workers, ledger.waitForDistinct(total, options.drainTimeout))
  await diagnosed(workers, target.drained(options.drainTimeout))
  const code = await current.terminate()
  if (code !== 0) throw new Error(`the draining worker exited with ${code}:\n${current.tail()}`)
  const tally = await ledger.tally(total)
  const scenario = processes > 1 ? `graceful SIGTERM under load, ${processes} processes` : 'graceful SIGTERM under load'
  const row = finish(ctx, scenario, started, tally, stops, {
    notes:
      `actor ${workerOptions.actorMs} ms, concurrency ${workerOptions.concurrency} × ${processes} process(es)` +
      (heldAtStop.length > 0 ? `; held at each SIGTERM: ${heldAtStop.join(', ')}` : ''),
  })
  return { tally, row, workers }
}

export { finish as reportScenario }
