/**
 * The admin commands of the real `tq` bin (@tq/core's src/cli/bin.ts under tsx) against the real
 * Redis: a fixture module (fixtures/cli-admin-app.ts) sets a RedisBroker with Tracking on a
 * RedisTrackingBackend, in a namespace and tracking prefix of this file's own; the test seeds it
 * with a real Worker. Then tracking without modules: TQ_BROKER_URL and TQ_TRACKING_URL alone.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Retries, Tracking, Worker, actor, type TrackedMessage, type TrackingPage } from '@tq/core'
import { uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker, RedisTrackingBackend } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(dirname(createRequire(import.meta.url).resolve('@tq/core/package.json')), 'src', 'cli', 'bin.ts')
const APP = fileURLToPath(new URL('./fixtures/cli-admin-app.ts', import.meta.url))

const namespace = uniqueNamespace('cliadmin')
const prefix = `tq-tracking-${namespace}`
const queueName = uniqueQueueName('cli_admin')
const raw = rawClient()

const backend = new RedisTrackingBackend({ url: REDIS_URL, prefix })
const tracking = new Tracking({ backend })
// The broker the fixture module builds in each `tq` process, here for seeding and checking.
const broker = new RedisBroker({
  url: REDIS_URL,
  namespace,
  middleware: [new Retries({ maxRetries: 0 }), tracking],
})
const job = actor(
  'cli_admin_job',
  (fail: boolean) => {
    if (fail) throw new TypeError('job exploded')
  },
  { broker, queueName },
)

interface Run {
  code: number | null
  out: string
  err: string
}

/** `tq <args…>` as a real process in packages/redis, with the fixture's settings. */
function tq(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', BIN, ...args], {
    cwd: PACKAGE_DIR,
    env: {
      ...process.env,
      TQ_BROKER_URL: '',
      TQ_TRACKING_URL: '',
      TQ_TRACKING_PREFIX: '',
      FIXTURE_REDIS_URL: REDIS_URL,
      FIXTURE_NAMESPACE: namespace,
      FIXTURE_TRACKING_PREFIX: prefix,
      FIXTURE_QUEUE: queueName,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`tq ${args.join(' ')} did not exit within 15 s. stdout:\n${out}\nstderr:\n${err}`))
    }, 15_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      // Let the pipes drain.
      setImmediate(() => resolve({ code, out, err }))
    })
  })
}

/** The row of the queue in a `tq queues` table, split into cells. */
function row(out: string, name: string): string[] | undefined {
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s{2,}/))
    .find((cells) => cells[0] === name)
}

let ok: string
let dead: string

beforeAll(async () => {
  ok = (await job.send(false)).messageId
  await new Promise((resolve) => setTimeout(resolve, 3))
  dead = (await job.send(true)).messageId
  const worker = new Worker(broker, { workerTimeout: 100 })
  await worker.start()
  try {
    await waitFor(
      async () => (await backend.get(ok))?.state === 'succeeded' && (await backend.get(dead))?.state === 'dead',
      { timeout: 15_000, message: 'one succeeded and one dead message' },
    )
  } finally {
    await worker.stop({ timeout: 5000 })
  }
  await tracking.flush()
})

afterAll(async () => {
  await broker.close()
  await backend.close()
  await deleteNamespace(raw, namespace)
  await deleteNamespace(raw, prefix)
  await raw.quit()
})

