import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import { Admin, StubBroker } from '@tq/core'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { createDashboard, normalizeBasePath } from '../src/index.ts'
import { dashboardContract } from './contract.ts'
import { mounted } from './listen.ts'

// A Hono app that routes /tq and everything under it to the dashboard, served by @hono/node-server.
dashboardContract('Hono (app.all + @hono/node-server)', {
  basePath: '/tq',
  mount: async (handler) => {
    const app = new Hono()
    app.get('/', (c) => c.text('the app'))
    app.all('/tq/*', (c) => handler(c.req.raw))
    const server = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s as Server))
    })
    return mounted(server, '/tq')
  },
})

describe('the handler on its own', () => {
  const broker = new StubBroker()
  broker.declareQueue('emails')
  const handler = createDashboard({ admin: new Admin({ broker }), basePath: '/tq' })

  it('answers Fetch API requests at its base path, with or without the trailing slash', async () => {
    for (const url of ['http://dash.test/tq', 'http://dash.test/tq/']) {
      const response = await handler(new Request(url))
      expect(response.status).toBe(200)
      expect(await response.text()).toContain('data-queue="emails"')
    }
    expect((await handler(new Request('http://dash.test/'))).status).toBe(404)
    expect((await handler(new Request('http://dash.test/tq/workers/'))).status).toBe(200)
  })

  it('answers HEAD like GET, without a body', async () => {
    const response = await handler(new Request('http://dash.test/tq/', { method: 'HEAD' }))
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('')
  })

  it('answers JSON errors on the API', async () => {
    const response = await handler(new Request('http://dash.test/tq/api/nothing'))
    expect(response.status).toBe(404)
    expect(await response.json()).toEqual({ error: 'There is no such page.' })
  })

  it('refuses a body over 64 KiB', async () => {
    const page = await handler(new Request('http://dash.test/tq/'))
    const cookie = page.headers.getSetCookie()[0]?.split(';')[0] ?? ''
    const response = await handler(
      new Request('http://dash.test/tq/queues/emails/purge', {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: `confirm=${'x'.repeat(70 * 1024)}`,
      }),
    )
    expect(response.status).toBe(413)
  })

  it('takes a base path with or without slashes and refuses odd ones', () => {
    expect(normalizeBasePath()).toBe('')
    expect(normalizeBasePath('/')).toBe('')
    expect(normalizeBasePath('tq/')).toBe('/tq')
    expect(normalizeBasePath('/ops/tq')).toBe('/ops/tq')
    expect(() => normalizeBasePath('/a b')).toThrow(/basePath/)
    expect(() => normalizeBasePath('/a"><script>')).toThrow(/basePath/)
  })

  it('never shows the broker URL, only its class name', async () => {
    const text = await (await handler(new Request('http://dash.test/tq/'))).text()
    expect(text).toContain('StubBroker')
    expect(text).not.toMatch(/(redis|amqp|https?):\/\/[^"]*@/)
  })
})
