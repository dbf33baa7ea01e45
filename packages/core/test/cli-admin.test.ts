/**
 * The admin commands of `tq` (queues, messages, message, retry, redrive, cancel, purge, workers),
 * run in-process through `runCli` with the fixture module fixtures/cli/admin-app.ts: a
 * StubBroker with the Tracking middleware, seeded with real messages and a real Worker. The
 * unreachable brokers are tried with the real bin.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ExitCode, runCli } from '../src/cli/index.ts'
import { formatAge, formatTable } from '../src/cli/table.ts'
import {
  MESSAGE_STATES,
  StubBroker,
  Tracking,
  Worker,
  type QueueSummary,
  type TrackedMessage,
  type TrackingPage,
  type WorkerHeartbeat,
} from '../src/index.ts'
import { freePort, waitFor } from '../src/testing/index.ts'
import { IDLE_QUEUE, JOBS_QUEUE, reset, type Fixture } from './fixtures/cli/admin-app.ts'

const APP = fileURLToPath(new URL('./fixtures/cli/admin-app.ts', import.meta.url))
const BIN = fileURLToPath(new URL('../src/cli/bin.ts', import.meta.url))

interface Run {
  code: number
  out: string
  err: string
}

/** `tq <argv…>` in this process, with an environment of its own (no TQ_BROKER_URL). */
async function tq(argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  let out = ''
  let err = ''
  const code = await runCli(argv, {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    handleSignals: false,
    env: options.env ?? {},
    ...(options.cwd ? { cwd: options.cwd } : {}),
  })
  return { code, out, err }
}

/** The lines of a table, split into cells. */
function cells(out: string): string[][] {
  return out
    .trimEnd()
    .split('\n')
    .map((line) => line.trim().split(/\s{2,}/))
}

/** Run a Worker on the fixture's broker until `done`, then stop it and write what tracking holds. */
async function work(fixture: Fixture, done: () => Promise<boolean>, what: string): Promise<void> {
  const worker = new Worker(fixture.broker, { workerTimeout: 50 })
  await worker.start()
  try {
    await waitFor(done, { timeout: 10_000, message: what })
  } finally {
    await worker.stop({ timeout: 5000 })
  }
  await fixture.tracking.flush()
}

async function stateOf(fixture: Fixture, id: string): Promise<string | undefined> {
  return (await fixture.backend.get(id))?.state
}

/** A few ms, so that messages sent one after the other are enqueued at distinct times (listings are newest first). */
const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 3))

/** Two messages run: one succeeded, one dead (Retries has no retries left). */
async function seedFinished(fixture: Fixture): Promise<{ ok: string; dead: string }> {
  const ok = (await fixture.job.send(false)).messageId
  await tick()
  const dead = (await fixture.job.send(true)).messageId
  await tick()
  await work(
    fixture,
    async () => (await stateOf(fixture, ok)) === 'succeeded' && (await stateOf(fixture, dead)) === 'dead',
    'one succeeded and one dead message',
  )
  return { ok, dead }
}

let fixture: Fixture
beforeEach(() => {
  fixture = reset()
})

describe('table formatting', () => {
  it('aligns columns under a header, numbers to the right, without trailing spaces', () => {
    const text = formatTable(
      [{ header: 'NAME' }, { header: 'N', align: 'right' }, { header: 'LAST' }],
      [
        ['a', '1', 'x'],
        ['long-name', '100', 'yy'],
      ],
    )
    expect(text).toBe('NAME         N  LAST\na            1  x\nlong-name  100  yy\n')
  })

  it('says how long ago in the largest whole unit', () => {
    const now = 1_000_000_000
    expect(formatAge(now - 3_400, now)).toBe('3s ago')
    expect(formatAge(now - 5 * 60_000, now)).toBe('5m ago')
    expect(formatAge(now - 3 * 3_600_000, now)).toBe('3h ago')
    expect(formatAge(now - 4 * 86_400_000, now)).toBe('4d ago')
    expect(formatAge(now + 1000, now)).toBe('0s ago')
  })
})

