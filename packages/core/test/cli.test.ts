/**
 * The `tq` CLI, run for real: `node --import tsx --conditions=@tq/source src/cli/bin.ts …`.
 * Each worker process has its own StubBroker, so the fixture module (fixtures/cli/app.ts)
 * enqueues its own messages at import and its actor appends `start|done <id> <pid>` lines to a
 * file the test reads.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))
const BIN = fileURLToPath(new URL('../src/cli/bin.ts', import.meta.url))
const APP = fileURLToPath(new URL('./fixtures/cli/app.ts', import.meta.url))
const BROKEN = fileURLToPath(new URL('./fixtures/cli/broken.ts', import.meta.url))
const NO_CONNECTION = fileURLToPath(new URL('./fixtures/cli/no-connection.ts', import.meta.url))

/** Process start-up under tsx on a busy machine takes a second or two; events get this long. */
const DEADLINE = 20_000

interface Entry {
  level: string
  time: string
  msg: string
  meta: Record<string, unknown>
}

class CliRun {
  readonly proc: ChildProcess
  output = ''
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  exitCode: number | null | undefined

  constructor(args: string[], env: Record<string, string>) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', BIN, ...args], {
      cwd: PACKAGE_DIR,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk))
    this.proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk))
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitCode = code
        // Let the pipes drain so `output` is complete.
        setImmediate(() => resolve({ code, signal }))
      })
    })
  }

  /** The JSON log lines written so far. */
  get entries(): Entry[] {
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Entry)
  }

  booted(): Entry[] {
    return this.entries.filter((e) => e.msg === 'Worker process booted')
  }

  /** Worker pids seen in status lines (for cleanup). */
  get workerPids(): number[] {
    return this.entries.flatMap((e) =>
      e.meta['process'] !== 'supervisor' && typeof e.meta['pid'] === 'number' ? [e.meta['pid']] : [],
    )
  }

  signal(signal: NodeJS.Signals): void {
    this.proc.kill(signal)
  }

  async exit(): Promise<number | null> {
    return (await withDeadline(this.exited, 'the CLI to exit', this)).code
  }
}

async function withDeadline<T>(promise: Promise<T>, what: string, run: CliRun): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out waiting for ${what}. Output so far:\n${run.output}`)),
      DEADLINE,
    )
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Poll `check` (every 20 ms) until it is true; fail with the CLI output after the deadline. */
async function until(check: () => boolean, what: string, run: CliRun): Promise<void> {
  const deadline = Date.now() + DEADLINE
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}. Output so far:\n${run.output}`)
    if (run.exitCode !== undefined && !check())
      throw new Error(`The CLI exited (${run.exitCode}) before ${what}. Output:\n${run.output}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

let dir: string
let runs: CliRun[] = []

function cli(args: string[], env: Record<string, string> = {}): CliRun {
  const run = new CliRun(args, { FIXTURE_OUT: join(dir, 'out.txt'), ...env })
  runs.push(run)
  return run
}

/** The `<event> <id> <pid>` lines the fixture actor wrote. */
function records(event: 'start' | 'done'): { id: string; pid: number }[] {
  const file = join(dir, 'out.txt')
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${event} `))
    .map((l) => {
      const [, id, pid] = l.split(' ')
      return { id: id as string, pid: Number(pid) }
    })
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tq-cli-'))
})

