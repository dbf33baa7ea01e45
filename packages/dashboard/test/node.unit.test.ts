import { createServer } from 'node:http'
import { StubBroker, Admin } from '@tq/core'
import { describe, expect, it } from 'vitest'
import { serveDashboard } from '../src/index.ts'
import { toNodeListener } from '../src/node.ts'
import { dashboardContract } from './contract.ts'
import { listen } from './listen.ts'

// node:http, at the root of its own server.
dashboardContract('node:http (toNodeListener)', {
  basePath: '/',
  mount: (handler) => listen(createServer(toNodeListener(handler)), '/'),
})

describe('serveDashboard', () => {
  it('serves the dashboard on its own server at its base path and closes', async () => {
    const broker = new StubBroker()
    broker.declareQueue('emails')
    const served = await serveDashboard({ admin: new Admin({ broker }), port: 0, basePath: '/tq/', readOnly: true })
    try {
      expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/tq\/$/)
      const response = await fetch(served.url)
      expect(response.status).toBe(200)
      const text = await response.text()
      expect(text).toContain('data-queue="emails"')
      expect(text).toContain('data-read-only')
      // No tracking: the queues still show, the message pages say tracking is off.
      expect(text).toContain('data-tracking-off')
      const messages = await fetch(`${served.url}messages`)
      expect(messages.status).toBe(200)
      expect(await messages.text()).toContain('Tracking is off')
      const workers = await (await fetch(`${served.url}workers`)).text()
      expect(workers).toContain('Tracking is off')
      const message = await fetch(`${served.url}messages/some-id`)
      expect(message.status).toBe(409)
      expect(await message.text()).toContain('Tracking is off')
    } finally {
      await served.close()
    }
    await expect(fetch(served.url)).rejects.toThrow()
  })
})
