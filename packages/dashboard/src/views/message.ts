import { FINAL_STATES, type TrackedAttempt, type TrackedMessage } from '@tq/core'
import { type Html, h } from '../html.ts'
import { PREVIEW_CHARS, formatAge, formatCount, formatDuration, formatTime, jsonPreview } from '../format.ts'
import { type PageContext, actionForm, layout, stateBadge } from './layout.ts'

/** Text cut at the preview length. */
function clip(text: string): string {
  return text.length > PREVIEW_CHARS
    ? `${text.slice(0, PREVIEW_CHARS)}\n… (${formatCount(text.length - PREVIEW_CHARS)} more characters)`
    : text
}

function jsonBlock(label: string, value: unknown, download?: string): Html {
  const preview = jsonPreview(value)
  const link = download ? h` <a href="${download}" download>Download the full JSON</a>` : ''
  const more =
    preview.omitted > 0
      ? h`<p class="small" data-truncated>Showing the first ${formatCount(preview.text.length)} characters; ${formatCount(preview.omitted)} more left out.${link}</p>`
      : ''
  return h`<h2>${label}</h2><pre data-json="${label.toLowerCase()}">${preview.text}</pre>${more}`
}

function argumentsSection(m: TrackedMessage, download: string): Html {
  if (m.argsTruncated) {
    const get = m.body
      ? h` <a href="${download}" download>Download them as JSON</a> (decoded from the message tracking kept).`
      : ''
    return h`<h2>Arguments</h2><p class="notice" data-args-truncated>The arguments were too large to keep in the record (over the tracking <code>maxArgsBytes</code>).${get}</p>`
  }
  return h`${jsonBlock('Args', m.args ?? [], download)}${jsonBlock('Kwargs', m.kwargs ?? {}, download)}`
}

function progressSection(m: TrackedMessage): Html {
  if (m.progress === undefined) return h``
  const p = m.progress
  if (typeof p === 'number' && p >= 0 && p <= 1) {
    return h`<h2>Progress</h2><p data-progress><progress max="1" value="${p}"></progress> ${(p * 100).toFixed(1)} %</p>`
  }
  return h`<h2>Progress</h2><pre data-progress>${jsonPreview(p).text}</pre>`
}

function attemptBlock(ctx: PageContext, a: TrackedAttempt): Html {
  const took = a.finishedAt === undefined ? 'running' : formatDuration(a.finishedAt - a.startedAt)
  const error = a.error
    ? h`<p><span class="error-type" data-error-type>${a.error.type}</span>: <span data-error-message>${a.error.message}</span></p>
${a.error.stack ? h`<details><summary>Stack trace</summary><pre data-stack>${clip(a.error.stack)}</pre></details>` : ''}`
    : a.finishedAt !== undefined
      ? h`<p class="muted">Succeeded.</p>`
      : ''
  return h`<div class="attempt" data-attempt="${a.number}">
<strong>Attempt ${a.number}</strong> <span class="muted small">on <span class="mono">${a.workerId}</span>, started ${formatTime(a.startedAt)} (${formatAge(a.startedAt, ctx.now)}), ${took}</span>
${error}
</div>`
}

interface Event {
  at: number
  text: Html
  tone?: 'ok' | 'bad'
}