describe('tq admin commands on Redis (the real bin)', () => {
  it('tq queues: the queue with its dead letter', async () => {
    const run = await tq(['queues', APP])
    expect(run.err).toBe('')
    expect(run.code).toBe(0)
    expect(run.out.split('\n')[0]?.trim().split(/\s+/)).toEqual(['NAME', 'READY', 'DELAYED', 'RUNNING', 'DEAD'])
    expect(row(run.out, queueName)).toEqual([queueName, '0', '0', '0', '1'])
  })

  it('tq messages --json: both tracked messages, newest first', async () => {
    const run = await tq(['messages', APP, '--json', '--queue', queueName])
    expect(run.err).toBe('')
    expect(run.code).toBe(0)
    const page = JSON.parse(run.out) as TrackingPage
    expect(page.items.map((m) => [m.messageId, m.state])).toEqual([
      [dead, 'dead'],
      [ok, 'succeeded'],
    ])
    const deadOnly = await tq(['messages', APP, '--state', 'dead', '--queue', queueName])
    expect(deadOnly.out).toContain(dead)
    expect(deadOnly.out).not.toContain(ok)
  })

  it('tq message <id>: the record with its failed attempt; an unknown id exits 1', async () => {
    const run = await tq(['message', dead, APP])
    expect(run.err).toBe('')
    expect(run.code).toBe(0)
    expect(run.out).toMatch(new RegExp(`^id: +${dead}$`, 'm'))
    expect(run.out).toMatch(/^state: +dead$/m)
    expect(run.out).toMatch(/^args: +\[true\]$/m)
    expect(run.out).toMatch(/^attempt 1: +TypeError: job exploded$/m)
    const json = await tq(['message', ok, APP, '--json'])
    expect(JSON.parse(json.out) as TrackedMessage).toMatchObject({ messageId: ok, state: 'succeeded', queueName })
    const unknown = await tq(['message', 'no-such-message', APP])
    expect(unknown.code).toBe(1)
    expect(unknown.err).toContain('Message no-such-message is not known to tracking')
  })

  it('TQ_TRACKING_URL without modules: the records, read through @tq/redis', async () => {
    const env = { TQ_BROKER_URL: REDIS_URL, TQ_TRACKING_URL: REDIS_URL, TQ_TRACKING_PREFIX: prefix }
    const run = await tq(['messages', '--json', '--queue', queueName], env)
    expect(run.err).toBe('')
    expect(run.code).toBe(0)
    expect((JSON.parse(run.out) as TrackingPage).items.map((m) => m.messageId)).toEqual([dead, ok])
    const one = await tq(['message', dead], env)
    expect(one.code).toBe(0)
    expect(one.out).toMatch(/^state: +dead$/m)
    // --tracking and --tracking-prefix say the same.
    const flags = await tq(['messages', '--tracking', REDIS_URL, '--tracking-prefix', prefix, '--state', 'succeeded'], {
      TQ_BROKER_URL: REDIS_URL,
    })
    expect(flags.code).toBe(0)
    expect(flags.out).toContain(ok)
    expect(flags.out).not.toContain(dead)
    // Without tracking, the broker from TQ_BROKER_URL has none: a clear error.
    const none = await tq(['messages'], { TQ_BROKER_URL: REDIS_URL })
    expect(none.code).toBe(1)
    expect(none.err).toMatch(/^error: Admin cannot list messages without tracking/)
  })

  it('tq redrive <queue>: the dead letter goes back', async () => {
    const run = await tq(['redrive', queueName, APP])
    expect(run.err).toBe('')
    expect(run.code).toBe(0)
    expect(run.out).toBe(`Sent 1 dead letter of ${queueName} back to the queue\n`)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 1, dead: 0 })
    const again = await tq(['redrive', queueName, APP, '--json'])
    expect(JSON.parse(again.out)).toEqual({ queue: queueName, redriven: 0 })
  })

  it('tq purge <queue>: refused without --yes, done with it', async () => {
    await job.send(false)
    expect((await broker.queueCounts(queueName)).ready).toBe(2)
    const refused = await tq(['purge', queueName, APP])
    expect(refused.code).toBe(2)
    expect(refused.err).toContain('refusing to purge')
    expect((await broker.queueCounts(queueName)).ready).toBe(2)
    const run = await tq(['purge', queueName, APP, '--yes'])
    expect(run.err).toBe('')
    expect(run.code).toBe(0)
    expect(run.out).toBe(`Purged ${queueName}: its waiting and delayed messages are gone\n`)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 0, delayed: 0 })
  })
})
