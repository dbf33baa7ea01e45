// docs/benchmarks.svg and docs/benchmarks-postgres.svg: grouped bars, drawn by hand (no chart library).
// Top: end-to-end throughput per (worker processes × concurrency), one bar per system.
// Bottom: bulk enqueue throughput per system.
import type { SystemName } from '../peers/types.ts'
import { LABELS, e2e, e2eMedian } from './analysis.ts'
import type { BenchReport } from './types.ts'

const COLORS: Record<SystemName, string> = {
  'tq-redis': '#c0392b',
  bullmq: '#2e86de',
  'bee-queue': '#e1b12c',
  'raw-redis': '#7f8c8d',
  'tq-rabbitmq': '#e67e22',
  'raw-amqp': '#b2bec3',
  'tq-sqs': '#27ae60',
  'tq-stub': '#8e44ad',
  'tq-postgres': '#c0392b',
  'graphile-worker': '#16a085',
  'pg-boss': '#2c3e50',
}
// The in-memory StubBroker runs an order of magnitude faster than anything on a network and
// would flatten every other bar: it stays in the tables only.
// The PostgreSQL systems have a chart of their own (renderPostgresChart).
const ORDER: SystemName[] = ['tq-redis', 'bullmq', 'bee-queue', 'raw-redis', 'tq-rabbitmq', 'raw-amqp', 'tq-sqs']
const POSTGRES_ORDER: SystemName[] = ['tq-postgres', 'graphile-worker', 'pg-boss']

const WIDTH = 980
const BAR = 14
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function short(value: number): string {
  if (value >= 100_000) return `${Math.round(value / 1000)}k`
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`
  return `${Math.round(value)}`
}

function niceMax(value: number): { max: number; step: number } {
  if (!(value > 0)) return { max: 1, step: 1 }
  const raw = value / 5
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw
  return { max: Math.ceil(value / step) * step, step }
}

interface Group {
  label: string
  bars: Array<{ system: SystemName; value: number }>
}

/** One panel of grouped bars with its own y axis; returns SVG elements and the panel height. */
function panel(title: string, groups: Group[], top: number, height: number): string {
  const left = 70
  const right = WIDTH - 20
  const plotTop = top + 28
  const plotBottom = top + height - 34
  const values = groups.flatMap((g) => g.bars.map((b) => b.value))
  const { max, step } = niceMax(Math.max(0, ...values) * 1.15) // headroom for the labels above the bars
  const y = (v: number): number => plotBottom - (v / max) * (plotBottom - plotTop)
  const out: string[] = []
  out.push(`<text x="${left}" y="${top + 16}" font-size="15" font-weight="600" ${FONT}>${esc(title)}</text>`)
  for (let v = 0; v <= max + step / 2; v += step) {
    out.push(`<line x1="${left}" x2="${right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`)
    out.push(
      `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#555" ${FONT}>${short(v)}</text>`,
    )
  }
  out.push(
    `<text x="16" y="${((plotTop + plotBottom) / 2).toFixed(1)}" font-size="11" fill="#555" transform="rotate(-90 16 ${((plotTop + plotBottom) / 2).toFixed(1)})" text-anchor="middle" ${FONT}>messages / s</text>`,
  )
  const groupWidth = (right - left) / Math.max(1, groups.length)
  groups.forEach((group, gi) => {
    const center = left + groupWidth * (gi + 0.5)
    const start = center - (group.bars.length * BAR) / 2
    group.bars.forEach((bar, bi) => {
      const x = start + bi * BAR
      const h = plotBottom - y(bar.value)
      out.push(
        `<rect x="${(x + 1).toFixed(1)}" y="${y(bar.value).toFixed(1)}" width="${BAR - 2}" height="${Math.max(0, h).toFixed(1)}" fill="${COLORS[bar.system]}"><title>${esc(`${LABELS[bar.system]}, ${group.label}: ${Math.round(bar.value).toLocaleString('en-US')} msgs/s`)}</title></rect>`,
      )
      out.push(
        `<text x="${(x + BAR / 2).toFixed(1)}" y="${(y(bar.value) - 3).toFixed(1)}" font-size="8.5" text-anchor="start" fill="#333" transform="rotate(-90 ${(x + BAR / 2).toFixed(1)} ${(y(bar.value) - 3).toFixed(1)})" dominant-baseline="middle" ${FONT}>${short(bar.value)}</text>`,
      )
    })
    out.push(
      `<text x="${center.toFixed(1)}" y="${plotBottom + 16}" font-size="11.5" text-anchor="middle" fill="#222" ${FONT}>${esc(group.label)}</text>`,
    )
  })
  out.push(`<line x1="${left}" x2="${right}" y1="${plotBottom}" y2="${plotBottom}" stroke="#999"/>`)
  return out.join('\n')
}

interface Chart {
  title: string
  subtitle: string
  systems: SystemName[]
  e2eTitle: string
  e2eGroups: Group[]
  enqueueGroups: Group[]
}

