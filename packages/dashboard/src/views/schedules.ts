import type { ScheduleInfo } from '@tq/core'
import { type Html, h } from '../html.ts'
import { formatTime } from '../format.ts'
import { type PageContext, errorBox, layout } from './layout.ts'

export type SchedulesResult = { kind: 'list'; schedules: ScheduleInfo[] } | { kind: 'error'; text: string }

/** `cron 0 6 * * MON (America/New_York)`, `every 5000 ms`. */
function when(s: ScheduleInfo): Html {
  if (s.cron !== undefined) return h`<span class="mono">${s.cron}</span> <span class="muted">${s.tz}</span>`
  return h`every ${s.every ?? '?'} ms`
}

function row(ctx: PageContext, s: ScheduleInfo): Html {
  const last =
    s.lastRunAt === undefined || s.lastMessageId === undefined
      ? h`<span class="muted">never</span>`
      : h`<a href="${ctx.base}/messages/${encodeURIComponent(s.lastMessageId)}">${formatTime(s.lastRunAt)}</a>`
  return h`<tr data-schedule-id="${s.id}">
<td class="mono">${s.id}</td>
<td><a href="${ctx.base}/messages?actor=${encodeURIComponent(s.actorName)}">${s.actorName}</a></td>
<td><a href="${ctx.base}/messages?queue=${encodeURIComponent(s.queueName)}">${s.queueName}</a></td>
<td>${when(s)}</td>
<td data-next-run>${s.nextRunAt === undefined ? h`<span class="muted">ended</span>` : formatTime(s.nextRunAt)}</td>
<td data-last-run>${last}</td>
<td>${s.missed}, overlap ${s.overlap}</td>
</tr>`
}

export function schedulesPage(ctx: PageContext, result: SchedulesResult): Html {
  let content: Html
  if (result.kind === 'error') content = errorBox(result.text)
  else if (result.schedules.length === 0) {
    content = h`<p class="muted">No schedules: make a <code>Scheduler</code> for this broker (<code>new Scheduler({ broker, backend })</code>) and add some.</p>`
  } else {
    content = h`<table id="schedules">
<thead><tr><th>ID</th><th>Actor</th><th>Queue</th><th>When</th><th>Next run</th><th>Last run</th><th>Missed, overlap</th></tr></thead>
<tbody>${result.schedules.map((s) => row(ctx, s))}</tbody>
</table>`
  }
  const body = h`<h1>Schedules</h1><section class="panel">${content}</section>`
  return layout(ctx, { title: 'Schedules', page: 'schedules', body })
}
