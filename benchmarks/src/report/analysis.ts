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
    target: 'Redis end to end ≥ 2× BullMQ at equal concurrency',
    measured: bullKnown.length ? bullKnown.map(([cell, r]) => `${cell} ${times(r)}`).join(', ') : '—',
    met: bullKnown.length ? bullKnown.every(([, r]) => r >= 2) : undefined,
  })

  const vsRaw = processes.map(
    (p) => [p, ratio(e2e(report, 'tq-redis', top, p)?.rate, e2e(report, 'raw-redis', top, p)?.rate)] as const,
  )
  const rawKnown = vsRaw.filter(([, r]) => r !== undefined) as Array<readonly [number, number]>
  rows.push({
    target: `Redis end to end (c=${top}) ≥ 40 % of raw Redis LPUSH/RPOP`,
    measured: rawKnown.length ? rawKnown.map(([p, r]) => `${p} worker${p > 1 ? 's' : ''} ${pct(r)}`).join(', ') : '—',
    met: rawKnown.length ? rawKnown.every(([, r]) => r >= 0.4) : undefined,
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

  const lat = report.latency.find((l) => l.system === 'tq-redis')
  rows.push({
    target: 'Redis idle latency p50 ≤ 2 ms',
    measured: lat ? `${lat.p50.toFixed(2)} ms` : '—',
    met: lat ? lat.p50 <= 2 : undefined,
  })
  rows.push({
    target: 'Redis idle latency p99 ≤ 10 ms',
    measured: lat ? `${lat.p99.toFixed(2)} ms` : '—',
    met: lat ? lat.p99 <= 10 : undefined,
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
