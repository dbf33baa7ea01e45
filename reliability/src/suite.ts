// The scenarios every broker goes through, as a vitest suite: one call per broker test file.
import { mkdirSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hostileCases, runHostile } from './hostile.ts'
import { Ledger } from './ledger.ts'
import {
  connectionCuts,
  killCycles,
  reportScenario,
  sigtermCycles,
  startWorker,
  type ScenarioContext,
} from './scenarios.ts'
import { SIZES, budget } from './sizes.ts'
import type { Target } from './targets/target.ts'
import { killAll } from './tq-process.ts'

export interface BrokerSuiteOptions<T extends Target> {
  name: string
  /** A fresh target (queues, producer) for one scenario. */
  makeTarget: (ledger: Ledger) => T | Promise<T>
  /** What the connection-cut scenario is called for this broker. */
  cutLabel: string
  /** The hostile payloads' size limit, if the broker has one below 5 MiB. */
  hugeSize?: number
  /** More tests, given the context factory (e.g. the RabbitMQ restart). */
  extra?: (context: (label: string) => Promise<ScenarioContext & { target: T }>) => void
  /** Called once before the suite (start a server) and after it. */
  setup?: () => Promise<void>
  teardown?: () => Promise<void>
}

export function brokerSuite<T extends Target>(options: BrokerSuiteOptions<T>): void {
  const dir = `/tmp/rel-${options.name}-${process.pid}`
  const contexts: ScenarioContext[] = []

  async function context(label: string): Promise<ScenarioContext & { target: T }> {
    const ledger = new Ledger(`${options.name}-${label}`)
    const target = await options.makeTarget(ledger)
    const ctx = { target, ledger, dir }
    contexts.push(ctx)
    return ctx
  }

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true })
    await options.setup?.()
  })

  afterEach(async () => {
    killAll()
    for (const { target, ledger } of contexts.splice(0)) {
      await target.cleanup()
      await ledger.close()
    }
  })

  afterAll(async () => {
    killAll()
    await options.teardown?.()
  })

  describe(`${options.name} under faults (real tq worker processes)`, () => {
    it(
      `kill -9 mid-batch ${SIZES.kill.cycles}× over ${SIZES.kill.messages} messages: every message runs at least once`,
      async () => {
        const ctx = await context('kill')
        const { tally, stranded } = await killCycles(ctx, { ...SIZES.kill, drainTimeout: budget(60_000, 300_000) })
        // Where the broker tells (Redis ack sets), the kills did strand messages…
        if (ctx.target.heldBy) expect(stranded.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
        // …and every message ran anyway.
        expect(tally.lost).toEqual([])
        expect(tally.unexpected).toEqual([])
        // Redelivered at most what the killed workers held (prefetch 16 + 8 running) each time.
        expect(tally.duplicates).toBeLessThanOrEqual(SIZES.kill.cycles * 2 * 24)
      },
      budget(120_000, 900_000),
    )

    it(
      `kill -9 mid-batch ${SIZES.kill.cycles}× with --processes 2: every message runs at least once`,
      async () => {
        const ctx = await context('kill2')
        const { tally, stranded } = await killCycles(ctx, {
          ...SIZES.kill,
          processes: 2,
          drainTimeout: budget(60_000, 300_000),
        })
        if (ctx.target.heldBy) expect(stranded.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
        expect(tally.lost).toEqual([])
        expect(tally.unexpected).toEqual([])
        // Two processes, each running 8 and holding 16 (plus acks on their way) at a kill.
        expect(tally.duplicates).toBeLessThanOrEqual(SIZES.kill.cycles * 2 * 2 * 24)
      },
      budget(120_000, 900_000),
    )

    it(
      `${options.cutLabel} ${SIZES.cut.cuts}× under load: recovery within 5 s, 0 lost`,
      async () => {
        const ctx = await context('cut')
        const { tally, recoveries } = await connectionCuts(ctx, {
          ...SIZES.cut,
          drainTimeout: budget(60_000, 300_000),
          label: options.cutLabel,
        })
        expect(tally.lost).toEqual([])
        expect(tally.unexpected).toEqual([])
        expect(Math.max(...recoveries)).toBeLessThan(5000)
      },
      budget(120_000, 900_000),
    )

    it(
      `graceful SIGTERM under load ${SIZES.sigterm.stops}×: 0 lost, 0 duplicates`,
      async () => {
        const ctx = await context('sigterm')
        const { tally, workers } = await sigtermCycles(ctx, {
          ...SIZES.sigterm,
          drainTimeout: budget(60_000, 300_000),
        })
        expect(tally.lost).toEqual([])
        expect(tally.duplicates).toBe(0)
        for (const worker of workers) expect(worker.exitCode).toBe(0)
      },
      budget(120_000, 900_000),
    )

    it(
      `graceful SIGTERM under load ${SIZES.sigterm.stops}× with --processes 2: every process finishes, 0 lost, 0 duplicates`,
      async () => {
        const ctx = await context('sigterm2')
        const { tally, workers } = await sigtermCycles(ctx, {
          ...SIZES.sigterm,
          processes: 2,
          drainTimeout: budget(60_000, 300_000),
        })
        expect(tally.lost).toEqual([])
        expect(tally.duplicates).toBe(0)
        for (const worker of workers) expect(worker.exitCode).toBe(0)
      },
      budget(120_000, 900_000),
    )

    it('hostile input put straight on the queue: dead-lettered (or refused) with a typed reason; the worker keeps going', async () => {
      const ctx = await context('hostile')
      const started = Date.now()
      const worker = startWorker(ctx)
      await worker.booted()
      const goodAfter = 50
      const cases = hostileCases(ctx.target.queue, goodAfter, options.hugeSize ? { huge: options.hugeSize } : {})
      const { outcomes } = await runHostile(ctx.target, ctx.ledger, worker, cases, { goodAfter, timeout: 30_000 })
      for (const o of outcomes) {
        process.stdout.write(`[hostile] ${options.name} | ${o.label} | ${o.outcome} | ${o.reason ?? ''}\n`)
      }
      for (const [i, c] of cases.entries()) {
        const outcome = outcomes[i]
        if (outcome?.outcome === 'refused at send') {
          // The server refused it (too large for SQS): nothing to dead-letter, a typed error at send.
          expect(outcome.reason, c.label).toBeDefined()
          continue
        }
        if (c.expect === 'run') {
          expect(outcome, c.label).toMatchObject({ outcome: 'ran' })
        } else {
          expect(outcome, c.label).toMatchObject({ outcome: 'dead-lettered' })
          expect(outcome?.reason, `${c.label}: logged reason`).toMatch(new RegExp(`^${c.errorType}:`))
          if (c.because) expect(outcome?.reason, `${c.label}: logged reason`).toMatch(c.because)
        }
      }
      // One worker process the whole time: none crashed and restarted.
      expect(worker.workerPids()).toHaveLength(1)
      expect(worker.running).toBe(true)
      // No payload polluted Object.prototype in the worker (the actor checks on every run).
      expect(await ctx.ledger.flags()).toEqual({})
      expect(await worker.terminate()).toBe(0)
      const tally = await ctx.ledger.tally(goodAfter)
      expect(tally.lost).toEqual([])
      reportScenario(ctx, 'hostile input', started, tally, cases.length, {
        notes: outcomes.map((o) => `${o.label}: ${o.outcome}`).join('; '),
      })
    }, 90_000)

    options.extra?.(context)
  })
}