afterEach(async () => {
  for (const run of runs) {
    if (run.exitCode === undefined) run.proc.kill('SIGKILL')
    for (const pid of run.workerPids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    await run.exited
  }
  runs = []
  rmSync(dir, { recursive: true, force: true })
})

describe('tq worker', { timeout: 60_000 }, () => {
  it('prints one boot line per process, processes every message, and exits 0 on SIGTERM', async () => {
    const run = cli(['worker', APP, '--processes', '2', '--concurrency', '4', '--log-format', 'json'], {
      FIXTURE_COUNT: '20',
    })
    await until(() => run.booted().length === 2, 'two boot lines', run)
    const boots = run.booted()
    expect(new Set(boots.map((e) => e.meta['pid'])).size).toBe(2)
    for (const boot of boots) {
      expect(boot.meta).toMatchObject({ broker: 'StubBroker', queues: ['fixture'], concurrency: 4 })
    }
    await until(() => records('done').length === 40, '40 processed messages', run)

    run.signal('SIGTERM')
    expect(await run.exit()).toBe(0)
    const done = records('done')
    for (const boot of boots) {
      const ids = done.filter((r) => r.pid === boot.meta['pid']).map((r) => r.id)
      expect(new Set(ids).size).toBe(20)
    }
    const stopped = run.entries.filter((e) => e.msg === 'Worker process stopped')
    expect(stopped).toHaveLength(2)
    for (const line of stopped) expect(line.meta).toMatchObject({ processed: 20, failed: 0 })
    expect(run.entries.filter((e) => e.msg.startsWith('Supervisor started (tq '))).toHaveLength(1)
    expect(run.entries.filter((e) => e.msg.startsWith('Supervisor exiting'))).toHaveLength(1)
    expect(run.entries.at(-1)?.meta).toMatchObject({ process: 'supervisor', code: 0 })
  })

  it('logs a stats line from every worker process on SIGUSR1', async () => {
    const run = cli(['worker', APP, '-p', '2', '--log-format', 'json'], { FIXTURE_COUNT: '5' })
    await until(() => run.booted().length === 2, 'two boot lines', run)
    await until(() => records('done').length === 10, '10 processed messages', run)
    const stats = (): Entry[] => run.entries.filter((e) => e.msg === 'Worker process stats')
    expect(stats()).toHaveLength(0)
    run.signal('SIGUSR1')
    await until(() => stats().length === 2, 'two stats lines', run)
    expect(new Set(stats().map((e) => e.meta['pid']))).toEqual(new Set(run.booted().map((e) => e.meta['pid'])))
    for (const line of stats()) {
      expect(line.meta).toMatchObject({ processed: 5, failed: 0, retried: 0, skipped: 0, inFlight: 0 })
    }
    run.signal('SIGTERM')
    expect(await run.exit()).toBe(0)
    expect(stats()).toHaveLength(2)
    const stopped = run.entries.filter((e) => e.msg === 'Worker process stopped')
    for (const line of stopped) expect(line.meta).toMatchObject({ processed: 5, failed: 0, retried: 0 })
  })

  it('logs a stats line every --stats-interval ms, with the messages in flight', async () => {
    const run = cli(['worker', APP, '-p', '1', '--log-format', 'json', '--stats-interval', '100'], {
      FIXTURE_COUNT: '1',
      FIXTURE_SLEEP_MS: '60000',
    })
    await until(() => records('start').length === 1, 'the message to start', run)
    const stats = (): Entry[] => run.entries.filter((e) => e.msg === 'Worker process stats')
    const before = stats().length
    await until(() => stats().length >= before + 2, 'two more stats lines', run)
    expect(stats().at(-1)?.meta).toMatchObject({ process: 'worker-1', processed: 0, inFlight: 1 })
    run.signal('SIGTERM')
    await until(() => run.entries.some((e) => e.msg.includes('stopping worker processes')), 'the stop to begin', run)
    run.signal('SIGTERM')
    expect(await run.exit()).toBe(1)
  })

  it('lets a message that is running finish before exiting on SIGTERM', async () => {
    const run = cli(['worker', APP, '-p', '1', '--log-format', 'json'], { FIXTURE_COUNT: '1', FIXTURE_SLEEP_MS: '700' })
    await until(() => records('start').length === 1, 'the message to start', run)
    expect(records('done')).toHaveLength(0)
    run.signal('SIGTERM')
    expect(await run.exit()).toBe(0)
    expect(records('done').map((r) => r.id)).toEqual(['m0'])
    expect(run.entries.find((e) => e.msg === 'Worker process stopped')?.meta).toMatchObject({ processed: 1, failed: 0 })
  })

  it('exits 1 at once on a second SIGTERM', async () => {
    const run = cli(['worker', APP, '-p', '1', '--log-format', 'json', '--worker-shutdown-timeout', '60000'], {
      FIXTURE_COUNT: '1',
      FIXTURE_SLEEP_MS: '60000',
    })
    await until(() => records('start').length === 1, 'the message to start', run)
    run.signal('SIGTERM')
    await until(() => run.entries.some((e) => e.msg.includes('stopping worker processes')), 'the stop to begin', run)
    run.signal('SIGTERM')
    expect(await run.exit()).toBe(1)
    expect(records('done')).toHaveLength(0)
  })

  it('restarts a worker process that crashes, and the new one keeps working', async () => {
    const marker = join(dir, 'crashed')
    const run = cli(['worker', APP, '-p', '1', '--log-format', 'json'], {
      FIXTURE_COUNT: '3',
      FIXTURE_CRASH_MARKER: marker,
    })
    await until(() => run.booted().length === 2, 'a second boot line', run)
    const [first, second] = run.booted()
    expect(second?.meta['pid']).not.toBe(first?.meta['pid'])
    const restart = run.entries.find((e) => e.msg.includes('exited unexpectedly'))
    expect(restart?.level).toBe('warn')
    expect(restart?.meta).toMatchObject({ worker: 1, code: 13, delay: 1000 })
    expect(readFileSync(marker, 'utf8')).toBe(String(first?.meta['pid']))

    await until(() => records('done').length === 3, 'the new process to process its messages', run)
    expect(new Set(records('done').map((r) => r.pid))).toEqual(new Set([second?.meta['pid']]))
    run.signal('SIGTERM')
    expect(await run.exit()).toBe(0)
  })

  it('restarts every worker process on SIGHUP', async () => {
    const run = cli(['worker', APP, '-p', '1', '--log-format', 'json'])
    await until(() => run.booted().length === 1, 'the boot line', run)
    run.signal('SIGHUP')
    await until(() => run.booted().length === 2, 'a second boot line', run)
    const [first, second] = run.booted()
    expect(second?.meta['pid']).not.toBe(first?.meta['pid'])
    expect(run.entries.find((e) => e.msg === 'Worker process stopped')?.meta['pid']).toBe(first?.meta['pid'])
    run.signal('SIGTERM')
    expect(await run.exit()).toBe(0)
  })

  it('--watch restarts the worker processes when a source file changes', async () => {
    const watched = join(dir, 'project')
    mkdirSync(join(watched, 'src', 'jobs'), { recursive: true })
    mkdirSync(join(watched, 'node_modules', 'dep'), { recursive: true })
    const run = cli(['worker', APP, '-p', '1', '--log-format', 'json', '--watch', watched])
    await until(() => run.booted().length === 1, 'the boot line', run)
    // Ignored: not a source file, and anything under node_modules.
    writeFileSync(join(watched, 'notes.txt'), 'not a source file')
    writeFileSync(join(watched, 'node_modules', 'dep', 'index.js'), 'export {}\n')
    writeFileSync(join(watched, 'src', 'jobs', 'tasks.ts'), 'export {}\n')
    await until(() => run.booted().length === 2, 'a boot line after the change', run)
    const reloads = run.entries.filter((e) => e.msg.includes('restarting worker processes'))
    expect(reloads).toHaveLength(1)
    expect(reloads[0]?.msg).toContain(join('src', 'jobs', 'tasks.ts'))
    expect(reloads[0]?.msg).not.toMatch(/notes\.txt|node_modules/)
    run.signal('SIGTERM')
    expect(await run.exit()).toBe(0)
  })

  it('exits 2 with a clear message when a module path does not exist', async () => {
    const run = cli(['worker', './no-such-module.ts'])
    expect(await run.exit()).toBe(2)
    expect(run.output).toContain('Cannot find module "./no-such-module.ts"')
    expect(run.output).not.toContain('Supervisor started')
  })

  it('exits 2 with the error when a module throws at import, without restarting it', async () => {
    const run = cli(['worker', BROKEN, '-p', '2', '--log-format', 'json'])
    expect(await run.exit()).toBe(2)
    expect(run.output).toContain('fixture module exploded at import')
    const failure = run.entries.find((e) => e.meta['process'] === 'supervisor' && e.msg.includes('failed to boot'))
    expect(failure?.msg).toContain('Failed to import')
    expect(run.entries.some((e) => e.msg.includes('restarting'))).toBe(false)
  })

  it('exits 3 when the broker cannot be reached at startup', async () => {
    const run = cli(['worker', NO_CONNECTION, '-p', '1'])
    expect(await run.exit()).toBe(3)
    expect(run.output).toContain('cannot reach the broker')
  })

  it('exits 2 on an unknown option', async () => {
    const run = cli(['worker', APP, '--no-such-option'])
    expect(await run.exit()).toBe(2)
    expect(run.output).toContain("unknown option '--no-such-option'")
  })
})