describe('help', () => {
  it('lists the admin commands, and each documents its environment and exit codes', async () => {
    const top = await tq(['--help'])
    expect(top.code).toBe(ExitCode.OK)
    for (const command of ['queues', 'messages', 'message', 'retry', 'redrive', 'cancel', 'purge', 'workers']) {
      expect(top.out).toMatch(new RegExp(`^  ${command} \\[options\\]`, 'm'))
    }
    const help = await tq(['messages', '--help'])
    expect(help.code).toBe(ExitCode.OK)
    expect(help.out).toContain('--state <state>')
    expect(help.out).toContain('TQ_TRACKING_URL')
    expect(help.out).toMatch(/Exit codes:[\s\S]*1 {2}it failed/)
  })
})

describe('tq queues', () => {
  it('prints NAME READY DELAYED RUNNING DEAD for every declared queue', async () => {
    await seedFinished(fixture)
    await fixture.job.send(false)
    await fixture.job.sendWithOptions({ args: [false], delay: 600_000 })
    const run = await tq(['queues', APP])
    expect(run.err).toBe('')
    expect(run.code).toBe(ExitCode.OK)
    const rows = cells(run.out)
    expect(rows[0]).toEqual(['NAME', 'READY', 'DELAYED', 'RUNNING', 'DEAD'])
    expect(rows.slice(1)).toEqual([
      [IDLE_QUEUE, '0', '0', '0', '0'],
      [JOBS_QUEUE, '1', '1', '0', '1'],
    ])
    expect(fixture.broker.closed).toBe(true)
  })

  it('--json prints the queue summaries; -Q keeps only the queues named', async () => {
    await fixture.idle.send('x')
    const run = await tq(['queues', APP, '--json', '-Q', IDLE_QUEUE])
    expect(run.code).toBe(ExitCode.OK)
    const queues = JSON.parse(run.out) as QueueSummary[]
    expect(queues).toEqual([{ name: IDLE_QUEUE, ready: 1, delayed: 0, running: 0, dead: 0 }])
  })

  it('shows - for a running count the broker cannot tell', async () => {
    const counts = fixture.broker.queueCounts.bind(fixture.broker)
    fixture.broker.queueCounts = async (name) => ({ ...(await counts(name)), running: undefined })
    const run = await tq(['queues', APP, '-Q', JOBS_QUEUE])
    expect(cells(run.out)[1]).toEqual([JOBS_QUEUE, '0', '0', '-', '0'])
  })
})

