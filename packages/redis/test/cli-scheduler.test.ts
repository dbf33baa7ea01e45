/**
 * `tq scheduler` and `tq schedules` (the real bin under tsx) against the real Redis: a fixture
 * module (fixtures/cli-scheduler-app.ts) makes a Scheduler for a RedisBroker, with its marks on
 * a RedisTrackingBackend, in a namespace and tracking prefix of this file's own.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scheduledMessageId } from '@tq/core'
import { uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, describe, expect, it } from 'vitest'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(dirname(createRequire(import.meta.url).resolve('@tq/core/package.json')), 'src', 'cli', 'bin.ts')
const APP = fileURLToPath(new URL('./fixtures/cli-scheduler-app.ts', import.meta.url))
const NO_SCHEDULER_APP = fileURLToPath(new URL('./fixtures/cli-admin-app.ts', import.meta.url))

const namespace = uniqueNamespace('clisched')
const prefix = `tq-tracking-${namespace}`
const queueName = uniqueQueueName('cli_sched')
const raw = rawClient()

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await deleteNamespace(raw, prefix)
  await raw.quit()
})

interface Proc {
  out: () => string
  err: () => string
  exited: Promise<number | null>
  kill: (signal: NodeJS.Signals) => void
}

function tq(args: string[]): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', BIN, ...args], {
    cwd: PACKAGE_DIR,
    env: {
      ...process.env,
      TQ_BROKER_URL: '',
      TQ_TRACKING_URL: '',
      FIXTURE_REDIS_URL: REDIS_URL,
      FIXTURE_NAMESPACE: namespace,
      FIXTURE_TRACKING_PREFIX: prefix,
      FIXTURE_QUEUE: queueName,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => setImmediate(() => resolve(code))))
  return { out: () => out, err: () => err, exited, kill: (signal) => child.kill(signal) }
}

describe('tq scheduler and tq schedules on Redis', () => {
  it('lists a schedule before its first run, runs it until SIGTERM logging each send, then lists its last run', async () => {
    const before = tq(['schedules', APP, '--json'])
    expect(await before.exited, before.err()).toBe(0)
    const [listed] = JSON.parse(before.out()) as Array<Record<string, unknown>>
    expect(listed).toMatchObject({ id: 'beat', actorName: 'beat_job', queueName, every: 300, tz: 'UTC' })
    expect(listed?.['lastRunAt']).toBeUndefined()
    expect(typeof listed?.['nextRunAt']).toBe('number')

    const running = tq(['scheduler', APP])
    try {
      await waitFor(() => running.out().includes('Running 1 schedule(s)'), { timeout: 15_000, message: 'started' })
      await waitFor(() => (running.err().match(/Sent beat_job for schedule beat/g) ?? []).length >= 3, {
        timeout: 10_000,
        message: 'three sends logged',
      })
    } finally {
      running.kill('SIGTERM')
    }
    expect(await running.exited, running.err()).toBe(0)
    expect(running.err()).toContain('Scheduler leads')

    const bodies = await raw.hvals(`${namespace}:${queueName}.msgs`)
    const ids = bodies.map((body) => (JSON.parse(body) as { message_id: string }).message_id)
    expect(ids.length).toBeGreaterThanOrEqual(3)
    expect(new Set(ids).size).toBe(ids.length)

    const after = tq(['schedules', APP])
    expect(await after.exited, after.err()).toBe(0)
    const cells = after
      .out()
      .split('\n')
      .map((line) => line.trim().split(/\s{2,}/))
      .find((row) => row[0] === 'beat')
    expect(cells?.slice(0, 4)).toEqual(['beat', 'beat_job', queueName, 'every 300 ms'])
    const last = Date.parse(cells?.[5] ?? '')
    expect(ids).toContain(scheduledMessageId('beat', last))
  })

  it('refuses to run with modules that make no Scheduler', async () => {
    const run = tq(['scheduler', NO_SCHEDULER_APP])
    expect(await run.exited).toBe(2)
    expect(run.err()).toContain('made no Scheduler')
  })

  it(
    'tq worker --scheduler runs the schedules in its worker processes (one leads) and consumes their messages',
    { timeout: 60_000 },
    async () => {
      const mark = async () =>
        (JSON.parse((await raw.hget(`${prefix}:schedules`, 'beat')) ?? '{}') as { lastDue?: number }).lastDue ?? 0
      const target = Math.max(await mark(), Date.now()) + 900
      const running = tq(['worker', APP, '--scheduler', '--processes', '2', '--concurrency', '2'])
      try {
        await waitFor(async () => (await mark()) >= target, {
          timeout: 20_000,
          message: 'the schedule advanced by three due times',
        })
        // The workers consume what the leader sends.
        await waitFor(async () => (await raw.hlen(`${namespace}:${queueName}.msgs`)) === 0, {
          timeout: 5000,
          message: 'the queue drained',
        })
      } finally {
        running.kill('SIGTERM')
      }
      expect(await running.exited, running.err()).toBe(0)
      expect(running.err().match(/Scheduler leads/g) ?? []).not.toHaveLength(0)

      const refused = tq(['worker', NO_SCHEDULER_APP, '--scheduler', '--processes', '1'])
      expect(await refused.exited).toBe(2)
      expect(refused.err()).toContain('made no Scheduler')
    },
  )
})
