// End-to-end tests in headless Chromium (Debian's, driven by playwright-core) against a dashboard
// on a real broker: polling, reading a failed message, retry, cancel, delete, redrive, purge with
// typed confirmation, read-only mode, hostile payloads that must not run, and a 10 MB argument.
// Screenshots of each page go to test-artifacts/; with TQ_UPDATE_DOC_IMAGES=1 the Redis run also
// copies them to docs/images/dashboard-<page>.png.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Broker, Tracking } from '@tq/core'
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DashboardServer, serveDashboard } from '../src/index.ts'
import { type Scenario, XSS, hostileRecord, startScenario } from './scenario.ts'

const here = dirname(fileURLToPath(import.meta.url))
const artifacts = join(here, '../test-artifacts')
const docImages = join(here, '../../../docs/images')

/** Debian's Chromium (`apt-get install chromium`); never a browser downloaded by Playwright. */
export const CHROMIUM = process.env['TQ_CHROMIUM'] ?? '/usr/bin/chromium'

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // The machine has no network but loopback: keep Chromium from reaching for Google's hosts.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

export interface BrowserSetup {
  broker: Broker
  tracking: Tracking
  /** The worker's own broker (a producer and a worker process, in one test process). */
  workerBroker?: Broker
  /** Queue name prefix, unique per run (queues are shared server-wide on RabbitMQ). */
  prefix: string
  /** Drop every key or queue the run made, close connections. */
  cleanup(scenario: Scenario | undefined): Promise<void>
}

export interface BrowserSuiteOptions {
  /** `redis`, `rabbitmq`: names the screenshots. */
  name: string
  setup: () => Promise<BrowserSetup>
  /** Copy the screenshots to docs/images (one broker's run does). */
  docImages?: boolean
  /**
   * Whether tracking records a redriven message's later runs (default true). Not on RabbitMQ
   * yet: its redrive records the re-enqueue after publishing, which can land after the worker
   * already recorded the run and put the record back to `queued` (reported, in @tq/rabbitmq).
   */
  tracksRedrive?: boolean
}

