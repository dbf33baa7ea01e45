import { TOKEN_FIELD } from '../csrf.ts'
import { type Html, type Renderable, h } from '../html.ts'

/** What every page needs to know about the request it answers. */
export interface PageContext {
  /** The dashboard's path prefix without a trailing slash (`''` at the root). */
  base: string
  /** The CSRF token for this browser's session. */
  token: string
  readOnly: boolean
  /** The broker's class name (never its URL). */
  brokerName: string
  flash?: Flash | undefined
  now: number
}

/** A one-time notice shown after an action. */
export interface Flash {
  kind: 'ok' | 'error'
  text: string
}

export type PageName = 'overview' | 'messages' | 'message' | 'workers' | 'schedules' | 'error'

export interface PageOptions {
  title: string
  page: PageName
  body: Renderable
  /** Extra attributes of `<body>` (already escaped markup). */
  bodyAttributes?: Html
}

/** A whole HTML document around a page's body. */
export function layout(ctx: PageContext, options: PageOptions): Html {
  const nav = (page: PageName, path: string, label: string): Html =>
    h`<a href="${ctx.base}${path}"${options.page === page || (page === 'messages' && options.page === 'message') ? h` aria-current="page"` : ''}>${label}</a>`
  return h`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<meta name="tq-base" content="${ctx.base}">
<meta name="tq-csrf" content="${ctx.token}">
<title>${options.title} · tq dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${ctx.base}/assets/dashboard.css">
<script src="${ctx.base}/assets/dashboard.js" defer></script>
</head>
<body data-page="${options.page}"${options.bodyAttributes}>
<header>
<a class="brand" href="${ctx.base}/">tq</a>
<nav>${nav('overview', '/', 'Overview')}${nav('messages', '/messages', 'Messages')}${nav('workers', '/workers', 'Workers')}${nav('schedules', '/schedules', 'Schedules')}</nav>
<div class="meta"><span title="Broker">${ctx.brokerName}</span>${ctx.readOnly ? h`<span class="badge" data-read-only>read-only</span>` : ''}</div>
</header>
<main>
${ctx.flash ? h`<div class="flash flash-${ctx.flash.kind}" role="status" data-flash>${ctx.flash.text}</div>` : ''}
${options.body}
</main>
</body>
</html>
`
}

/**
 * A POST form for one action: the CSRF token, where to come back to, and a button. Rendered as
 * nothing on a read-only dashboard.
 */
export function actionForm(
  ctx: PageContext,
  options: {
    action: string
    label: string
    back: string
    danger?: boolean
    confirm?: string
    /** Extra fields (before the button). */
    fields?: Html
    name: string
  },
): Html {
  if (ctx.readOnly) return h``
  return h`<form method="post" action="${ctx.base}${options.action}" data-action="${options.name}"${options.confirm ? h` data-confirm="${options.confirm}"` : ''}>
<input type="hidden" name="${TOKEN_FIELD}" value="${ctx.token}">
<input type="hidden" name="back" value="${options.back}">
${options.fields}<button type="submit"${options.danger ? h` class="danger"` : ''}>${options.label}</button>
</form>`
}

/** The note shown where tracking is needed and the broker has none. */
export function trackingOff(what: string): Html {
  return h`<div class="notice" data-tracking-off><strong>Tracking is off.</strong> ${what} need the <code>Tracking</code> middleware on the broker (<code>broker.addMiddleware(new Tracking({ backend }))</code>) or a tracking backend passed to <code>Admin</code>. Queue counts and dead-letter redrive work without it.</div>`
}

/** An error box (the text is escaped like everything else). */
export function errorBox(text: string): Html {
  return h`<div class="flash flash-error" role="alert">${text}</div>`
}

/** `<span class="state state-dead">dead</span>`. */
export function stateBadge(state: string): Html {
  return h`<span class="state state-${state.replace(/[^a-z]/g, '')}" data-state="${state}">${state}</span>`
}
