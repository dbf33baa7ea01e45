// Ratios and targets derived from a report (shared by the Markdown and the chart).
import type { SystemName } from '../peers/types.ts'
import type { BenchReport, EndToEndResult } from './types.ts'

export const LABELS: Record<SystemName, string> = {
  'tq-redis': 'tq · Redis',
  bullmq: 'BullMQ',
  'bee-queue': 'bee-queue',
  'raw-redis': 'raw Redis',
  'tq-rabbitmq': 'tq · RabbitMQ',
  'raw-amqp': 'raw amqplib',
  'tq-sqs': 'tq · SQS (fauxqs)',
  'tq-stub': 'tq · StubBroker',
  'tq-postgres': 'tq · PostgreSQL',
  'graphile-worker': 'graphile-worker',
  'pg-boss': 'pg-boss',
}

/** The tq system a peer or ceiling is compared with. */
export const COUNTERPART: Partial<Record<SystemName, SystemName>> = {
  bullmq: 'tq-redis',
  'bee-queue': 'tq-redis',
  'raw-redis': 'tq-redis',
  'raw-amqp': 'tq-rabbitmq',
  'graphile-worker': 'tq-postgres',
  'pg-boss': 'tq-postgres',
}

export function e2e(
  report: BenchReport,
  system: SystemName,
  concurrency: number,
  processes: number,
): EndToEndResult | undefined {
  return report.endToEnd.find((r) => r.system === system && r.concurrency === concurrency && r.processes === processes)
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** The median rate of a cell's rounds (the PostgreSQL section reports medians; the row itself is the best round). */
export function e2eMedian(
  report: BenchReport,
  system: SystemName,
  concurrency: number,
  processes: number,
): number | undefined {
  const row = e2e(report, system, concurrency, processes)
  if (!row) return undefined
  return row.rounds.length ? median(row.rounds) : row.rate
}

export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) && Number.isFinite(b) ? a / b : undefined
}

export const topConcurrency = (report: BenchReport): number => Math.max(...report.settings.concurrencies)

export interface TargetRow {
  target: string
  measured: string
  /** undefined: not measured in this run. */
  met: boolean | undefined
}

const times = (r: number | undefined): string => (r === undefined ? '—' : `${r.toFixed(2)}×`)
const pct = (r: number | undefined): string => (r === undefined ? '—' : `${Math.round(r * 100)} %`)
const ms = (v: number): string => `${v.toFixed(2)} ms`