describe('tq messages', () => {
  it('prints ID STATE ACTOR QUEUE ENQUEUED ATTEMPTS, newest first, and filters', async () => {
    const { ok, dead } = await seedFinished(fixture)
    const queued = (await fixture.idle.send('waiting')).messageId
    await fixture.tracking.flush()

    const all = await tq(['messages', APP])
    expect(all.err).toBe('')
    expect(all.code).toBe(ExitCode.OK)
    const rows = cells(all.out)
    expect(rows[0]).toEqual(['ID', 'STATE', 'ACTOR', 'QUEUE', 'ENQUEUED', 'ATTEMPTS'])
    expect(rows.slice(1).map((r) => r[0])).toEqual([queued, dead, ok])
    const byId = new Map(rows.slice(1).map((r) => [r[0], r]))
    expect(byId.get(dead)?.slice(1, 4)).toEqual(['dead', 'job', JOBS_QUEUE])
    expect(byId.get(dead)?.[4]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(byId.get(dead)?.[5]).toBe('1')
    expect(byId.get(queued)?.slice(1, 4)).toEqual(['queued', 'idle', IDLE_QUEUE])
    expect(byId.get(queued)?.[5]).toBe('0')
    expect(all.out).not.toContain('--cursor')

    const deadOnly = await tq(['messages', APP, '--state', 'dead'])
    expect(
      cells(deadOnly.out)
        .slice(1)
        .map((r) => r[0]),
    ).toEqual([dead])
    const byActor = await tq(['messages', APP, '--actor', 'idle', '--queue', IDLE_QUEUE])
    expect(
      cells(byActor.out)
        .slice(1)
        .map((r) => r[0]),
    ).toEqual([queued])
    const searched = await tq(['messages', APP, '--search', 'waiting'])
    expect(
      cells(searched.out)
        .slice(1)
        .map((r) => r[0]),
    ).toEqual([queued])
    const none = await tq(['messages', APP, '--state', 'cancelled'])
    expect(none.code).toBe(ExitCode.OK)
    expect(none.out).toBe('No tracked messages match.\n')
  })

  it('pages with --limit and says how to get the next page with --cursor', async () => {
    const ids: string[] = []
    for (let i = 0; i < 3; i++) {
      ids.push((await fixture.idle.send(`m${i}`)).messageId)
      await tick()
    }
    await fixture.tracking.flush()
    const first = await tq(['messages', APP, '--limit', '2'])
    expect(first.code).toBe(ExitCode.OK)
    const cursor = /--cursor (\S+)/.exec(first.out)?.[1]
    expect(cursor).toBeDefined()
    expect(
      cells(first.out.split('\n').slice(0, 3).join('\n'))
        .slice(1)
        .map((r) => r[0]),
    ).toEqual([ids[2], ids[1]])

    const second = await tq(['messages', APP, '--limit', '2', '--cursor', cursor as string, '--json'])
    const page = JSON.parse(second.out) as TrackingPage
    expect(page.items.map((m) => m.messageId)).toEqual([ids[0]])
    expect(page.cursor).toBeUndefined()
  })

  it('--json prints the page as it came (records with their attempts, the body as base64)', async () => {
    const { dead } = await seedFinished(fixture)
    const run = await tq(['messages', APP, '--json', '--state', 'dead'])
    expect(run.code).toBe(ExitCode.OK)
    const page = JSON.parse(run.out) as { items: (Omit<TrackedMessage, 'body'> & { body?: string })[] }
    expect(page.items).toHaveLength(1)
    const [record] = page.items
    expect(record).toMatchObject({
      messageId: dead,
      state: 'dead',
      actorName: 'job',
      queueName: JOBS_QUEUE,
      args: [true],
    })
    expect(record?.attempts[0]?.error).toMatchObject({ type: 'TypeError', message: 'job exploded' })
    expect(typeof record?.body).toBe('string')
  })

  it('rejects a bad --state, listing the states, and a --limit out of 1..500', async () => {
    const bad = await tq(['messages', APP, '--state', 'bogus'])
    expect(bad.code).toBe(ExitCode.USAGE)
    expect(bad.err).toContain('--state must be one of')
    for (const state of MESSAGE_STATES) expect(bad.err).toContain(state)
    expect(fixture.broker.closed).toBe(false)
    for (const limit of ['0', '501', 'x', '2.5']) {
      const run = await tq(['messages', APP, '--limit', limit])
      expect(run.code).toBe(ExitCode.USAGE)
      expect(run.err).toContain('--limit must be an integer from 1 to 500')
    }
  })

  it('without tracking: a clear error, exit 1', async () => {
    fixture = reset({ tracking: false })
    const run = await tq(['messages', APP])
    expect(run.code).toBe(ExitCode.FAILED)
    expect(run.out).toBe('')
    expect(run.err).toMatch(/^error: Admin cannot list messages without tracking/)
    expect(run.err.trim().split('\n')).toHaveLength(1)
    expect(fixture.broker.closed).toBe(true)
  })
})

describe('tq message <id>', () => {
  it('prints the record as a key/value list, each attempt with its error', async () => {
    const dead = (await fixture.job.sendWithOptions({ args: [true], maxRetries: 0 })).messageId
    await work(fixture, async () => (await stateOf(fixture, dead)) === 'dead', 'a dead message')
    const run = await tq(['message', dead, APP])
    expect(run.err).toBe('')
    expect(run.code).toBe(ExitCode.OK)
    const lines = run.out.split('\n')
    const value = (key: string): string | undefined =>
      lines
        .find((l) => l.startsWith(`${key}:`))
        ?.slice(key.length + 1)
        .trim()
    expect(value('id')).toBe(dead)
    expect(value('state')).toBe('dead')
    expect(value('actor')).toBe('job')
    expect(value('queue')).toBe(JOBS_QUEUE)
    expect(value('enqueued')).toMatch(/^\d{4}-\d\d-\d\dT/)
    expect(value('updated')).toMatch(/^\d{4}-\d\d-\d\dT/)
    expect(value('eta')).toBe('-')
    expect(value('worker')).toBe('-')
    expect(value('progress')).toBe('-')
    expect(value('args')).toBe('[true]')
    expect(value('kwargs')).toBe('{}')
    expect(JSON.parse(value('options') ?? '')).toEqual({ maxRetries: 0 })
    expect(value('attempts')).toBe('1')
    expect(value('attempt 1')).toBe('TypeError: job exploded')
    expect(run.out).toMatch(/attempt 1: +TypeError: job exploded\n +\d{4}-.*Z → \d{4}-.*Z on \S+/)
  })

  it('a failed message (no Retries: acked) shows as failed', async () => {
    fixture = reset({ retries: false })
    const id = (await fixture.job.send(true)).messageId
    await work(fixture, async () => (await stateOf(fixture, id)) === 'failed', 'a failed message')
    const run = await tq(['message', id, APP])
    expect(run.out).toMatch(/^state: +failed$/m)
    const json = await tq(['messages', APP, '--json', '--state', 'failed'])
    expect((JSON.parse(json.out) as TrackingPage).items.map((m) => m.messageId)).toEqual([id])
  })

  it('--json prints the record', async () => {
    const { ok } = await seedFinished(fixture)
    const run = await tq(['message', ok, APP, '--json'])
    expect(JSON.parse(run.out)).toMatchObject({
      messageId: ok,
      state: 'succeeded',
      args: [false],
      attempts: [{ number: 1 }],
    })
  })

  it('an unknown id: exit 1, "is not known to tracking"', async () => {
    const run = await tq(['message', 'no-such-id', APP])
    expect(run.code).toBe(ExitCode.FAILED)
    expect(run.out).toBe('')
    expect(run.err).toContain('Message no-such-id is not known to tracking')
    const json = await tq(['message', 'no-such-id', APP, '--json'])
    expect(json.code).toBe(ExitCode.FAILED)
    expect(json.out).toBe('')
  })
})

describe('tq retry <id>', () => {
  it('sends a dead message again and says so; tracking records it queued', async () => {
    const { dead } = await seedFinished(fixture)
    const run = await tq(['retry', dead, APP])
    expect(run.err).toBe('')
    expect(run.code).toBe(ExitCode.OK)
    expect(run.out).toBe(`Re-sent message ${dead} to queue ${JOBS_QUEUE}\n`)
    // The CLI wrote the Tracking middleware's pending updates before closing the broker.
    expect(await stateOf(fixture, dead)).toBe('queued')
    expect((await fixture.broker.queueCounts(JOBS_QUEUE)).ready).toBe(1)
  })

  it('--json prints the message as enqueued; an unfinished or unknown one is refused (exit 1)', async () => {
    const { ok } = await seedFinished(fixture)
    const run = await tq(['retry', ok, APP, '--json'])
    expect(run.code).toBe(ExitCode.OK)
    expect(JSON.parse(run.out)).toMatchObject({ messageId: ok, queueName: JOBS_QUEUE, actorName: 'job', args: [false] })

    fixture = reset()
    const waiting = (await fixture.job.send(false)).messageId
    await fixture.tracking.flush()
    const refused = await tq(['retry', waiting, APP])
    expect(refused.code).toBe(ExitCode.FAILED)
    expect(refused.err).toContain(`Message ${waiting} is queued: only a finished message can be retried`)
    const unknown = await tq(['retry', 'nope', APP])
    expect(unknown.code).toBe(ExitCode.FAILED)
    expect(unknown.err).toContain('"nope" is not known')
  })
})

describe('tq redrive <queue>', () => {
  it('sends the dead letters back and says how many; --limit bounds it; --json', async () => {
    for (let i = 0; i < 3; i++) await fixture.job.send(true)
    await work(fixture, async () => (await fixture.broker.queueCounts(JOBS_QUEUE)).dead === 3, 'three dead letters')
    const one = await tq(['redrive', JOBS_QUEUE, APP, '--limit', '1'])
    expect(one.err).toBe('')
    expect(one.code).toBe(ExitCode.OK)
    expect(one.out).toBe(`Sent 1 dead letter of ${JOBS_QUEUE} back to the queue\n`)
    expect(await fixture.broker.queueCounts(JOBS_QUEUE)).toMatchObject({ ready: 1, dead: 2 })

    // The same dead letters, on the broker the next command sees.
    const next = reset()
    for (let i = 0; i < 2; i++) await next.job.send(true)
    await work(next, async () => (await next.broker.queueCounts(JOBS_QUEUE)).dead === 2, 'two dead letters')
    const rest = await tq(['redrive', JOBS_QUEUE, APP, '--json'])
    expect(JSON.parse(rest.out)).toEqual({ queue: JOBS_QUEUE, redriven: 2 })
    expect(await next.broker.queueCounts(JOBS_QUEUE)).toMatchObject({ ready: 2, dead: 0 })
  })

  it('a queue no module declares: exit 1 naming it; a bad queue name: exit 2', async () => {
    const run = await tq(['redrive', 'not_declared', APP])
    expect(run.code).toBe(ExitCode.FAILED)
    expect(run.err).toContain('Queue "not_declared" is not declared on this broker')
    const bad = await tq(['redrive', 'bad queue!', APP])
    expect(bad.code).toBe(ExitCode.USAGE)
  })
})

describe('tq cancel <id>', () => {
  it('cancels a queued message; leaves a finished one', async () => {
    const { ok } = await seedFinished(fixture)
    const waiting = (await fixture.idle.send('later')).messageId
    await fixture.tracking.flush()
    const run = await tq(['cancel', waiting, APP])
    expect(run.err).toBe('')
    expect(run.code).toBe(ExitCode.OK)
    expect(run.out).toBe(`Message ${waiting}: cancelled (was queued)\n`)
    expect(await stateOf(fixture, waiting)).toBe('cancelled')

    const done = await tq(['cancel', ok, APP])
    expect(done.code).toBe(ExitCode.OK)
    expect(done.out).toBe(`Message ${ok}: not cancelled: already succeeded\n`)
    const json = await tq(['cancel', ok, APP, '--json'])
    expect(JSON.parse(json.out)).toEqual({ messageId: ok, cancelled: false, state: 'succeeded' })
    const unknown = await tq(['cancel', 'nope', APP])
    expect(unknown.code).toBe(ExitCode.FAILED)
  })
})

describe('tq purge <queue>', () => {
  it('refuses without --yes (exit 2, nothing purged, nothing imported or connected)', async () => {
    await fixture.idle.send('a')
    await fixture.idle.send('b')
    const run = await tq(['purge', IDLE_QUEUE, APP])
    expect(run.code).toBe(ExitCode.USAGE)
    expect(run.out).toBe('')
    expect(run.err).toMatch(/^error: refusing to purge fixture_idle without --yes: .*for good/)
    expect((await fixture.broker.queueCounts(IDLE_QUEUE)).ready).toBe(2)
    expect(fixture.broker.closed).toBe(false)
  })

  it('purges with --yes; --json', async () => {
    await fixture.idle.send('a')
    await fixture.idle.send('b')
    const run = await tq(['purge', IDLE_QUEUE, APP, '--yes'])
    expect(run.err).toBe('')
    expect(run.code).toBe(ExitCode.OK)
    expect(run.out).toBe(`Purged ${IDLE_QUEUE}: its waiting and delayed messages are gone\n`)
    expect((await fixture.broker.queueCounts(IDLE_QUEUE)).ready).toBe(0)

    fixture = reset()
    const json = await tq(['purge', IDLE_QUEUE, APP, '--yes', '--json'])
    expect(JSON.parse(json.out)).toEqual({ queue: IDLE_QUEUE, purged: true })
  })
})

describe('tq workers', () => {
  it('lists the workers sending heartbeats: ID HOST PID QUEUES IN-FLIGHT PROCESSED FAILED LAST-SEEN', async () => {
    // A worker of another process would share the backend, not the broker: so does this one.
    const other = new StubBroker({ middleware: [new Tracking({ backend: fixture.backend, flushInterval: 0 })] })
    other.declareQueue(JOBS_QUEUE)
    const worker = new Worker(other, { workerTimeout: 50, concurrency: 3 })
    await worker.start()
    try {
      await waitFor(async () => (await fixture.backend.workers()).length === 1, { message: 'a heartbeat' })
      const run = await tq(['workers', APP])
      expect(run.err).toBe('')
      expect(run.code).toBe(ExitCode.OK)
      const rows = cells(run.out)
      expect(rows[0]).toEqual(['ID', 'HOST', 'PID', 'QUEUES', 'IN-FLIGHT', 'PROCESSED', 'FAILED', 'LAST-SEEN'])
      expect(rows).toHaveLength(2)
      const [id, host, pid, queues, inFlight, processed, failed, lastSeen] = rows[1] ?? []
      expect(id).toContain(String(process.pid))
      expect(host).toBeTruthy()
      expect(pid).toBe(String(process.pid))
      expect(queues?.split(',')).toContain(JOBS_QUEUE)
      expect([inFlight, processed, failed]).toEqual(['0', '0', '0'])
      expect(lastSeen).toMatch(/^\d+s ago$/)

      fixture = reset()
      const json = await tq(['workers', APP, '--json'])
      expect(JSON.parse(json.out)).toEqual([])
    } finally {
      await worker.stop({ timeout: 5000 })
      await other.close()
    }
  })

  it('says so when no worker sends heartbeats', async () => {
    const run = await tq(['workers', APP])
    expect(run.code).toBe(ExitCode.OK)
    expect(run.out).toMatch(/^No workers are sending heartbeats/)
    const json = await tq(['workers', APP, '--json'])
    expect(JSON.parse(json.out) as WorkerHeartbeat[]).toEqual([])
  })
})

describe('finding the broker and tracking', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tq-cli-admin-'))
  })
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('needs modules or TQ_BROKER_URL (exit 2); a missing module is a usage error', async () => {
    const run = await tq(['queues'])
    expect(run.code).toBe(ExitCode.USAGE)
    expect(run.err).toContain('give the modules that set the broker')
    const missing = await tq(['queues', './no-such-module.ts'], { cwd: dir })
    expect(missing.code).toBe(ExitCode.USAGE)
    expect(missing.err).toContain('Cannot find module "./no-such-module.ts"')
  })

  it('a module that fails to import: exit 2 naming it', async () => {
    const broken = fileURLToPath(new URL('./fixtures/cli/broken.ts', import.meta.url))
    const run = await tq(['queues', broken])
    expect(run.code).toBe(ExitCode.USAGE)
    expect(run.err).toContain(`failed to import ${broken}: fixture module exploded at import`)
  })

  it('--tracking redis:// without @tq/redis installed: says to install it (exit 1)', async () => {
    writeFileSync(join(dir, 'package.json'), '{"name":"app","type":"module"}')
    const run = await tq(['messages', APP, '--tracking', 'redis://:pw@127.0.0.1:6379/0'], { cwd: dir })
    expect(run.code).toBe(ExitCode.FAILED)
    expect(run.err).toContain('--tracking redis://:***@127.0.0.1:6379/0 needs @tq/redis')
    expect(run.err).toContain('npm install @tq/redis')
    expect(run.err).not.toContain(':pw@')
    const env = await tq(['messages', APP], { cwd: dir, env: { TQ_TRACKING_URL: 'redis://127.0.0.1:6379' } })
    expect(env.code).toBe(ExitCode.FAILED)
    expect(env.err).toContain('TQ_TRACKING_URL redis://127.0.0.1:6379 needs @tq/redis')
    expect(fixture.broker.closed).toBe(true)
  })

  it('a tracking URL that is not redis://: exit 2', async () => {
    const run = await tq(['messages', APP, '--tracking', 'amqp://127.0.0.1'])
    expect(run.code).toBe(ExitCode.USAGE)
    expect(run.err).toContain('only redis:// and rediss:// tracking URLs are supported')
  })

  it('TQ_BROKER_URL=stub:// without modules: the queues named with -Q are counted', async () => {
    const run = await tq(['queues', '-Q', 'alpha', 'beta'], { env: { TQ_BROKER_URL: 'stub://' } })
    expect(run.err).toBe('')
    expect(run.code).toBe(ExitCode.OK)
    expect(
      cells(run.out)
        .slice(1)
        .map((r) => r[0]),
    ).toEqual(['alpha', 'beta'])
    const none = await tq(['queues'], { env: { TQ_BROKER_URL: 'stub://' } })
    expect(none.out).toMatch(/^No queues are declared/)
  })
})

