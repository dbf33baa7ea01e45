// The HTTP contract of the dashboard, run once per way of mounting it (Hono, Express, Fastify,
// node:http): every page, 404s, every action with and without a valid CSRF token or from a
// foreign origin, read-only mode, authorization, and escaping of hostile message fields.
import {
  type MessageState,
  Scheduler,
  StubBroker,
  StubTrackingBackend,
  Tracking,
  type TrackedMessage,
  defaultMiddleware,
} from '@tq/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DashboardAction, type DashboardHandler, type DashboardOptions, createDashboard } from '../src/index.ts'
import { type Scenario, XSS, XSS_VALUES, hostileRecord, startScenario } from './scenario.ts'

export interface Mounted {
  /** Where the dashboard answers, without a trailing slash: `http://127.0.0.1:4321/tq`. */
  baseUrl: string
  close(): Promise<void>
}

/** Serve a dashboard handler (created with the suite's `basePath`) and say where. */
export type Mount = (handler: DashboardHandler) => Promise<Mounted>

/** A cookie-keeping HTTP client for one browser session. */
export class Client {
  readonly cookies = new Map<string, string>()
  readonly baseUrl: string
  constructor(baseUrl: string) {
    this.baseUrl = baseUrl
  }

  cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  }

  #store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === ''
      if (expired) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const response = await fetch(this.baseUrl + path, {
      headers: { cookie: this.cookieHeader(), ...headers },
      redirect: 'manual',
    })
    this.#store(response)
    return response
  }

  /** GET a page and read its body. */
  async page(
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; text: string; response: Response }> {
    const response = await this.get(path, headers)
    return { status: response.status, text: await response.text(), response }
  }

  /** The CSRF token of this session, from a page's form field. */
  async token(path = '/'): Promise<string> {
    const { text } = await this.page(path)
    const token = /<meta name="tq-csrf" content="([^"]+)">/.exec(text)?.[1]
    if (!token) throw new Error(`no CSRF token on ${path}`)
    return token
  }

  async post(
    path: string,
    fields: Record<string, string>,
    headers: Record<string, string> = {},
    options: { cookies?: boolean } = {},
  ): Promise<Response> {
    const response = await fetch(this.baseUrl + path, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        ...(options.cookies === false ? {} : { cookie: this.cookieHeader() }),
        ...headers,
      },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    })
    this.#store(response)
    return response
  }
}

/** The request path of a redirect's `location` (relative or absolute). */
function locationPath(response: Response): string {
  const location = response.headers.get('location') ?? ''
  return new URL(location, 'http://x').pathname
}

function expectEscaped(html: string): void {
  for (const payload of XSS_VALUES) expect(html, `raw payload ${payload}`).not.toContain(payload)
  expect(html).not.toMatch(/<script>window/)
  expect(html).not.toMatch(/<img src=x/)
  expect(html).not.toMatch(/<svg onload/)
  expect(html).not.toMatch(/" onfocus="/)
  expect(html).not.toMatch(/' onmouseover='/)
}

export interface ContractOptions {
  /** The `basePath` the dashboards are created with (the path `mount` serves them at). */
  basePath: string
  mount: Mount
}

