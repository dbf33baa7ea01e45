import { type Html, h } from '../html.ts'
import { formatCount } from '../format.ts'
import { type MinuteTotals, throughputChart } from './chart.ts'
import { type PageContext, actionForm, errorBox, layout, trackingOff } from './layout.ts'

/** A queue row: the broker's counts and the last hour's finished attempts (with tracking). */
export interface QueueRow {
  name: string
  ready: number
  delayed: number
  running: number | undefined
  dead: number
  processed: number | undefined
  failed: number | undefined
}

export interface OverviewData {
  queues: QueueRow[]
  /** Why the queues could not be counted. */
  queueError?: string | undefined
  /** Workers with a current heartbeat; `undefined` without tracking. */
  workers: number | undefined
  tracking: boolean
  /** The last hour per minute; `undefined` without tracking. */
  minutes: MinuteTotals[] | undefined
}

export interface OverviewTotals {
  ready: number
  delayed: number
  running: number | undefined
  dead: number
  workers: number | undefined
  processed: number | undefined
  failed: number | undefined
}

export function overviewTotals(data: OverviewData): OverviewTotals {
  const sum = (pick: (q: QueueRow) => number): number => data.queues.reduce((total, q) => total + pick(q), 0)
  const known = data.queues.every((q) => q.running !== undefined)
  return {
    ready: sum((q) => q.ready),
    delayed: sum((q) => q.delayed),
    running: known ? sum((q) => q.running ?? 0) : undefined,
    dead: sum((q) => q.dead),
    workers: data.workers,
    processed: data.minutes?.reduce((total, m) => total + m.processed, 0),
    failed: data.minutes?.reduce((total, m) => total + m.failed, 0),
  }
}

export function chartMarkup(data: OverviewData): Html {
  return data.minutes
    ? throughputChart(data.minutes)
    : h`<p class="muted" data-tracking-off>No throughput without tracking.</p>`
}

function card(label: string, key: keyof OverviewTotals, value: number | undefined): Html {
  return h`<div class="card"><div class="label">${label}</div><div class="value" data-total="${key}">${formatCount(value)}</div></div>`
}

function queueRow(ctx: PageContext, q: QueueRow): Html {
  const path = encodeURIComponent(q.name)
  const back = `${ctx.base}/`
  const redrive = actionForm(ctx, {
    name: 'redrive',
    action: `/queues/${path}/redrive`,
    label: 'Redrive dead',
    back,
  })
  const purge = ctx.readOnly
    ? h``
    : h`<details class="purge"><summary>Purge…</summary>${actionForm(ctx, {
        name: 'purge',
        action: `/queues/${path}/purge`,
        label: 'Purge',
        danger: true,
        back,
        fields: h`<input name="confirm" autocomplete="off" required placeholder="type ${q.name}" aria-label="Type the queue name to confirm" data-confirm-name="${q.name}">`,
      })}</details>`
  return h`<tr data-queue="${q.name}">
<td><a href="${ctx.base}/messages?queue=${path}">${q.name}</a></td>
<td class="num" data-count="ready">${formatCount(q.ready)}</td>
<td class="num" data-count="delayed">${formatCount(q.delayed)}</td>
<td class="num" data-count="running">${formatCount(q.running)}</td>
<td class="num"><a href="${ctx.base}/messages?queue=${path}&amp;state=dead" data-count="dead">${formatCount(q.dead)}</a></td>
<td class="num" data-count="processed">${formatCount(q.processed)}</td>
<td class="num" data-count="failed">${formatCount(q.failed)}</td>
${ctx.readOnly ? '' : h`<td><div class="actions">${redrive}${purge}</div></td>`}
</tr>`
}

export function overviewPage(ctx: PageContext, data: OverviewData): Html {
  const totals = overviewTotals(data)
  const body = h`<h1>Overview <span class="live muted" data-live data-status="live">live</span></h1>
${data.queueError ? errorBox(`The queues could not be counted: ${data.queueError}`) : ''}
<div class="cards">
${card('Ready', 'ready', totals.ready)}${card('Delayed', 'delayed', totals.delayed)}${card('Running', 'running', totals.running)}${card('Dead', 'dead', totals.dead)}${card('Workers online', 'workers', totals.workers)}${card('Processed, last hour', 'processed', totals.processed)}
</div>
<section class="panel chart">
<h2>Throughput, last hour</h2>
<div id="throughput-chart">${chartMarkup(data)}</div>
<div class="legend"><span><span class="swatch processed"></span>processed per minute</span><span><span class="swatch failed"></span>failed</span></div>
</section>
<section class="panel">
<h2>Queues</h2>
${data.tracking ? '' : trackingOff('Messages, workers and throughput')}
<table id="queues">
<thead><tr><th>Queue</th><th class="num">Ready</th><th class="num">Delayed</th><th class="num">Running</th><th class="num">Dead</th><th class="num">Processed (1 h)</th><th class="num">Failed (1 h)</th>${ctx.readOnly ? '' : h`<th>Actions</th>`}</tr></thead>
<tbody>
${data.queues.map((q) => queueRow(ctx, q))}
</tbody>
</table>
${data.queues.length === 0 && !data.queueError ? h`<p class="muted">No queues are declared on this broker yet.</p>` : ''}
</section>`
  return layout(ctx, { title: 'Overview', page: 'overview', body })
}
