import { MESSAGE_STATES, type TrackedMessage } from '@tq/core'
import { type Html, h } from '../html.ts'
import { formatAge, formatTime, shortId } from '../format.ts'
import { type PageContext, errorBox, layout, stateBadge, trackingOff } from './layout.ts'

/** The filters of the messages page, as the query string gave them. */
export interface MessageFilters {
  queue?: string | undefined
  state?: string | undefined
  actor?: string | undefined
  search?: string | undefined
  cursor?: string | undefined
}

export type MessagesResult =
  | { kind: 'page'; items: TrackedMessage[]; cursor?: string | undefined }
  | { kind: 'tracking-off' }
  | { kind: 'error'; text: string }

/** `?queue=…&state=…` for the filters that are set (and a cursor, when given). */
export function filterQuery(filters: MessageFilters, cursor?: string): string {
  const params = new URLSearchParams()
  for (const key of ['queue', 'state', 'actor', 'search'] as const) {
    const value = filters[key]
    if (value) params.set(key, value)
  }
  if (cursor) params.set('cursor', cursor)
  const text = params.toString()
  return text ? `?${text}` : ''
}

function filterForm(ctx: PageContext, filters: MessageFilters, queueNames: readonly string[]): Html {
  const names = filters.queue && !queueNames.includes(filters.queue) ? [...queueNames, filters.queue] : queueNames
  const queue =
    names.length > 0
      ? h`<select name="queue"><option value="">any</option>${names.map(
          (name) => h`<option value="${name}"${name === filters.queue ? h` selected` : ''}>${name}</option>`,
        )}</select>`
      : h`<input name="queue" value="${filters.queue ?? ''}">`
  const state = h`<select name="state"><option value="">any</option>${MESSAGE_STATES.map(
    (s) => h`<option value="${s}"${s === filters.state ? h` selected` : ''}>${s}</option>`,
  )}</select>`
  return h`<form class="filters panel" method="get" action="${ctx.base}/messages" role="search">
<label>Queue ${queue}</label>
<label>State ${state}</label>
<label>Actor <input name="actor" value="${filters.actor ?? ''}" autocomplete="off"></label>
<label>Search <input type="search" name="search" value="${filters.search ?? ''}" placeholder="id, actor or argument text" autocomplete="off"></label>
<button type="submit">Filter</button>
<a href="${ctx.base}/messages">Clear</a>
</form>`
}

function row(ctx: PageContext, m: TrackedMessage): Html {
  return h`<tr data-message-id="${m.messageId}">
<td class="mono"><a href="${ctx.base}/messages/${encodeURIComponent(m.messageId)}" title="${m.messageId}">${shortId(m.messageId)}</a></td>
<td>${stateBadge(m.state)}</td>
<td>${m.actorName}</td>
<td>${m.queueName}</td>
<td title="${formatTime(m.enqueuedAt)}">${formatAge(m.enqueuedAt, ctx.now)}</td>
<td class="num">${m.attempts.length}</td>
<td title="${formatTime(m.updatedAt)}">${formatAge(m.updatedAt, ctx.now)}</td>
</tr>`
}

export function messagesPage(
  ctx: PageContext,
  filters: MessageFilters,
  queueNames: readonly string[],
  result: MessagesResult,
): Html {
  let content: Html
  if (result.kind === 'tracking-off') content = trackingOff('Listing and searching messages')
  else if (result.kind === 'error') content = errorBox(result.text)
  else {
    const next = result.cursor
      ? h`<a href="${ctx.base}/messages${filterQuery(filters, result.cursor)}" rel="next" data-next>Next page →</a>`
      : ''
    const first = filters.cursor ? h`<a href="${ctx.base}/messages${filterQuery(filters)}" data-first>← Newest</a>` : ''
    const empty =
      result.items.length === 0
        ? h`<p class="muted">${result.cursor ? 'Nothing matched in this stretch of the index; the next page may hold more.' : 'No messages match.'}</p>`
        : ''
    content = h`<div class="panel">
<table id="messages">
<thead><tr><th>ID</th><th>State</th><th>Actor</th><th>Queue</th><th>Enqueued</th><th class="num">Attempts</th><th>Updated</th></tr></thead>
<tbody>${result.items.map((m) => row(ctx, m))}</tbody>
</table>
${empty}
<div class="pager">${first}${next}</div>
</div>`
  }
  const body = h`<h1>Messages</h1>
${filterForm(ctx, filters, queueNames)}
${content}`
  return layout(ctx, { title: 'Messages', page: 'messages', body })
}