export function dashboardContract(name: string, options: ContractOptions): void {
  const { basePath, mount } = options
  const base = basePath === '/' ? '' : basePath

  describe(`the dashboard mounted with ${name}`, () => {
    let s: Scenario
    const servers: Mounted[] = []
    let main: Mounted
    const ids: Record<'ok' | 'dead' | 'hostile' | 'big' | 'truncated', string> = {
      ok: '',
      dead: '',
      hostile: '',
      big: '',
      truncated: 'truncated-record',
    }
    const BIG = 10 * 1024 * 1024

    const serve = async (extra: Partial<DashboardOptions> = {}): Promise<Mounted> => {
      const mounted = await mount(createDashboard({ admin: s.admin, basePath, ...extra }))
      servers.push(mounted)
      return mounted
    }
    const state = async (id: string): Promise<MessageState | undefined> => (await s.admin.message(id))?.state

    beforeAll(async () => {
      const tracking = new Tracking({
        backend: new StubTrackingBackend(),
        heartbeatInterval: 100,
        flushInterval: 5,
        maxArgsBytes: 16 * 1024 * 1024,
      })
      const broker = new StubBroker({ middleware: [...defaultMiddleware(), tracking] })
      s = await startScenario({ broker, tracking })
      // Two schedules (never started: listed with their next run), one with a hostile id.
      const greet = broker.actors.get(s.actors.greet)
      if (!greet) throw new Error('no greet actor')
      new Scheduler({ broker, backend: tracking.backend })
        .add('nightly-greeting', greet, { cron: '30 2 * * *', tz: 'Europe/Paris', args: ['night'] })
        .add(`every-${XSS.script}`, greet, { every: 60_000, args: ['minute'], endAt: 0 })
      ids.ok = await s.greet('ada', { greeting: 'hi', note: XSS.svg })
      await s.waitState(ids.ok, 'succeeded')
      // Enqueued at least a millisecond later: the listing's order is certain.
      await new Promise((resolve) => setTimeout(resolve, 5))
      ids.dead = await s.charge('o-1')
      ids.hostile = await s.hostile()
      ids.big = await s.big(BIG)
      await s.waitState(ids.ok, 'succeeded')
      await s.waitState(ids.dead, 'dead')
      await s.waitState(ids.hostile, 'dead')
      await s.waitState(ids.big, 'succeeded')
      await s.writeRecord(hostileRecord('hostile-record'))
      // A record whose arguments were too large to keep, with the encoded message kept.
      const big = (await s.admin.message(ids.big)) as TrackedMessage
      await s.writeRecord([
        {
          kind: 'enqueued',
          at: Date.now(),
          messageId: ids.truncated,
          actorName: 'big',
          queueName: s.queues.work,
          state: 'queued',
          args: undefined,
          kwargs: undefined,
          argsTruncated: true,
          options: {},
          eta: undefined,
          body: big.body as Uint8Array,
        },
      ])
      await s.until(async () => (await s.admin.throughput()).length > 0, 'throughput to be reported')
      await s.until(async () => (await s.admin.workers()).length > 0, 'a worker heartbeat')
      main = await serve()
    }, 60_000)

    afterAll(async () => {
      for (const server of servers) await server.close()
      await s?.stop()
    })

    describe('pages', () => {
      it('serves the overview with every queue, its counts, the chart and the workers', async () => {
        const client = new Client(main.baseUrl)
        const { status, text, response } = await client.page('/')
        expect(status).toBe(200)
        expect(response.headers.get('content-type')).toMatch(/^text\/html/)
        for (const queue of Object.values(s.queues)) expect(text).toContain(`data-queue="${queue}"`)
        expect(text).toMatch(/<svg viewBox="0 0 900 150" role="img"/)
        expect(text).toMatch(/data-total="workers">1</)
        expect(text).toContain('StubBroker')
        expect(text).toContain(`${base}/assets/dashboard.js`)
        expect(new TextEncoder().encode(text).length).toBeLessThan(150 * 1024)
        // The reports queue is not consumed: its counts are the broker's.
        await s.report(2)
        const after = await client.page('/')
        expect(after.text).toMatch(new RegExp(`data-queue="${s.queues.reports}">[\\s\\S]*?data-count="ready">2<`))
      })

      it('sets a strict session cookie and the security headers', async () => {
        const response = await new Client(main.baseUrl).get('/')
        const cookie = response.headers.getSetCookie().find((c) => c.startsWith('tq_dashboard_session='))
        expect(cookie).toMatch(/HttpOnly/)
        expect(cookie).toMatch(/SameSite=Strict/)
        expect(cookie).toContain(`Path=${basePath}`)
        expect(response.headers.get('content-security-policy')).toContain("script-src 'self'")
        expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
        expect(response.headers.get('x-frame-options')).toBe('DENY')
        expect(response.headers.get('cache-control')).toBe('no-store')
      })

      it('answers the overview poll with JSON', async () => {
        const response = await new Client(main.baseUrl).get('/api/overview')
        expect(response.status).toBe(200)
        const data = (await response.json()) as {
          queues: { name: string; ready: number; dead: number }[]
          totals: { workers: number; processed: number }
          chart: string
          tracking: boolean
        }
        expect(data.tracking).toBe(true)
        expect(data.queues.map((q) => q.name)).toEqual(Object.values(s.queues).sort())
        expect(data.totals.workers).toBe(1)
        expect(data.totals.processed).toBeGreaterThan(0)
        expect(data.chart).toMatch(/^<svg /)
      })

      it('serves its script and stylesheet', async () => {
        const client = new Client(main.baseUrl)
        const js = await client.get('/assets/dashboard.js')
        expect(js.status).toBe(200)
        expect(js.headers.get('content-type')).toMatch(/javascript/)
        expect(await js.text()).toContain('/api/overview')
        const css = await client.get('/assets/dashboard.css')
        expect(css.headers.get('content-type')).toMatch(/text\/css/)
      })

      it('lists messages newest first, with filters', async () => {
        const client = new Client(main.baseUrl)
        const all = await client.page('/messages')
        expect(all.status).toBe(200)
        for (const id of [ids.ok, ids.dead, ids.hostile]) expect(all.text).toContain(`data-message-id="${id}"`)
        // Newest first: the dead charge was sent after the greeting.
        expect(all.text.indexOf(`data-message-id="${ids.dead}"`)).toBeLessThan(
          all.text.indexOf(`data-message-id="${ids.ok}"`),
        )
        const dead = await client.page('/messages?state=dead')
        expect(dead.text).toContain(`data-message-id="${ids.dead}"`)
        expect(dead.text).not.toContain(`data-message-id="${ids.ok}"`)
        const byQueue = await client.page(`/messages?queue=${s.queues.billing}`)
        expect(byQueue.text).toContain(`data-message-id="${ids.dead}"`)
        expect(byQueue.text).not.toContain(`data-message-id="${ids.ok}"`)
        const byActor = await client.page('/messages?actor=greet')
        expect(byActor.text).toContain(`data-message-id="${ids.ok}"`)
        expect(byActor.text).not.toContain(`data-message-id="${ids.dead}"`)
        const search = await client.page(`/messages?search=${ids.dead.slice(0, 13)}`)
        expect(search.text).toContain(`data-message-id="${ids.dead}"`)
        expect(search.text).not.toContain(`data-message-id="${ids.ok}"`)
        expect(search.text).toContain(`value="${ids.dead.slice(0, 13)}"`)
      })

      it('pages through messages with the cursor', async () => {
        const sent = await s.report(55)
        const client = new Client(main.baseUrl)
        const first = await client.page(`/messages?queue=${s.queues.reports}`)
        const next = /href="([^"]*cursor=[^"]*)" rel="next"/.exec(first.text)?.[1]
        expect(next).toBeDefined()
        const firstIds = [...first.text.matchAll(/<tr data-message-id="([^"]+)"/g)].map((m) => m[1])
        expect(firstIds).toHaveLength(50)
        expect(firstIds.every((id) => sent.includes(id as string))).toBe(true)
        const path = (next as string).replace(/&amp;/g, '&').slice(base.length)
        const second = await client.page(path)
        const secondIds = [...second.text.matchAll(/<tr data-message-id="([^"]+)"/g)].map((m) => m[1])
        expect(secondIds.length).toBeGreaterThan(0)
        expect(secondIds.some((id) => firstIds.includes(id))).toBe(false)
        for (const id of sent) expect([...firstIds, ...secondIds]).toContain(id)
        expect(second.text).toContain('data-first')
      })

      it('refuses an unknown state filter with 400', async () => {
        const { status, text } = await new Client(main.baseUrl).page('/messages?state=nope')
        expect(status).toBe(400)
        expect(text).toContain('Unknown state')
      })

      it('shows a message: arguments, options, attempts with their errors, progress and the timeline', async () => {
        const ok = await new Client(main.baseUrl).page(`/messages/${ids.ok}`)
        expect(ok.status).toBe(200)
        expect(ok.text).toContain('data-state="succeeded"')
        expect(ok.text).toMatch(/<pre data-json="args">\[\n {2}&quot;ada&quot;\n\]<\/pre>/)
        expect(ok.text).toContain('&quot;greeting&quot;: &quot;hi&quot;')
        expect(ok.text).toContain('data-json="options"')
        expect(ok.text).toContain('data-progress')
        expect(ok.text).toContain('Attempt 1 succeeded')
        const dead = await new Client(main.baseUrl).page(`/messages/${ids.dead}`)
        expect(dead.text).toContain('data-state="dead"')
        expect(dead.text).toMatch(/data-error-type>Error</)
        expect(dead.text).toContain('card declined for o-1')
        expect(dead.text).toContain('data-stack>Error: card declined')
        expect(dead.text).toContain('Attempt 1 failed: Error')
        expect(dead.text).toMatch(/Enqueued on <strong>[^<]*billing<\/strong>/)
      })

      it('answers 404 for an unknown message and an unknown page', async () => {
        const client = new Client(main.baseUrl)
        const message = await client.page('/messages/no-such-message')
        expect(message.status).toBe(404)
        expect(message.text).toContain('no-such-message')
        expect((await client.page('/messages/no-such-message/arguments.json')).status).toBe(404)
        expect((await client.page('/nowhere')).status).toBe(404)
        expect((await client.page('/api/messages/no-such-message')).status).toBe(404)
      })

      it('lists the schedules with their next and last run', async () => {
        const { status, text } = await new Client(main.baseUrl).page('/schedules')
        expect(status).toBe(200)
        expect(text).toContain('data-schedule-id="nightly-greeting"')
        expect(text).toContain('<span class="mono">30 2 * * *</span> <span class="muted">Europe/Paris</span>')
        const [nightly] = (await s.admin.schedules()).filter((x) => x.id === 'nightly-greeting')
        const next = new Date(nightly?.nextRunAt ?? 0).toISOString().replace('T', ' ').replace('Z', ' UTC')
        expect(text).toContain(`<td data-next-run>${next}`)
        expect(text).toMatch(/data-last-run><span class="muted">never</)
        // The schedule that ended (endAt in the past), its id escaped.
        expect(text).toContain('<span class="muted">ended</span>')
        expectEscaped(text)
      })

      it('lists the workers', async () => {
        const { status, text } = await new Client(main.baseUrl).page('/workers')
        expect(status).toBe(200)
        const [worker] = await s.admin.workers()
        expect(text).toContain(`data-worker-id="${worker?.id}"`)
        expect(text).toContain(`<td class="num">${worker?.pid}</td>`)
        expect(text).toContain('1 online')
        expect(text).toMatch(/data-last-seen>[^<]* ago</)
      })

      it('renders a 10 MB argument truncated, quickly, with the whole JSON as a download', async () => {
        const client = new Client(main.baseUrl)
        const started = performance.now()
        const { status, text } = await client.page(`/messages/${ids.big}`)
        const elapsed = performance.now() - started
        expect(status).toBe(200)
        expect(elapsed).toBeLessThan(2000)
        expect(text.length).toBeLessThan(150 * 1024)
        expect(text).toContain('data-truncated')
        const link = /<a href="([^"]+arguments\.json)" download>/.exec(text)?.[1]
        expect(link).toBe(`${base}/messages/${ids.big}/arguments.json`)
        const download = await client.get(`/messages/${ids.big}/arguments.json`)
        expect(download.headers.get('content-disposition')).toBe(`attachment; filename="${ids.big}-arguments.json"`)
        const json = (await download.json()) as { args: string[] }
        expect(json.args[0]).toHaveLength(BIG)
      })

      it('offers the arguments a record left out as a download decoded from the kept message', async () => {
        const client = new Client(main.baseUrl)
        const { text } = await client.page(`/messages/${ids.truncated}`)
        expect(text).toContain('data-args-truncated')
        const json = (await (await client.get(`/messages/${ids.truncated}/arguments.json`)).json()) as {
          args: string[]
        }
        expect(json.args[0]).toHaveLength(BIG)
      })
    })

    describe('escaping', () => {
      it('escapes hostile arguments, kwargs, actor names and error messages on every page', async () => {
        const client = new Client(main.baseUrl)
        const detail = await client.page(`/messages/${ids.hostile}`)
        expect(detail.status).toBe(200)
        expectEscaped(detail.text)
        expect(detail.text).toContain('&lt;script&gt;window.__xss=1&lt;/script&gt;')
        expect(detail.text).toContain('hostile&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;')
        for (const path of [
          '/',
          '/messages',
          '/messages?state=dead',
          '/workers',
          `/messages?actor=${encodeURIComponent(s.actors.hostile)}`,
        ]) {
          const page = await client.page(path)
          expect(page.status).toBe(200)
          expectEscaped(page.text)
        }
        expect((await client.page(`/messages?actor=${encodeURIComponent(s.actors.hostile)}`)).text).toContain(
          `data-message-id="${ids.hostile}"`,
        )
      })

      it('escapes hostile queue names, options, worker ids, error types, stacks and progress', async () => {
        const client = new Client(main.baseUrl)
        const detail = await client.page('/messages/hostile-record')
        expect(detail.status).toBe(200)
        expectEscaped(detail.text)
        expect(detail.text).toContain('queue&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;')
        expect(detail.text).toContain('Type&lt;img src=x')
        expect(detail.text).toContain('stack&lt;svg onload=')
        const list = await client.page(`/messages?queue=${encodeURIComponent(`queue${XSS.img}`)}`)
        expectEscaped(list.text)
        expect(list.text).toContain('data-message-id="hostile-record"')
        expect(list.text).toContain(
          `<option value="queue&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" selected>`,
        )
        const search = await client.page(
          `/messages?search=${encodeURIComponent(XSS.attr)}&actor=${encodeURIComponent(XSS.script)}`,
        )
        expect(search.status).toBe(200)
        expectEscaped(search.text)
      })

      it('escapes a hostile message id in the 404 page', async () => {
        const { status, text } = await new Client(main.baseUrl).page(`/messages/${encodeURIComponent(XSS.img)}`)
        expect(status).toBe(404)
        expectEscaped(text)
      })
    })

    describe('actions', () => {
      it('retries a dead message: 303 back to it, a flash, and it succeeds', async () => {
        const id = await s.charge('o-retry')
        await s.waitState(id, 'dead')
        s.failing.value = false
        try {
          const client = new Client(main.baseUrl)
          const token = await client.token(`/messages/${id}`)
          const response = await client.post(`/messages/${id}/retry`, { _csrf: token, back: `${base}/messages/${id}` })
          expect(response.status).toBe(303)
          expect(locationPath(response)).toBe(`${base}/messages/${id}`)
          await s.waitState(id, 'succeeded')
          const after = await client.page(`/messages/${id}`)
          expect(after.text).toContain('data-flash')
          expect(after.text).toContain('was sent again')
          // The flash shows once.
          expect((await client.page(`/messages/${id}`)).text).not.toContain('data-flash')
        } finally {
          s.failing.value = true
        }
      })

      it('cancels a delayed message and a running one', async () => {
        const client = new Client(main.baseUrl)
        const token = await client.token()
        const later = await s.later()
        await s.waitState(later, 'delayed')
        const first = await client.post(`/messages/${later}/cancel`, { _csrf: token })
        expect(first.status).toBe(303)
        expect(await state(later)).toBe('cancelled')
        expect((await client.page(`/messages/${later}`)).text).toContain('was cancelled (it was delayed)')
        const running = await s.hold()
        await s.waitState(running, 'running')
        const response = await client.post(`/messages/${running}/cancel`, { _csrf: token })
        expect(response.status).toBe(303)
        expect(locationPath(response)).toBe(`${base}/messages/${running}`)
        await s.waitState(running, 'cancelled')
        const record = await s.admin.message(running)
        expect(record?.attempts[0]?.error?.type).toBe('CancelledError')
      })

      it('answers a fetch call with JSON', async () => {
        const id = await s.greet('json')
        await s.waitState(id, 'succeeded')
        const client = new Client(main.baseUrl)
        const token = await client.token()
        const response = await client.post(
          `/messages/${id}/cancel`,
          {},
          { accept: 'application/json', 'x-tq-csrf': token },
        )
        expect(response.status).toBe(200)
        expect(await response.json()).toMatchObject({
          ok: true,
          action: 'cancel',
          cancelled: false,
          state: 'succeeded',
        })
        const missing = await client.post(
          '/messages/nope/retry',
          {},
          { accept: 'application/json', 'x-tq-csrf': token },
        )
        expect(missing.status).toBe(404)
        expect(await missing.json()).toMatchObject({ ok: false, action: 'retry' })
      })

      it('refuses to retry a message that has not finished, with the reason as a flash', async () => {
        const id = await s.hold()
        await s.waitState(id, 'running')
        const client = new Client(main.baseUrl)
        const token = await client.token()
        const response = await client.post(`/messages/${id}/retry`, { _csrf: token, back: `${base}/messages/${id}` })
        expect(response.status).toBe(303)
        const after = await client.page(`/messages/${id}`)
        expect(after.text).toContain('flash-error')
        expect(after.text).toContain('only a finished message can be retried')
        await s.admin.cancel(id)
      })

      it('deletes a message', async () => {
        const id = await s.greet('to-delete')
        await s.waitState(id, 'succeeded')
        const client = new Client(main.baseUrl)
        const token = await client.token()
        const response = await client.post(`/messages/${id}/delete`, { _csrf: token, back: `${base}/messages` })
        expect(response.status).toBe(303)
        expect(locationPath(response)).toBe(`${base}/messages`)
        expect(await s.admin.message(id)).toBeUndefined()
        expect((await client.page(`/messages/${id}`)).status).toBe(404)
      })

      it('redrives a queue’s dead letters', async () => {
        const id = await s.charge('o-redrive')
        await s.waitState(id, 'dead')
        const dead = (await s.admin.queues()).find((q) => q.name === s.queues.billing)?.dead ?? 0
        expect(dead).toBeGreaterThan(0)
        s.failing.value = false
        try {
          const client = new Client(main.baseUrl)
          const token = await client.token()
          const response = await client.post(`/queues/${s.queues.billing}/redrive`, { _csrf: token, back: `${base}/` })
          expect(response.status).toBe(303)
          expect(locationPath(response)).toBe(`${base}/`)
          await s.waitState(id, 'succeeded')
          expect((await s.admin.queues()).find((q) => q.name === s.queues.billing)?.dead).toBe(0)
          expect((await client.page('/')).text).toContain(`${dead} dead letter`)
        } finally {
          s.failing.value = true
        }
      })

      it('purges a queue only with its name typed', async () => {
        await s.report(3)
        const ready = async (): Promise<number> =>
          (await s.admin.queues()).find((q) => q.name === s.queues.reports)?.ready ?? -1
        expect(await ready()).toBeGreaterThan(0)
        const client = new Client(main.baseUrl)
        const token = await client.token()
        const wrong = await client.post(`/queues/${s.queues.reports}/purge`, { _csrf: token, confirm: 'nope' })
        expect(wrong.status).toBe(303)
        expect((await client.page('/')).text).toContain('type the queue name')
        expect(await ready()).toBeGreaterThan(0)
        const json = await client.post(
          `/queues/${s.queues.reports}/purge`,
          { confirm: '' },
          { accept: 'application/json', 'x-tq-csrf': token },
        )
        expect(json.status).toBe(400)
        const right = await client.post(`/queues/${s.queues.reports}/purge`, {
          _csrf: token,
          confirm: s.queues.reports,
        })
        expect(right.status).toBe(303)
        expect(await ready()).toBe(0)
        expect((await client.page('/')).text).toContain('was purged')
      })

      it('never redirects outside the dashboard', async () => {
        const id = await s.greet('redirect')
        await s.waitState(id, 'succeeded')
        const client = new Client(main.baseUrl)
        const token = await client.token()
        const outside = ['https://evil.example/', '//evil.example/x', `${base}/\\evil`, 'javascript:alert(1)']
        if (base !== '') outside.push('/elsewhere')
        for (const back of outside) {
          const response = await client.post(`/messages/${id}/cancel`, { _csrf: token, back })
          expect(response.status).toBe(303)
          expect(locationPath(response)).toBe(`${base}/messages/${id}`)
          expect(response.headers.get('location')).not.toContain('evil')
        }
      })
    })

    describe('CSRF', () => {
      const attempts = async (): Promise<{ id: string; client: Client; token: string }> => {
        const id = await s.charge(`o-csrf-${Math.random()}`)
        await s.waitState(id, 'dead')
        const client = new Client(main.baseUrl)
        const token = await client.token()
        return { id, client, token }
      }

      it('refuses a POST without a token, with a wrong one, or with another session’s', async () => {
        const { id, client, token } = await attempts()
        const other = new Client(main.baseUrl)
        const otherToken = await other.token()
        const refused = [
          await client.post(`/messages/${id}/retry`, {}),
          await client.post(`/messages/${id}/retry`, { _csrf: 'x'.repeat(43) }),
          await client.post(`/messages/${id}/retry`, {
            _csrf: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
          }),
          await client.post(`/messages/${id}/retry`, { _csrf: otherToken }),
          await client.post(`/messages/${id}/retry`, { _csrf: token }, {}, { cookies: false }),
          await client.post(`/messages/${id}/retry`, {}, { 'x-tq-csrf': 'nope' }),
        ]
        for (const response of refused) {
          expect(response.status).toBe(403)
          expect(await response.text()).toContain('CSRF')
        }
        expect(await state(id)).toBe('dead')
      })

      it('refuses a POST from a foreign origin even with a valid token', async () => {
        const { id, client, token } = await attempts()
        for (const headers of [
          { origin: 'https://evil.example' },
          { origin: 'null' },
          { origin: new URL(main.baseUrl).origin.replace('127.0.0.1', 'localhost') },
          { 'sec-fetch-site': 'cross-site' },
          { 'sec-fetch-site': 'same-site' },
        ]) {
          const response = await client.post(`/messages/${id}/delete`, { _csrf: token }, headers)
          expect(response.status).toBe(403)
          expect(await response.text()).toMatch(/another origin|page/)
        }
        expect(await state(id)).toBe('dead')
        const own = await client.post(
          `/messages/${id}/delete`,
          { _csrf: token },
          { origin: new URL(main.baseUrl).origin, 'sec-fetch-site': 'same-origin' },
        )
        expect(own.status).toBe(303)
        expect(await state(id)).toBeUndefined()
      })

      it('accepts the origin a TLS-terminating proxy forwards', async () => {
        const { id, client, token } = await attempts()
        const host = new URL(main.baseUrl).host
        const response = await client.post(
          `/messages/${id}/delete`,
          { _csrf: token },
          { origin: `https://${host}`, 'x-forwarded-proto': 'https' },
        )
        expect(response.status).toBe(303)
      })
    })

    describe('read-only', () => {
      it('shows no action and refuses every POST, even with a valid token', async () => {
        const dead = await s.charge('o-read-only')
        await s.waitState(dead, 'dead')
        const readOnly = await serve({ readOnly: true })
        const client = new Client(readOnly.baseUrl)
        for (const path of ['/', '/messages', `/messages/${dead}`, `/messages/${ids.ok}`, '/workers']) {
          const { status, text } = await client.page(path)
          expect(status).toBe(200)
          expect(text).not.toMatch(/<form method="post"/)
          expect(text).not.toContain('name="_csrf"')
          expect(text).not.toContain('data-actions')
          expect(text).not.toContain('data-action')
          expect(text).toContain('data-read-only')
        }
        const token = await client.token()
        for (const path of [
          `/messages/${dead}/retry`,
          `/messages/${dead}/cancel`,
          `/messages/${dead}/delete`,
          `/queues/${s.queues.billing}/redrive`,
          `/queues/${s.queues.reports}/purge`,
        ]) {
          const response = await client.post(path, { _csrf: token, confirm: s.queues.reports })
          expect(response.status).toBe(403)
          expect(await response.text()).toContain('read-only')
        }
        expect(await state(dead)).toBe('dead')
      })
    })

    describe('authorize', () => {
      it('is asked for view on every request and for each action', async () => {
        const asked: DashboardAction[] = []
        const guarded = await serve({
          authorize: (request, action) => {
            asked.push(action)
            if (request.headers.get('x-user') !== 'ops') return false
            return action !== 'purge' && action !== 'delete'
          },
        })
        const anonymous = new Client(guarded.baseUrl)
        for (const path of ['/', '/messages', '/workers', '/api/overview', '/assets/dashboard.js']) {
          expect((await anonymous.page(path)).status).toBe(403)
        }
        const ops = { 'x-user': 'ops' }
        const client = new Client(guarded.baseUrl)
        expect((await client.page('/', ops)).status).toBe(200)
        const token = await (async () =>
          /<meta name="tq-csrf" content="([^"]+)">/.exec((await client.page('/', ops)).text)?.[1] ?? '')()
        const id = await s.charge('o-authorize')
        await s.waitState(id, 'dead')
        asked.length = 0
        const purge = await client.post(
          `/queues/${s.queues.reports}/purge`,
          { _csrf: token, confirm: s.queues.reports },
          ops,
        )
        expect(purge.status).toBe(403)
        expect(await purge.text()).toContain('not allowed to purge')
        expect(asked).toEqual(['view', 'purge'])
        const del = await client.post(`/messages/${id}/delete`, { _csrf: token }, ops)
        expect(del.status).toBe(403)
        expect(await state(id)).toBe('dead')
        s.failing.value = false
        try {
          const retry = await client.post(`/messages/${id}/retry`, { _csrf: token }, ops)
          expect(retry.status).toBe(303)
          await s.waitState(id, 'succeeded')
        } finally {
          s.failing.value = true
        }
      })
    })
  })
}