/** Run the real bin (`node --import tsx src/cli/bin.ts …`) in `cwd`; resolves with its exit and output. */
function spawnTq(
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now()
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', BIN, ...args], {
    cwd,
    env: { ...process.env, TQ_TRACKING_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`tq ${args.join(' ')} did not exit within 20 s. Output:\n${output}`))
    }, 20_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      setImmediate(() => resolve({ code, output, ms: Date.now() - started }))
    })
  })
}

describe('an unreachable broker (the real bin)', () => {
  // TQ_BROKER_URL needs the adapter package, which @tq/core does not depend on: run from its directory.
  const adapters = [
    { scheme: 'redis', dir: fileURLToPath(new URL('../../redis/', import.meta.url)) },
    { scheme: 'amqp', dir: fileURLToPath(new URL('../../rabbitmq/', import.meta.url)) },
  ]
  for (const { scheme, dir } of adapters) {
    it(`TQ_BROKER_URL=${scheme}://…:<closed port>: exit 1 within seconds, naming the redacted URL`, async () => {
      const port = await freePort()
      const url = `${scheme}://user:s3cret@127.0.0.1:${port}`
      const run = await spawnTq(['queues', '-Q', 'default'], dir, { TQ_BROKER_URL: url })
      expect(run.code, run.output).toBe(ExitCode.FAILED)
      expect(run.ms).toBeLessThan(15_000)
      const lines = run.output.trim().split('\n')
      expect(lines, run.output).toHaveLength(1)
      expect(lines[0]).toMatch(/^error: cannot reach the broker at /)
      expect(lines[0]).toContain(`${scheme}://user:***@127.0.0.1:${port}`)
      expect(lines[0]).toContain('ECONNREFUSED')
      expect(run.output).not.toContain('s3cret')
    }, 30_000)
  }
})
