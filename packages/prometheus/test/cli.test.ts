/**
 * `tq worker --processes 2 --metrics-port 0`, run for real: the supervisor serves /metrics by
 * asking both worker processes for their Prometheus middleware's metrics and merging them.
 * Each process has its own StubBroker (fixtures/cli-app.ts enqueues its messages at import),
 * so the totals are twice one process's.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))
const BIN = fileURLToPath(new URL('../../core/src/cli/bin.ts', import.meta.url))
const APP = fileURLToPath(new URL('./fixtures/cli-app.ts', import.meta.url))
/** Process start-up under tsx on a busy machine takes a second or two; events get this long. */
const DEADLINE = 20_000

interface Entry {
  level: string
  msg: string
  meta: Record<string, unknown>
}

const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
})

function tq(args: string[], env: Record<string, string>) {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', BIN, ...args], {
    cwd: PACKAGE_DIR,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(proc)
  let output = ''
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => setImmediate(() => resolve(code))))
  const entries = (): Entry[] =>
    output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Entry)
  /** Poll `check` every 50 ms until it returns a value; fail with the output after the deadline. */
  const until = async <T>(check: () => T | undefined | Promise<T | undefined>, what: string): Promise<T> => {
    const deadline = Date.now() + DEADLINE
    for (;;) {
      const value = await check()
      if (value !== undefined) return value
      if (Date.now() > deadline || proc.exitCode !== null)
        throw new Error(`Gave up waiting for ${what}. Output so far:\n${output}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return { proc, exited, entries, until, output: () => output }
}

/** The value of the sample line `series` (`name{labels}`) in a scrape, if present. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('tq worker --metrics-port', { timeout: 60_000 }, () => {
  it("serves the sum of every worker process's metrics at /metrics", async () => {
    const run = tq(['worker', APP, '--processes', '2', '--metrics-port', '0', '--log-format', 'json'], {
      FIXTURE_COUNT: '10',
      FIXTURE_FAIL: '1',
    })
    const url = await run.until(() => {
      const line = run.entries().find((e) => e.msg === 'Serving metrics')
      return typeof line?.meta['url'] === 'string' ? line.meta['url'] : undefined
    }, 'the metrics line')
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    await run.until(
      () => (run.entries().filter((e) => e.msg === 'Worker process booted').length === 2 ? true : undefined),
      'two boot lines',
    )

    const work = '{queue_name="metrics",actor_name="work"}'
    const flaky = '{queue_name="metrics",actor_name="flaky"}'
    // Both processes ran their 10 `work` messages and dead-lettered `flaky` after its retry.
    const text = await run.until(async () => {
      const response = await fetch(url)
      const body = await response.text()
      return sample(body, `dramatiq_messages_total${work}`) === 20 &&
        sample(body, `dramatiq_message_rejects_total${flaky}`) === 2
        ? body
        : undefined
    }, 'dramatiq_messages_total to reach 20')
    expect(sample(text, `dramatiq_messages_total${flaky}`)).toBe(4)
    expect(sample(text, `dramatiq_message_errors_total${flaky}`)).toBe(4)
    expect(sample(text, `dramatiq_message_retries_total${flaky}`)).toBe(2)
    expect(sample(text, `dramatiq_message_errors_total${work}`) ?? 0).toBe(0)
    expect(sample(text, `dramatiq_messages_inprogress${work}`)).toBe(0)
    expect(sample(text, `dramatiq_message_duration_milliseconds_count${work}`)).toBe(20)
    expect(
      sample(text, 'dramatiq_message_duration_milliseconds_bucket{le="+Inf",queue_name="metrics",actor_name="work"}'),
    ).toBe(20)
    expect(sample(text, 'dramatiq_queue_size{queue_name="metrics"}')).toBe(0)
    // One TYPE line per metric: merged, not concatenated.
    expect(text.match(/^# TYPE dramatiq_messages_total counter$/gm)).toHaveLength(1)

    // The stats lines count the retry each process enqueued.
    run.proc.kill('SIGUSR1')
    const stats = await run.until(() => {
      const lines = run.entries().filter((e) => e.msg === 'Worker process stats')
      return lines.length === 2 ? lines : undefined
    }, 'two stats lines')
    for (const line of stats) expect(line.meta).toMatchObject({ processed: 10, failed: 2, retried: 1, inFlight: 0 })

    run.proc.kill('SIGTERM')
    expect(await run.exited).toBe(0)
    await expect(fetch(url)).rejects.toThrow()
  })

  it('exits 2 when the port is taken', async () => {
    const { createServer } = await import('node:http')
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const { port } = blocker.address() as { port: number }
    try {
      const run = tq(['worker', APP, '-p', '1', '--metrics-port', String(port), '--log-format', 'json'], {})
      expect(await run.exited).toBe(2)
      expect(run.output()).toContain(`Cannot serve metrics on 127.0.0.1:${port}`)
      expect(run.output()).toContain('EADDRINUSE')
      expect(run.entries().some((e) => e.msg === 'Worker process booted')).toBe(false)
    } finally {
      blocker.close()
    }
  })
})
