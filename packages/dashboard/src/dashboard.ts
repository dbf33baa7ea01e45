import { createHash } from 'node:crypto'
import {
  type Admin,
  ConfigurationError,
  InvalidArgumentError,
  MESSAGE_STATES,
  Message,
  MessageNotFoundError,
  type MessageState,
  type Logger,
  type TrackedMessage,
  errorMessage,
  noopLogger,
} from '@tq/core'
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import { SCRIPT, STYLESHEET } from './assets.ts'
import { Csrf, SESSION_COOKIE, TOKEN_FIELD, TOKEN_HEADER, originProblem } from './csrf.ts'
import { maskSecrets } from './format.ts'
import type { Html } from './html.ts'
import { type Flash, type PageContext } from './views/layout.ts'
import { messagePage } from './views/message.ts'
import { type MessageFilters, type MessagesResult, messagesPage } from './views/messages.ts'
import { overviewData } from './overview-data.ts'
import { chartMarkup, overviewPage, overviewTotals } from './views/overview.ts'
import { type SchedulesResult, schedulesPage } from './views/schedules.ts'
import { type WorkersResult, errorPage, workersPage } from './views/workers.ts'

/** What a request asks to do: `view` is checked on every request, the others on their POST. */
export type DashboardAction = 'view' | 'retry' | 'cancel' | 'delete' | 'redrive' | 'purge'

export interface DashboardOptions {
  /** The operations API the dashboard shows and acts through. */
  admin: Admin
  /**
   * The path the dashboard is served under (default `/`): its links, its cookie path and its
   * routes all start with it. Mounted at `/tq`, pass `basePath: '/tq'`.
   */
  basePath?: string | undefined
  /** Show no action button and refuse every POST with 403 (default false). */
  readOnly?: boolean | undefined
  /**
   * Called with `'view'` for every request and with the action for every POST; `false` answers
   * 403. Default: everything is allowed (put the dashboard behind your own authentication).
   */
  authorize?: ((request: Request, action: DashboardAction) => boolean | Promise<boolean>) | undefined
  /**
   * The key of the CSRF tokens (default: random per process). Set the same one on every
   * replica when several serve one URL behind a load balancer.
   */
  secret?: string | undefined
  /** Where failed requests are logged (default: nowhere). */
  logger?: Logger | undefined
}

/** A Fetch API handler: what `createDashboard` returns and every mount adapter takes. */
export type DashboardHandler = (request: Request) => Promise<Response>

const FLASH_COOKIE = 'tq_dashboard_flash'
const PAGE_SIZE = 50
const MAX_BODY = 64 * 1024
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
}

type Env = { Variables: { session: string | undefined } }
type C = Context<Env>

/** `'/tq/'` → `'/tq'`, `'/'` → `''`. */
export function normalizeBasePath(basePath = '/'): string {
  const trimmed = basePath.trim().replace(/\/+$/, '')
  const base = trimmed === '' || trimmed.startsWith('/') ? trimmed : `/${trimmed}`
  if (!/^(\/[A-Za-z0-9._~-]+)*$/.test(base)) {
    throw new InvalidArgumentError(
      `basePath must be a path of letters, digits and . _ ~ - segments, got ${JSON.stringify(basePath)}`,
    )
  }
  return base
}

/**
 * The dashboard as a Fetch API handler: `(request: Request) => Promise<Response>`. Serve it with
 * anything that speaks `Request`/`Response` (Hono, Bun, Deno) or through the adapters for
 * `node:http`, Express (`@tq/dashboard/node`) and Fastify (`@tq/dashboard/fastify`).
 *
 * ```ts
 * const dashboard = createDashboard({ admin: new Admin({ broker }), basePath: '/tq' })
 * ```
 */
