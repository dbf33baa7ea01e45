// The cold scenario of the one-run benchmark (src/bench.ts drives it): what a deploy or an
// autoscaled worker sees. For each system and concurrency, a worker process that has never run
// anything (a freshly forked agent: no warm-up, no JIT, new connections) drains the first N
// messages; its garbage collector is profiled meanwhile (collections, their time, the bytes
// allocated), so allocation per message can be compared across systems.
import type { AgentRequest } from './peers/protocol.ts'
import type { SystemName } from './peers/types.ts'
import type { ColdResult } from './report/types.ts'
import type { Harness } from './postgres-sections.ts'

const fmt = (rate: number): string => Math.round(rate).toLocaleString('en-US')

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Systems the cold scenario runs: the queues (not the raw ceilings, not the in-memory broker). */
const COLD_SYSTEMS: ReadonlySet<SystemName> = new Set(['tq-redis', 'bullmq', 'bee-queue', 'tq-rabbitmq', 'tq-postgres'])

interface ColdAgent {
  call<T>(request: AgentRequest): Promise<T>
  close(): Promise<void>
}

/**
 * Per round, concurrency and system (the order rotating): a fresh consumer agent, the producer
 * (agent 0, warm: enqueueing is not what is measured) fills `n` messages, then the fresh one
 * drains them (worker start → last message). Medians of the rounds.
 */
export async function coldSection<A extends ColdAgent>(h: Harness<A>, n: number): Promise<ColdResult[]> {
  const s = h.settings
  const systems = s.systems.filter((system) => COLD_SYSTEMS.has(system))
  const rounds = new Map<string, Array<{ rate: number; gcMs: number; allocated: number; collections: number }>>()
  if (systems.length === 0) return []
  h.log(
    `\ncold: a fresh worker process (no warm-up) drains the first ${fmt(n)} messages; its GC profiled; ` +
      `${s.rounds} round(s), median kept`,
  )
  let cell = 0
  for (let round = 0; round < s.rounds; round++) {
    for (const concurrency of s.concurrencies) {
      const shift = cell++ % systems.length
      for (const system of [...systems.slice(shift), ...systems.slice(0, shift)]) {
        await h.record(`cold c=${concurrency}`, system, async () => {
          // Replace agent 1: the consumer must be a process that has run nothing yet.
          const [, used] = (await h.ensurePool(2)) as [A, A]
          await used.close()
          const [producer, fresh] = (await h.ensurePool(2)) as [A, A]
          await h.reset(producer, system)
          const queue = `cold_${system.replace(/\W/g, '_')}_${concurrency}`
          await producer.call({ t: 'open', system, ctx: h.ctx, queue, producer: true })
          await fresh.call({ t: 'open', system, ctx: h.ctx, queue, producer: false, concurrency, measureGc: true })
          await producer.call({ t: 'fill', count: n, start: 0, batch: s.batch })
          const { t0, stats } = await h.drain([fresh], n)
          await producer.call({ t: 'stop' })
          const [stat] = stats
          if (!stat || stat.count !== n) throw new Error(`processed ${stat?.count ?? 0} messages, expected ${n}`)
          const rate = (n / (stat.lastAt - t0)) * 1000
          const gc = stat.gc ?? { collections: NaN, ms: NaN, allocated: NaN }
          const key = `${system}|${concurrency}`
          rounds.set(key, [
            ...(rounds.get(key) ?? []),
            { rate, gcMs: gc.ms, allocated: gc.allocated, collections: gc.collections },
          ])
          h.log(
            `  ${`${system} c=${concurrency} cold`.padEnd(26)} ${fmt(rate).padStart(9)} msgs/s   ` +
              `GC ${gc.ms.toFixed(0)} ms in ${gc.collections}, ${fmt(gc.allocated / n)} B/msg`,
          )
        })
      }
    }
  }
  const results: ColdResult[] = []
  for (const [key, samples] of rounds) {
    const [system, concurrency] = key.split('|') as [SystemName, string]
    results.push({
      system,
      concurrency: Number(concurrency),
      n,
      rate: median(samples.map((x) => x.rate)),
      rounds: samples.map((x) => x.rate),
      gcMsPerMessage: median(samples.map((x) => x.gcMs / n)),
      bytesPerMessage: median(samples.map((x) => x.allocated / n)),
      collections: median(samples.map((x) => x.collections)),
    })
  }
  return results
}