function timeline(m: TrackedMessage): Html {
  const events: Event[] = [{ at: m.enqueuedAt, text: h`Enqueued on <strong>${m.queueName}</strong>` }]
  for (const a of m.attempts) {
    events.push({ at: a.startedAt, text: h`Attempt ${a.number} started on <span class="mono">${a.workerId}</span>` })
    if (a.finishedAt !== undefined) {
      events.push(
        a.error
          ? { at: a.finishedAt, text: h`Attempt ${a.number} failed: ${a.error.type}`, tone: 'bad' }
          : { at: a.finishedAt, text: h`Attempt ${a.number} succeeded`, tone: 'ok' },
      )
    }
  }
  if (m.eta !== undefined && !FINAL_STATES.has(m.state)) events.push({ at: m.eta, text: h`Due` })
  events.push({
    at: m.updatedAt,
    text: h`Last update: ${stateBadge(m.state)}`,
    ...(m.state === 'succeeded'
      ? { tone: 'ok' as const }
      : m.state === 'dead' || m.state === 'failed'
        ? { tone: 'bad' as const }
        : {}),
  })
  events.sort((a, b) => a.at - b.at)
  return h`<ol class="timeline" data-timeline>${events.map(
    (e) =>
      h`<li${e.tone ? h` class="${e.tone}"` : ''}><span class="mono small">${formatTime(e.at)}</span> <span class="muted small">(+${formatDuration(e.at - m.enqueuedAt)})</span><br>${e.text}</li>`,
  )}</ol>`
}

export function messagePage(ctx: PageContext, m: TrackedMessage): Html {
  const id = encodeURIComponent(m.messageId)
  const back = `${ctx.base}/messages/${id}`
  const download = `${ctx.base}/messages/${id}/arguments.json`
  const finished = FINAL_STATES.has(m.state)
  const actions = ctx.readOnly
    ? h``
    : h`<div class="actions panel" data-actions>
${finished ? actionForm(ctx, { name: 'retry', action: `/messages/${id}/retry`, label: 'Retry', back }) : ''}
${finished ? '' : actionForm(ctx, { name: 'cancel', action: `/messages/${id}/cancel`, label: 'Cancel', back, danger: true })}
${actionForm(ctx, {
  name: 'delete',
  action: `/messages/${id}/delete`,
  label: 'Delete',
  back: `${ctx.base}/messages`,
  danger: true,
  confirm: 'Delete this message? A message still waiting is cancelled so it never runs.',
})}
</div>`
  const facts = h`<dl class="facts">
<dt>ID</dt><dd class="mono" data-id>${m.messageId}</dd>
<dt>State</dt><dd>${stateBadge(m.state)}</dd>
<dt>Actor</dt><dd data-actor>${m.actorName}</dd>
<dt>Queue</dt><dd data-queue-name><a href="${ctx.base}/messages?queue=${encodeURIComponent(m.queueName)}">${m.queueName}</a></dd>
<dt>Enqueued</dt><dd>${formatTime(m.enqueuedAt)} <span class="muted">(${formatAge(m.enqueuedAt, ctx.now)})</span></dd>
<dt>Updated</dt><dd>${formatTime(m.updatedAt)} <span class="muted">(${formatAge(m.updatedAt, ctx.now)})</span></dd>
${m.eta !== undefined ? h`<dt>Due</dt><dd>${formatTime(m.eta)} <span class="muted">(${formatAge(m.eta, ctx.now)})</span></dd>` : ''}
${m.workerId ? h`<dt>Worker</dt><dd class="mono">${m.workerId}</dd>` : ''}
<dt>Attempts</dt><dd>${m.attempts.length}</dd>
</dl>`
  const body = h`<h1>Message <span class="mono">${m.messageId}</span></h1>
${actions}
<section class="panel">${facts}</section>
<section class="panel">${progressSection(m)}${argumentsSection(m, download)}${jsonBlock('Options', m.options)}</section>
<section class="panel"><h2>Attempts</h2>${m.attempts.length === 0 ? h`<p class="muted">Not run yet.</p>` : m.attempts.map((a) => attemptBlock(ctx, a))}</section>
<section class="panel"><h2>Timeline</h2>${timeline(m)}</section>`
  // A page whose message may still change reloads when it does (and so does one just acted on).
  const watch = !finished || ctx.flash !== undefined
  return layout(ctx, {
    title: `Message ${m.messageId}`,
    page: 'message',
    body,
    bodyAttributes: h` data-message-id="${m.messageId}"${watch ? h` data-watch-state="${m.state}"` : ''}`,
  })
}
