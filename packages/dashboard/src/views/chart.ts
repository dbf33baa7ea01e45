import type { ThroughputCount } from '@tq/core'
import { type Html, h } from '../html.ts'

const MINUTE = 60_000
const WIDTH = 900
const HEIGHT = 150
const TOP = 14
const BOTTOM = 18

/** Processed and failed attempts of one minute, summed over the queues. */
export interface MinuteTotals {
  minute: number
  processed: number
  failed: number
}

/** The last `minutes` minutes (the current one last), each with its totals (0 where none). */
export function minuteTotals(counts: readonly ThroughputCount[], now: number, minutes = 60): MinuteTotals[] {
  const last = Math.floor(now / MINUTE) * MINUTE
  const first = last - (minutes - 1) * MINUTE
  const totals = Array.from({ length: minutes }, (_, i) => ({ minute: first + i * MINUTE, processed: 0, failed: 0 }))
  for (const count of counts) {
    const slot = totals[Math.round((count.minute - first) / MINUTE)]
    if (!slot || slot.minute !== count.minute) continue
    slot.processed += count.processed
    slot.failed += count.failed
  }
  return totals
}

const hhmm = (ms: number): string => new Date(ms).toISOString().slice(11, 16)

/**
 * The throughput of the last hour as an inline SVG bar chart: one bar per minute (processed),
 * its failed part drawn over it in red. Numbers only, plus fixed labels.
 */
export function throughputChart(minutes: readonly MinuteTotals[]): Html {
  const peak = Math.max(1, ...minutes.map((m) => m.processed))
  const plot = HEIGHT - TOP - BOTTOM
  const slot = WIDTH / Math.max(1, minutes.length)
  const bar = Math.max(1, slot - 2)
  const y = (value: number): number => TOP + plot - (value / peak) * plot
  const bars = minutes.map((m, i) => {
    const x = (i * slot + 1).toFixed(1)
    const title = h`<title>${hhmm(m.minute)} UTC: ${m.processed} processed, ${m.failed} failed</title>`
    return h`<g>${title}<rect class="processed" x="${x}" y="${y(m.processed).toFixed(1)}" width="${bar.toFixed(1)}" height="${((m.processed / peak) * plot).toFixed(1)}"/>${m.failed > 0 ? h`<rect class="failed" x="${x}" y="${y(m.failed).toFixed(1)}" width="${bar.toFixed(1)}" height="${((m.failed / peak) * plot).toFixed(1)}"/>` : ''}<rect x="${x}" y="${TOP}" width="${bar.toFixed(1)}" height="${plot}" fill="transparent"/></g>`
  })
  const total = minutes.reduce((sum, m) => sum + m.processed, 0)
  const failed = minutes.reduce((sum, m) => sum + m.failed, 0)
  const first = minutes[0]
  const last = minutes[minutes.length - 1]
  return h`<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="Throughput, last ${minutes.length} minutes: ${total} processed, ${failed} failed" data-processed="${total}" data-failed="${failed}">
<line class="axis" x1="0" y1="${TOP + plot + 0.5}" x2="${WIDTH}" y2="${TOP + plot + 0.5}"/>
<line class="axis" x1="0" y1="${TOP - 0.5}" x2="${WIDTH}" y2="${TOP - 0.5}" stroke-dasharray="3 3"/>
<text x="2" y="${TOP - 3}">${peak}/min</text>
${bars}
<text x="2" y="${HEIGHT - 4}">${first ? `${hhmm(first.minute)} UTC` : ''}</text>
<text x="${WIDTH - 2}" y="${HEIGHT - 4}" text-anchor="end">${last ? `${hhmm(last.minute)} UTC` : ''}</text>
</svg>`
}