function draw(report: BenchReport, chart: Chart): string {
  const legendY = 44
  const legend = chart.systems
    .map((system, i) => {
      const x = 70 + (i % 4) * 225
      const yy = legendY + Math.floor(i / 4) * 18
      return `<rect x="${x}" y="${yy - 10}" width="12" height="12" fill="${COLORS[system]}"/><text x="${x + 17}" y="${yy}" font-size="12" ${FONT}>${esc(LABELS[system])}</text>`
    })
    .join('\n')
  const legendHeight = Math.ceil(chart.systems.length / 4) * 18
  const e2eTop = legendY + legendHeight + 6
  const e2eHeight = 330
  const enqTop = e2eTop + e2eHeight + 10
  const enqHeight = 250
  const height = enqTop + enqHeight + 26
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="70" y="22" font-size="17" font-weight="700" ${FONT}>${esc(chart.title)}</text>`,
    legend,
    panel(chart.e2eTitle, chart.e2eGroups, e2eTop, e2eHeight),
    panel(`Enqueue: bulk calls of ${report.settings.batch} (higher is better)`, chart.enqueueGroups, enqTop, enqHeight),
    `<text x="70" y="${height - 8}" font-size="10.5" fill="#666" ${FONT}>${esc(chart.subtitle)}</text>`,
    `</svg>`,
    '',
  ].join('\n')
}

/** Systems of `order` with a number in the report. */
function presentSystems(report: BenchReport, order: SystemName[]): SystemName[] {
  const present = new Set(report.endToEnd.map((r) => r.system))
  for (const e of report.enqueue) if (Number.isFinite(e.bulkRate)) present.add(e.system)
  return order.filter((s) => present.has(s))
}

function enqueueGroups(report: BenchReport, systems: SystemName[]): Group[] {
  return systems
    .map((system) => ({ system, value: report.enqueue.find((e) => e.system === system)?.bulkRate ?? NaN }))
    .filter((b) => Number.isFinite(b.value))
    .map((bar) => ({ label: LABELS[bar.system].replace(' (fauxqs)', ''), bars: [bar] }))
}

export function renderChart(report: BenchReport): string {
  const systems = presentSystems(report, ORDER)
  const e2eGroups: Group[] = []
  for (const p of report.settings.processes) {
    for (const c of report.settings.concurrencies) {
      const bars = systems
        .map((system) => ({ system, value: e2e(report, system, c, p)?.rate ?? NaN }))
        .filter((b) => Number.isFinite(b.value))
      if (bars.length) e2eGroups.push({ label: `${p} worker${p > 1 ? 's' : ''} × c=${c}`, bars })
    }
  }
  const m = report.machine
  return draw(report, {
    title: 'tq vs BullMQ, bee-queue and raw clients — same machine, same servers',
    subtitle:
      `${report.mode === 'quick' ? 'QUICK run (small N) — ' : ''}${report.settings.n.toLocaleString('en-US')} no-op messages per run · ` +
      `${m.cpuModel}, ${m.cores} cores · Node ${m.node} · Redis ${m.redis} · RabbitMQ ${m.rabbitmq} · tq · StubBroker (in memory) is in the tables only`,
    systems,
    e2eTitle: 'End to end: queue filled first, then drained (higher is better)',
    e2eGroups,
    enqueueGroups: enqueueGroups(report, systems),
  })
}

/** docs/benchmarks-postgres.svg: tq on PostgreSQL, graphile-worker and pg-boss (medians of the rounds). */
export function renderPostgresChart(report: BenchReport): string {
  const systems = presentSystems(report, POSTGRES_ORDER)
  const e2eGroups: Group[] = []
  for (const p of report.settings.processes) {
    for (const c of report.settings.concurrencies) {
      const bars = systems
        .map((system) => ({ system, value: e2eMedian(report, system, c, p) ?? NaN }))
        .filter((b) => Number.isFinite(b.value))
      if (bars.length) e2eGroups.push({ label: `${p} worker${p > 1 ? 's' : ''} × c=${c}`, bars })
    }
  }
  const delayed = report.delayed ?? []
  const first = delayed[0]
  if (first) {
    const bars = systems
      .map((system) => ({ system, value: delayed.find((d) => d.system === system)?.rate ?? NaN }))
      .filter((b) => Number.isFinite(b.value))
    const backlog =
      first.backlog >= 1_000_000 ? `${first.backlog / 1_000_000} M` : `${Math.round(first.backlog / 1000)}k`
    if (bars.length) e2eGroups.push({ label: `1 × c=${first.concurrency}, ${backlog} delayed`, bars })
  }
  const m = report.machine
  return draw(report, {
    title: 'tq on PostgreSQL vs graphile-worker and pg-boss — same machine, same server',
    subtitle:
      `${report.mode === 'quick' ? 'QUICK run (small N) — ' : ''}${report.settings.n.toLocaleString('en-US')} no-op messages per run, ` +
      `median of ${report.settings.rounds} round${report.settings.rounds > 1 ? 's' : ''} · ${m.cpuModel}, ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres ?? '?'}`,
    systems,
    e2eTitle: 'End to end: queue filled first, then drained (higher is better)',
    e2eGroups,
    enqueueGroups: enqueueGroups(report, systems),
  })
}
