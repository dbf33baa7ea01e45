import type { WorkerHeartbeat } from '@tq/core'
import { type Html, h } from '../html.ts'
import { formatAge, formatCount, formatTime } from '../format.ts'
import { type PageContext, errorBox, layout, trackingOff } from './layout.ts'

export type WorkersResult =
  { kind: 'list'; workers: WorkerHeartbeat[] } | { kind: 'tracking-off' } | { kind: 'error'; text: string }

function row(ctx: PageContext, w: WorkerHeartbeat): Html {
  return h`<tr data-worker-id="${w.id}">
<td class="mono">${w.id}</td>
<td>${w.host}</td>
<td class="num">${w.pid}</td>
<td>${w.queues.map((q, i) => h`${i > 0 ? ', ' : ''}<a href="${ctx.base}/messages?queue=${encodeURIComponent(q)}">${q}</a>`)}</td>
<td class="num">${formatCount(w.concurrency)}</td>
<td class="num">${formatCount(w.inFlight)}</td>
<td class="num">${formatCount(w.processed)}</td>
<td class="num">${formatCount(w.failed)}</td>
<td title="${formatTime(w.startedAt)}">${formatAge(w.startedAt, ctx.now)}</td>
<td title="${formatTime(w.lastSeen)}" data-last-seen>${formatAge(w.lastSeen, ctx.now)}</td>
</tr>`
}

export function workersPage(ctx: PageContext, result: WorkersResult): Html {
  let content: Html
  if (result.kind === 'tracking-off') content = trackingOff('Worker heartbeats')
  else if (result.kind === 'error') content = errorBox(result.text)
  else if (result.workers.length === 0) content = h`<p class="muted">No worker has sent a heartbeat lately.</p>`
  else
    content = h`<table id="workers">
<thead><tr><th>ID</th><th>Host</th><th class="num">PID</th><th>Queues</th><th class="num">Concurrency</th><th class="num">In flight</th><th class="num">Processed</th><th class="num">Failed</th><th>Started</th><th>Last heartbeat</th></tr></thead>
<tbody>${result.workers.map((w) => row(ctx, w))}</tbody>
</table>`
  const count =
    result.kind === 'list' ? h` <span class="muted" data-workers-online>${result.workers.length} online</span>` : ''
  const body = h`<h1>Workers${count}</h1><section class="panel">${content}</section>`
  return layout(ctx, { title: 'Workers', page: 'workers', body })
}

/** A page that says what went wrong (404, 403, 400, 500). */
export function errorPage(ctx: PageContext, title: string, text: string): Html {
  const body = h`<h1>${title}</h1>${errorBox(text)}<p><a href="${ctx.base}/">Back to the overview</a></p>`
  return layout(ctx, { title, page: 'error', body })
}