export function createDashboard(options: DashboardOptions): DashboardHandler {
  const { admin } = options
  const base = normalizeBasePath(options.basePath)
  const cookiePath = base === '' ? '/' : base
  const readOnly = options.readOnly ?? false
  const logger = (options.logger ?? noopLogger).child({ component: 'dashboard' })
  const csrf = new Csrf(options.secret)
  const authorize = options.authorize ?? (() => true)
  const brokerName = admin.broker.constructor.name

  const secure = (c: C): boolean =>
    new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto')?.split(',')[0]?.trim() === 'https'

  /** The page context of a GET: a session cookie is set the first time, the flash is read once. */
  const page = (c: C): PageContext => {
    let session = getCookie(c, SESSION_COOKIE)
    if (!csrf.validSession(session)) {
      session = csrf.newSession()
      setCookie(c, SESSION_COOKIE, session, {
        path: cookiePath,
        httpOnly: true,
        sameSite: 'Strict',
        secure: secure(c),
      })
    }
    let flash: Flash | undefined
    const stored = getCookie(c, FLASH_COOKIE)
    if (stored !== undefined) {
      flash = parseFlash(stored)
      deleteCookie(c, FLASH_COOKIE, { path: cookiePath, secure: secure(c) })
    }
    return { base, token: csrf.token(session), readOnly, brokerName, flash, now: Date.now() }
  }

  /** A context for a page that is no form's (errors before the session is known). */
  const bare = (): PageContext => ({ base, token: '', readOnly, brokerName, now: Date.now() })

  const wantsJson = (c: C): boolean => {
    const accept = c.req.header('accept') ?? ''
    return new URL(c.req.url).pathname.startsWith(`${base}/api/`) || (/json/.test(accept) && !/html/.test(accept))
  }

  const html = (c: C, markup: Html, status: 200 | 400 | 403 | 404 | 409 | 413 | 500 = 200): Response =>
    c.html(markup.toString(), status)

  const refuse = (c: C, status: 400 | 403 | 404 | 409 | 413 | 500, text: string): Response => {
    if (wantsJson(c)) return c.json({ error: text }, status)
    const title = {
      400: 'Bad request',
      403: 'Forbidden',
      404: 'Not found',
      409: 'Not possible',
      413: 'Too large',
      500: 'Error',
    }[status]
    return html(c, errorPage(bare(), title, text), status)
  }

  const app = new Hono<Env>({ strict: false }).basePath(base === '' ? '/' : base)

  app.onError((error, c) => {
    logger.error('dashboard request failed', { error: errorMessage(error), path: new URL(c.req.url).pathname })
    return refuse(c, 500, `The request failed: ${maskSecrets(errorMessage(error))}`)
  })
  app.notFound((c) => refuse(c, 404, 'There is no such page.'))

  app.use('*', async (c: C, next) => {
    if (!(await authorize(c.req.raw, 'view'))) {
      return finish(refuse(c, 403, 'You are not allowed to view this dashboard.'))
    }
    await next()
    finish(c.res)
    return undefined
  })

  // Every POST: not on a read-only dashboard, a bounded body, the same origin, a valid token.
  app.post(
    '*',
    async (c, next) => {
      if (readOnly) return refuse(c, 403, 'This dashboard is read-only.')
      const problem = originProblem(c.req.raw)
      if (problem) return refuse(c, 403, `Refused: ${problem}.`)
      await next()
      return undefined
    },
    bodyLimit({ maxSize: MAX_BODY, onError: (c) => refuse(c as C, 413, 'The request body is too large.') }),
    async (c, next) => {
      const body = await formBody(c)
      const token = c.req.header(TOKEN_HEADER) ?? field(body, TOKEN_FIELD)
      if (!csrf.verify(getCookie(c, SESSION_COOKIE), token)) {
        return refuse(c, 403, 'Refused: the form had no valid CSRF token (reload the page and try again).')
      }
      await next()
      return undefined
    },
  )

  // ---- pages

  app.get('/', async (c) => {
    const ctx = page(c)
    return html(c, overviewPage(ctx, await overviewData(admin, ctx.now, logger)))
  })

  app.get('/api/overview', async (c) => {
    const now = Date.now()
    const data = await overviewData(admin, now, logger)
    const chart = chartMarkup(data).toString()
    return c.json({
      queues: data.queues,
      totals: overviewTotals(data),
      tracking: data.tracking,
      queueError: data.queueError,
      chart,
      chartKey: createHash('sha1').update(chart).digest('hex').slice(0, 16),
      at: now,
    })
  })

  app.get('/messages', async (c) => {
    const ctx = page(c)
    const filters: MessageFilters = {
      queue: c.req.query('queue') || undefined,
      state: c.req.query('state') || undefined,
      actor: c.req.query('actor') || undefined,
      search: c.req.query('search') || undefined,
      cursor: c.req.query('cursor') || undefined,
    }
    const queueNames = [...admin.broker.getDeclaredQueues()].sort()
    let result: MessagesResult
    let status: 200 | 400 = 200
    if (filters.state !== undefined && !MESSAGE_STATES.includes(filters.state as MessageState)) {
      result = {
        kind: 'error',
        text: `Unknown state ${JSON.stringify(filters.state)}: one of ${MESSAGE_STATES.join(', ')}`,
      }
      status = 400
    } else {
      try {
        const found = await admin.messages({
          ...(filters.queue ? { queue: filters.queue } : {}),
          ...(filters.state ? { state: filters.state as MessageState } : {}),
          ...(filters.actor ? { actor: filters.actor } : {}),
          ...(filters.search ? { search: filters.search } : {}),
          ...(filters.cursor ? { cursor: filters.cursor } : {}),
          limit: PAGE_SIZE,
        })
        result = { kind: 'page', items: found.items, cursor: found.cursor }
      } catch (error) {
        if (error instanceof ConfigurationError) result = { kind: 'tracking-off' }
        else if (error instanceof InvalidArgumentError) {
          result = { kind: 'error', text: maskSecrets(errorMessage(error)) }
          status = 400
        } else throw error
      }
    }
    return html(c, messagesPage(ctx, filters, queueNames, result), status)
  })

  /** The record, `undefined` for an unknown id, or a response for tracking being off. */
  const record = async (c: C): Promise<TrackedMessage | Response> => {
    try {
      const found = await admin.message(c.req.param('id') ?? '')
      return (
        found ??
        refuse(
          c,
          404,
          `No message ${JSON.stringify(c.req.param('id'))} is known to tracking (never tracked, or expired).`,
        )
      )
    } catch (error) {
      if (error instanceof ConfigurationError)
        return refuse(c, 409, 'Tracking is off: messages cannot be read without the Tracking middleware.')
      if (error instanceof InvalidArgumentError) return refuse(c, 400, maskSecrets(errorMessage(error)))
      throw error
    }
  }

  app.get('/messages/:id', async (c) => {
    const ctx = page(c)
    const found = await record(c)
    if (found instanceof Response) return found
    return html(c, messagePage(ctx, found))
  })

  app.get('/api/messages/:id', async (c) => {
    const found = await record(c)
    if (found instanceof Response) return found
    return c.json({
      messageId: found.messageId,
      state: found.state,
      updatedAt: found.updatedAt,
      attempts: found.attempts.length,
    })
  })

  app.get('/messages/:id/arguments.json', async (c) => {
    const found = await record(c)
    if (found instanceof Response) return found
    let args: unknown = found.args
    let kwargs: unknown = found.kwargs
    if (found.argsTruncated) {
      if (!found.body) return refuse(c, 404, 'Tracking kept neither the arguments nor the message.')
      const message = Message.decode(found.body, admin.broker.encoder)
      args = message.args
      kwargs = message.kwargs
    }
    const name = `${found.messageId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80)}-arguments.json`
    return c.body(
      JSON.stringify({ messageId: found.messageId, args: args ?? [], kwargs: kwargs ?? {} }, null, 2),
      200,
      {
        'content-type': 'application/json; charset=utf-8',
        'content-disposition': `attachment; filename="${name}"`,
      },
    )
  })

  app.get('/workers', async (c) => {
    const ctx = page(c)
    let result: WorkersResult
    try {
      result = { kind: 'list', workers: await admin.workers() }
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error
      result = { kind: 'tracking-off' }
    }
    return html(c, workersPage(ctx, result))
  })

  app.get('/schedules', async (c) => {
    const ctx = page(c)
    let result: SchedulesResult
    try {
      result = { kind: 'list', schedules: await admin.schedules() }
    } catch (error) {
      result = { kind: 'error', text: `Could not read the schedules: ${maskSecrets(errorMessage(error))}` }
    }
    return html(c, schedulesPage(ctx, result))
  })

  app.get('/assets/dashboard.js', (c) =>
    c.body(SCRIPT, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' }),
  )
  app.get('/assets/dashboard.css', (c) =>
    c.body(STYLESHEET, 200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'no-cache' }),
  )

  // ---- actions

  interface Done {
    /** The flash text (and the JSON `message`). */
    text: string
    /** Where a form goes back to by default. */
    back: string
    json: Record<string, unknown>
  }

  const action =
    (name: Exclude<DashboardAction, 'view'>, run: (c: C) => Promise<Done | Response>) =>
    async (c: C): Promise<Response> => {
      if (!(await authorize(c.req.raw, name))) return refuse(c, 403, `You are not allowed to ${name} here.`)
      let done: Done | Response
      try {
        done = await run(c)
      } catch (error) {
        const text = maskSecrets(errorMessage(error))
        const status =
          error instanceof MessageNotFoundError
            ? 404
            : error instanceof InvalidArgumentError
              ? 400
              : error instanceof ConfigurationError
                ? 409
                : 500
        if (status === 500) logger.error(`dashboard ${name} failed`, { error: errorMessage(error) })
        if (wantsJson(c)) return c.json({ ok: false, action: name, error: text }, status)
        if (status === 404 || status === 500) return refuse(c, status, text)
        return redirect(c, await backTo(c, `${base}/`), { kind: 'error', text })
      }
      if (done instanceof Response) return done
      logger.info(`dashboard ${name}`, done.json)
      if (wantsJson(c)) return c.json({ ok: true, action: name, message: done.text, ...done.json })
      return redirect(c, await backTo(c, done.back), { kind: 'ok', text: done.text })
    }

  const redirect = (c: C, to: string, flash: Flash): Response => {
    setCookie(
      c,
      FLASH_COOKIE,
      encodeURIComponent(JSON.stringify({ kind: flash.kind, text: flash.text.slice(0, 500) })),
      {
        path: cookiePath,
        httpOnly: true,
        sameSite: 'Strict',
        secure: secure(c),
        maxAge: 60,
      },
    )
    return c.redirect(to, 303)
  }

  /** The form's `back` path when it is a path of this dashboard, else `fallback`. */
  const backTo = async (c: C, fallback: string): Promise<string> => {
    const back = field(await formBody(c), 'back')
    const ours = back !== undefined && (back === base || back.startsWith(`${base}/`))
    return ours && !back.startsWith('//') && !/[\\\s]/.test(back) ? back : fallback
  }

  const messageId = (c: C): string => c.req.param('id') ?? ''
  const messagePath = (id: string): string => `${base}/messages/${encodeURIComponent(id)}`

  app.post(
    '/messages/:id/retry',
    action('retry', async (c) => {
      const id = messageId(c)
      const sent = await admin.retry(id)
      return { text: `Message ${id} was sent again.`, back: messagePath(id), json: { messageId: sent.messageId } }
    }),
  )

  app.post(
    '/messages/:id/cancel',
    action('cancel', async (c) => {
      const id = messageId(c)
      const result = await admin.cancel(id)
      const text = result.cancelled
        ? `Message ${id} was cancelled (it was ${result.state}).`
        : `Message ${id} had already finished (${result.state}): nothing to cancel.`
      return { text, back: messagePath(id), json: { ...result } }
    }),
  )

  app.post(
    '/messages/:id/delete',
    action('delete', async (c) => {
      const id = messageId(c)
      const deleted = await admin.delete(id)
      if (!deleted) throw new MessageNotFoundError(id)
      return { text: `Message ${id} was deleted.`, back: `${base}/messages`, json: { messageId: id, deleted } }
    }),
  )

  app.post(
    '/queues/:queue/redrive',
    action('redrive', async (c) => {
      const queue = c.req.param('queue') ?? ''
      const moved = await admin.redrive(queue)
      const text = `${moved} dead letter${moved === 1 ? '' : 's'} of ${queue} went back to the queue.`
      return { text, back: `${base}/`, json: { queue, redriven: moved } }
    }),
  )

  app.post(
    '/queues/:queue/purge',
    action('purge', async (c) => {
      const queue = c.req.param('queue') ?? ''
      if (field(await formBody(c), 'confirm') !== queue) {
        throw new InvalidArgumentError(`Not purged: type the queue name (${queue}) to confirm.`)
      }
      await admin.purge(queue)
      return { text: `Queue ${queue} was purged.`, back: `${base}/`, json: { queue, purged: true } }
    }),
  )

  return async (request) => app.fetch(request)
}

/** Add the security headers to a response (in place; a response with immutable headers is left as it is). */
function finish(response: Response): Response {
  try {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.headers.set(name, value)
    if (!response.headers.has('cache-control')) response.headers.set('cache-control', 'no-store')
  } catch {
    // Immutable headers: nothing to add.
  }
  return response
}

/** The POST body as form fields (`{}` for a body that is not a form). */
async function formBody(c: C): Promise<Record<string, unknown>> {
  const type = c.req.header('content-type') ?? ''
  if (!/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type)) return {}
  return await c.req.parseBody()
}

function field(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name]
  return typeof value === 'string' ? value : undefined
}

function parseFlash(stored: string): Flash | undefined {
  try {
    const value = JSON.parse(decodeURIComponent(stored)) as { kind?: unknown; text?: unknown }
    if ((value.kind === 'ok' || value.kind === 'error') && typeof value.text === 'string') {
      return { kind: value.kind, text: value.text }
    }
  } catch {
    // A cookie that is not ours: no flash.
  }
  return undefined
}
