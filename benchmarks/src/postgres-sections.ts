// The PostgreSQL-only scenarios of the one-run benchmark (src/bench.ts drives them):
//  - end to end with a large backlog of delayed messages present (due in a day, seeded outside
//    the measured time), drained at one concurrency;
//  - the cost of one enqueue inside the application's open transaction.
import { SCHEMA_OF, analyzeSchema } from './peers/pg.ts'
import type { AgentRequest, SessionStats, TransactionSample } from './peers/protocol.ts'
import { isPostgres, type BenchContext, type SystemName } from './peers/types.ts'
import type { DelayedBacklogResult, Settings, TransactionCostResult } from './report/types.ts'

/** What these scenarios need from the orchestrator. */
export interface Harness<A extends { call<T>(request: AgentRequest): Promise<T> }> {
  readonly settings: Settings
  readonly ctx: BenchContext
  ensurePool(size: number): Promise<A[]>
  /** As bench.ts's drain; with `maxMs`, stop after that long even if fewer than `n` ran. */
  drain(agents: A[], n: number, maxMs?: number): Promise<{ t0: number; stats: SessionStats[] }>
  record<T>(scenario: string, system: SystemName, fn: () => Promise<T>): Promise<T | undefined>
  /** Reset the system's server state (drop and migrate its schema). */
  reset(agent: A, system: SystemName): Promise<void>
  log(line: string): void
}

const DAY = 24 * 60 * 60 * 1000
/** A round of the backlog scenario stops after this long; the rate then counts what ran (a slow system's drain of N could take an hour). */
const ROUND_LIMIT_MS = { quick: 20_000, full: 90_000 }
const fmt = (rate: number): string => Math.round(rate).toLocaleString('en-US')

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/**
 * Per system: seed the backlog once (bulk, unmeasured), then `rounds` times fill `n` due messages
 * on the same queue, ANALYZE the system's tables (so the planner knows both the delayed and the
 * due rows, as in a steady state; statistics taken when only the delayed rows were there make
 * graphile-worker's claim scan the whole table), and drain them at `delayedConcurrency` (worker
 * start → last message processed). The delayed rows stay for every round. A round stops after
 * ROUND_LIMIT_MS; its rate then counts the messages that ran (`partial`).
 */
export async function delayedBacklogSection<A extends { call<T>(request: AgentRequest): Promise<T> }>(
  h: Harness<A>,
): Promise<DelayedBacklogResult[]> {
  const s = h.settings
  const backlog = s.delayedBacklog ?? 0
  const concurrency = s.delayedConcurrency ?? 8
  const n = s.delayedN ?? s.n
  const limit = s.n <= 1000 ? ROUND_LIMIT_MS.quick : ROUND_LIMIT_MS.full
  const results: DelayedBacklogResult[] = []
  const systems = s.systems.filter(isPostgres)
  if (systems.length === 0 || backlog <= 0) return results
  h.log(
    `\nend to end with ${fmt(backlog)} delayed messages present (due in a day, seeded first): ` +
      `${fmt(n)} due messages drained at concurrency ${concurrency}; ${s.rounds} round(s), median kept`,
  )
  for (const system of systems) {
    await h.record(`end to end with ${fmt(backlog)} delayed`, system, async () => {
      const [agent] = (await h.ensurePool(1)) as [A]
      await h.reset(agent, system)
      const queue = `delayed_${system.replace(/[^a-z0-9]/g, '_')}`
      const seedMs = await agent.call<number>({
        t: 'seed',
        system,
        ctx: h.ctx,
        queue,
        count: backlog,
        delayMs: DAY,
      })
      h.log(`  ${system.padEnd(26)} seeded ${fmt(backlog)} in ${(seedMs / 1000).toFixed(1)} s`)
      const rounds: number[] = []
      let partial = false
      for (let round = 0; round < s.rounds; round++) {
        await agent.call({ t: 'open', system, ctx: h.ctx, queue, producer: true, concurrency })
        await agent.call<number>({ t: 'fill', count: n, start: 0, batch: s.batch })
        await analyzeSchema(h.ctx.pgUrl, SCHEMA_OF[system] as string)
        const { t0, stats } = await h.drain([agent], n, limit)
        const [stat] = stats as [SessionStats]
        if (stat.count < n) partial = true
        if (stat.count === 0) throw new Error(`no message processed in ${limit / 1000} s`)
        const rate = (stat.count / (stat.lastAt - t0)) * 1000
        rounds.push(rate)
        h.log(
          `  ${`${system} #${round + 1}`.padEnd(26)} ${fmt(rate).padStart(9)} msgs/s` +
            (stat.count < n ? ` (${fmt(stat.count)} of ${fmt(n)} in ${limit / 1000} s)` : ''),
        )
      }
      results.push({ system, backlog, n, concurrency, seedMs, rate: median(rounds), rounds, partial })
    })
  }
  return results
}

/** Per system that can: one enqueue inside an open transaction, against the same transaction without it. */
export async function transactionSection<A extends { call<T>(request: AgentRequest): Promise<T> }>(
  h: Harness<A>,
): Promise<TransactionCostResult[]> {
  const count = h.settings.txCount ?? 0
  const results: TransactionCostResult[] = []
  const systems = h.settings.systems.filter(isPostgres)
  if (systems.length === 0 || count <= 0) return results
  h.log(
    `\nenqueue inside a transaction: ${fmt(count)} × (BEGIN, INSERT, COMMIT) against the same with one enqueue ` +
      `before COMMIT, one connection, alternating blocks; medians per transaction`,
  )
  for (const system of systems) {
    await h.record('enqueue in a transaction', system, async () => {
      const [agent] = (await h.ensurePool(1)) as [A]
      await h.reset(agent, system)
      const queue = `tx_${system.replace(/[^a-z0-9]/g, '_')}`
      const sample = await agent.call<TransactionSample>({ t: 'transactions', system, ctx: h.ctx, queue, count })
      const result: TransactionCostResult = {
        system,
        ...sample,
        extraMs: sample.withSendMedianMs - sample.baselineMedianMs,
        extraStatements: sample.withSendStatements - sample.baselineStatements,
      }
      results.push(result)
      h.log(
        `  ${system.padEnd(26)} ${sample.baselineMedianMs.toFixed(3)} → ${sample.withSendMedianMs.toFixed(3)} ms ` +
          `(+${result.extraMs.toFixed(3)} ms), statements ${sample.baselineStatements} → ${sample.withSendStatements}` +
          (sample.outsideStatements === undefined ? '' : `, ${sample.outsideStatements} outside the transaction`),
      )
    })
  }
  return results
}