export function browserSuite(options: BrowserSuiteOptions): void {
  describe(`the dashboard in Chromium on ${options.name}`, () => {
    let setup: BrowserSetup
    let s: Scenario
    let browser: Browser
    let context: BrowserContext
    let page: Page
    let server: DashboardServer
    let readOnly: DashboardServer
    const pageErrors: string[] = []
    const BIG = 10 * 1024 * 1024

    const shot = async (name: string): Promise<void> => {
      mkdirSync(artifacts, { recursive: true })
      const path = join(artifacts, `${options.name}-${name}.png`)
      await page.screenshot({ path, fullPage: true })
      if (options.docImages && process.env['TQ_UPDATE_DOC_IMAGES'] === '1') {
        mkdirSync(docImages, { recursive: true })
        copyFileSync(path, join(docImages, `dashboard-${name}.png`))
      }
    }
    const url = (path: string): string => `${server.url}${path.replace(/^\//, '')}`
    const row = (queue: string) => page.locator(`tr[data-queue="${queue}"]`)
    const count = (queue: string, what: string) => row(queue).locator(`[data-count="${what}"]`)

    beforeAll(async () => {
      if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not at ${CHROMIUM}: apt-get install chromium`)
      setup = await options.setup()
      s = await startScenario({
        broker: setup.broker,
        tracking: setup.tracking,
        prefix: setup.prefix,
        ...(setup.workerBroker ? { workerBroker: setup.workerBroker } : {}),
      })
      server = await serveDashboard({ admin: s.admin, port: 0, basePath: '/tq' })
      readOnly = await serveDashboard({ admin: s.admin, port: 0, basePath: '/tq', readOnly: true })
      browser = await launchChromium()
      context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
      page = await context.newPage()
      page.on('pageerror', (error) => pageErrors.push(error.message))
      page.on('console', (message) => {
        if (message.type() === 'error') pageErrors.push(`${message.text()} (${message.location().url})`)
      })
    }, 60_000)

    afterAll(async () => {
      await browser?.close()
      await server?.close()
      await readOnly?.close()
      await s?.stop()
      await setup?.cleanup(s)
    }, 60_000)

    it('shows counts changing live as messages arrive, without a reload', async () => {
      await s.greet('first')
      await page.goto(url('/'))
      await expect.poll(() => row(s.queues.reports).count()).toBe(1)
      expect(await count(s.queues.reports, 'ready').textContent()).toBe('0')
      await page.evaluate(() => {
        ;(window as unknown as { __sameDocument: boolean }).__sameDocument = true
      })
      await s.report(3)
      await count(s.queues.reports, 'ready').filter({ hasText: /^3$/ }).waitFor({ timeout: 10_000 })
      await page
        .locator('[data-total="ready"]')
        .filter({ hasText: /^[1-9]/ })
        .waitFor()
      // The numbers changed in place: still the same document.
      expect(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument)).toBe(true)
      await expect.poll(() => page.locator('[data-live]').getAttribute('data-status'), { timeout: 10_000 }).toBe('live')
      // The chart fills in once the worker's heartbeat reports the finished attempts.
      await expect
        .poll(async () => Number(await page.locator('#throughput-chart svg').getAttribute('data-processed')), {
          timeout: 15_000,
        })
        .toBeGreaterThan(0)
      const size = await page.evaluate(async () => (await (await fetch(window.location.href)).text()).length)
      expect(size).toBeLessThan(150 * 1024)
    })

    it('opens a failed message, reads its error, retries it and sees it succeed', async () => {
      const id = await s.charge('o-browser')
      await s.waitState(id, 'dead')
      await page.goto(url('/messages?state=dead'))
      await page.locator(`tr[data-message-id="${id}"] a`).click()
      await page.waitForURL(`**/tq/messages/${id}`)
      await expect
        .poll(() => page.locator('[data-error-message]').first().textContent())
        .toContain('card declined for o-browser')
      expect(await page.locator('[data-error-type]').first().textContent()).toBe('Error')
      await shot('message')
      s.failing.value = false
      try {
        await page.locator('form[data-action="retry"] button').click()
        await page.locator('[data-flash]').filter({ hasText: 'was sent again' }).waitFor()
        // The page reloads itself when the state changes.
        await page.locator('dd [data-state="succeeded"]').waitFor({ timeout: 15_000 })
      } finally {
        s.failing.value = true
      }
      expect((await s.admin.message(id))?.state).toBe('succeeded')
    })

    it('cancels a running message, then deletes it', async () => {
      const id = await s.hold()
      await s.waitState(id, 'running')
      await page.goto(url(`/messages/${id}`))
      await page.locator('dd [data-state="running"]').waitFor()
      await page.locator('form[data-action="cancel"] button').click()
      await page.locator('dd [data-state="cancelled"]').waitFor({ timeout: 15_000 })
      expect(await page.locator('[data-error-type]').first().textContent()).toBe('CancelledError')
      page.once('dialog', (dialog) => void dialog.accept())
      await page.locator('form[data-action="delete"] button').click()
      await page.waitForURL('**/tq/messages')
      await page.locator('[data-flash]').filter({ hasText: 'was deleted' }).waitFor()
      expect(await s.admin.message(id)).toBeUndefined()
    })

    it('redrives a queue’s dead letters', async () => {
      const ids = [await s.charge('o-r1'), await s.charge('o-r2')]
      for (const id of ids) await s.waitState(id, 'dead')
      await page.goto(url('/'))
      await count(s.queues.billing, 'dead')
        .filter({ hasText: /^[1-9]/ })
        .waitFor({ timeout: 10_000 })
      s.failing.value = false
      try {
        await row(s.queues.billing).locator('form[data-action="redrive"] button').click()
        await page
          .locator('[data-flash]')
          .filter({ hasText: /dead letters? of .*billing went back/ })
          .waitFor()
        if (options.tracksRedrive ?? true) for (const id of ids) await s.waitState(id, 'succeeded', 15_000)
        await count(s.queues.billing, 'dead').filter({ hasText: /^0$/ }).waitFor({ timeout: 10_000 })
      } finally {
        s.failing.value = true
      }
    })

    it('purges a queue once its name is typed', async () => {
      await s.report(4)
      await page.goto(url('/'))
      await count(s.queues.reports, 'ready')
        .filter({ hasText: /^[1-9]/ })
        .waitFor({ timeout: 10_000 })
      await expect
        .poll(async () => Number(await page.locator('#throughput-chart svg').getAttribute('data-failed')), {
          timeout: 15_000,
        })
        .toBeGreaterThan(0)
      await shot('overview')
      const purge = row(s.queues.reports).locator('details.purge')
      await purge.locator('summary').click()
      const button = purge.locator('button')
      expect(await button.isDisabled()).toBe(true)
      await purge.locator('input[name="confirm"]').fill('wrong')
      expect(await button.isDisabled()).toBe(true)
      await purge.locator('input[name="confirm"]').fill(s.queues.reports)
      expect(await button.isDisabled()).toBe(false)
      await button.click()
      await page.locator('[data-flash]').filter({ hasText: 'was purged' }).waitFor()
      await count(s.queues.reports, 'ready').filter({ hasText: /^0$/ }).waitFor()
      expect((await s.admin.queues()).find((q) => q.name === s.queues.reports)?.ready).toBe(0)
    })

    it('shows the messages and workers pages', async () => {
      await page.goto(url('/messages'))
      await page.locator('#messages tbody tr').first().waitFor()
      await shot('messages')
      await page.goto(url('/workers'))
      await page.locator('#workers tbody tr').first().waitFor()
      expect(await page.locator('[data-workers-online]').textContent()).toContain('1 online')
      await shot('workers')
      // No Scheduler in this deployment: the page says how to make one.
      await page.getByRole('link', { name: 'Schedules' }).click()
      await page.locator('h1', { hasText: 'Schedules' }).waitFor()
      expect(await page.locator('section.panel').textContent()).toContain('No schedules')
    })

    it('runs none of the hostile payloads and shows them as text', async () => {
      const id = await s.hostile()
      await s.waitState(id, 'dead')
      await s.writeRecord(hostileRecord(`hostile-${setup.prefix}`))
      for (const path of [
        `/messages/${id}`,
        `/messages/hostile-${setup.prefix}`,
        '/messages',
        `/messages?queue=${encodeURIComponent(`queue${XSS.img}`)}`,
        '/',
      ]) {
        await page.goto(url(path))
        await page.locator('main').waitFor()
        for (const stack of await page.locator('details').all()) await stack.evaluate((d) => d.setAttribute('open', ''))
        await page.mouse.move(300, 300)
        expect(await page.evaluate(() => (window as unknown as { __xss?: unknown }).__xss)).toBeUndefined()
      }
      await page.goto(url(`/messages/${id}`))
      expect(await page.locator('[data-error-message]').first().textContent()).toContain(XSS.script)
      expect(await page.locator('[data-actor]').textContent()).toContain(XSS.img)
      expect(await page.locator('pre[data-json="args"]').textContent()).toContain(XSS.script)
      expect(await page.evaluate(() => (window as unknown as { __xss?: unknown }).__xss)).toBeUndefined()
    })

    it('renders a 10 MB argument within 2 s', async () => {
      const id = await s.big(BIG)
      await s.waitState(id, 'succeeded', 20_000)
      const started = performance.now()
      await page.goto(url(`/messages/${id}`))
      await page.locator('[data-truncated], [data-args-truncated]').first().waitFor()
      expect(performance.now() - started).toBeLessThan(2000)
      const download = page.waitForEvent('download')
      await page.locator('a[download]').first().click()
      const file = await (await download).path()
      expect(file).toBeTruthy()
    })

    it('offers no action on a read-only dashboard and accepts none', async () => {
      const id = await s.charge('o-read-only')
      await s.waitState(id, 'dead')
      const ro = (path: string): string => `${readOnly.url}${path.replace(/^\//, '')}`
      for (const path of ['/', '/messages', `/messages/${id}`, '/workers']) {
        await page.goto(ro(path))
        await page.locator('[data-read-only]').waitFor()
        expect(await page.locator('form[method="post"]').count()).toBe(0)
        expect(await page.locator('[data-action]').count()).toBe(0)
      }
      const status = await page.evaluate(async (messageId) => {
        const token = document.querySelector('meta[name="tq-csrf"]')?.getAttribute('content') ?? ''
        const response = await fetch(`/tq/messages/${messageId}/retry`, {
          method: 'POST',
          headers: { 'x-tq-csrf': token, accept: 'application/json' },
        })
        return response.status
      }, id)
      expect(status).toBe(403)
      expect((await s.admin.message(id))?.state).toBe('dead')
    })

    it('logged no script error and no blocked resource', () => {
      // Failed fetches of the read-only POST (403) are logged by Chromium as resource errors.
      expect(pageErrors.filter((text) => !/403/.test(text))).toEqual([])
    })
  })
}