export function targets(report: BenchReport): TargetRow[] {
  const rows: TargetRow[] = []
  const top = topConcurrency(report)
  const { concurrencies, processes } = report.settings

  const vsBull: Array<[string, number | undefined]> = []
  for (const p of processes) {
    for (const c of concurrencies) {
      vsBull.push([`${p}×c${c}`, ratio(e2e(report, 'tq-redis', c, p)?.rate, e2e(report, 'bullmq', c, p)?.rate)])
    }
  }
  const bullKnown = vsBull.filter(([, r]) => r !== undefined) as Array<[string, number]>
  rows.push({
    target: 'Redis end to end ≥ 2.5× BullMQ at equal concurrency (warm)',
    measured: bullKnown.length ? bullKnown.map(([cell, r]) => `${cell} ${times(r)}`).join(', ') : '—',
    met: bullKnown.length ? bullKnown.every(([, r]) => r >= 2.5) : undefined,
  })

  const cold = report.cold ?? []
  const coldVsBull = [...new Set(cold.map((r) => r.concurrency))].map((c) => {
    const rate = (system: SystemName): number | undefined =>
      cold.find((r) => r.system === system && r.concurrency === c)?.rate
    return [c, ratio(rate('tq-redis'), rate('bullmq'))] as const
  })
  const coldKnown = coldVsBull.filter(([, r]) => r !== undefined) as Array<readonly [number, number]>
  rows.push({
    target: 'Redis end to end ≥ 2× BullMQ cold (a fresh worker process, its first messages)',
    measured: coldKnown.length ? coldKnown.map(([c, r]) => `c${c} ${times(r)}`).join(', ') : '—',
    met: coldKnown.length ? coldKnown.every(([, r]) => r >= 2) : undefined,
  })

  const vsRaw = processes.map(
    (p) => [p, ratio(e2e(report, 'tq-redis', top, p)?.rate, e2e(report, 'raw-redis', top, p)?.rate)] as const,
  )
  const rawKnown = vsRaw.filter(([, r]) => r !== undefined) as Array<readonly [number, number]>
  rows.push({
    target: `Redis end to end (c=${top}) ≥ 75 % of raw Redis LPUSH/RPOP (pipelined)`,
    measured: rawKnown.length ? rawKnown.map(([p, r]) => `${p} worker${p > 1 ? 's' : ''} ${pct(r)}`).join(', ') : '—',
    met: rawKnown.length ? rawKnown.every(([, r]) => r >= 0.75) : undefined,
  })

  const vsAmqp = processes.map(
    (p) => [p, ratio(e2e(report, 'tq-rabbitmq', top, p)?.rate, e2e(report, 'raw-amqp', top, p)?.rate)] as const,
  )
  const amqpKnown = vsAmqp.filter(([, r]) => r !== undefined) as Array<readonly [number, number]>
  rows.push({
    target: `RabbitMQ end to end (c=${top}) ≥ 70 % of raw amqplib`,
    measured: amqpKnown.length ? amqpKnown.map(([p, r]) => `${p} worker${p > 1 ? 's' : ''} ${pct(r)}`).join(', ') : '—',
    met: amqpKnown.length ? amqpKnown.every(([, r]) => r >= 0.7) : undefined,
  })

  const latency = (system: SystemName) => report.latency.find((l) => l.system === system)
  const lat = latency('tq-redis')
  const bee = latency('bee-queue')
  rows.push({
    target: 'Redis idle latency p50 and p99 ≤ bee-queue’s',
    measured: lat && bee ? `p50 ${ms(lat.p50)} vs ${ms(bee.p50)}, p99 ${ms(lat.p99)} vs ${ms(bee.p99)}` : '—',
    met: lat && bee ? lat.p50 <= bee.p50 && lat.p99 <= bee.p99 : undefined,
  })
  const rabbit = latency('tq-rabbitmq')
  const amqp = latency('raw-amqp')
  rows.push({
    target: 'RabbitMQ idle latency p99 ≤ raw amqplib’s (a pushed consumer, no worker)',
    measured: rabbit && amqp ? `${ms(rabbit.p99)} vs ${ms(amqp.p99)}` : '—',
    met: rabbit && amqp ? rabbit.p99 <= amqp.p99 : undefined,
  })

  const enqueue = (system: SystemName) => report.enqueue.find((e) => e.system === system)
  const single = (system: SystemName): number | undefined => enqueue(system)?.singleRate
  const vsAdd = ratio(single('tq-redis'), single('bullmq'))
  const vsLpush = ratio(single('tq-redis'), single('raw-redis'))
  rows.push({
    target: 'Redis single send ≥ 1.4× BullMQ’s add and ≥ 0.85× raw unpipelined LPUSH',
    measured: `${times(vsAdd)} BullMQ, ${times(vsLpush)} raw`,
    met: vsAdd !== undefined && vsLpush !== undefined ? vsAdd >= 1.4 && vsLpush >= 0.85 : undefined,
  })
  const window = report.settings.inFlightWindow ?? 100
  const inFlight = ratio(enqueue('tq-rabbitmq')?.inFlightRate, enqueue('raw-amqp')?.inFlightRate)
  rows.push({
    target: `RabbitMQ send with ${window} in flight ≥ 0.85× raw amqplib (a confirm callback per publish)`,
    measured: times(inFlight),
    met: inFlight === undefined ? undefined : inFlight >= 0.85,
  })

  const mem = report.memory.find((m) => m.system === 'tq-redis')
  rows.push({
    target: `Worker RSS ≤ 120 MB with ${report.settings.memoryQueued.toLocaleString('en-US')} queued`,
    measured: mem ? `${mem.queuedMb.toFixed(0)} MB` : '—',
    met: mem ? mem.queuedMb <= 120 : undefined,
  })
  const growth = mem ? mem.endMb - mem.tenthMb : undefined
  rows.push({
    target: `Worker RSS flat over ${report.settings.memoryProcessed.toLocaleString('en-US')} processed (≤ 10 % growth after the first tenth)`,
    measured: mem
      ? `${mem.tenthMb.toFixed(0)} MB at 10 % → ${mem.endMb.toFixed(0)} MB at the end (${growth !== undefined && growth >= 0 ? '+' : ''}${(growth ?? 0).toFixed(0)} MB)` +
        (report.mode === 'quick' ? '; the 1 M run is in the full mode only' : '')
      : '—',
    met: mem ? mem.endMb <= mem.tenthMb * 1.1 : undefined,
  })
  return rows
}
