// Runs a real `tq worker` (supervisor + worker processes) from source, captures its output
// (every line, also to a log file under the run's scratch dir) and kills or stops it.
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The reliability package folder (the worker processes' cwd, as a user's project would be). */
export const PACKAGE_DIR = dirname(dirname(fileURLToPath(import.meta.url)))
/** The repository root. */
export const ROOT_DIR = dirname(PACKAGE_DIR)
/** The `tq` bin, run from source. */
export const BIN = join(ROOT_DIR, 'packages/core/src/cli/bin.ts')
/** The worker module the suites run. */
export const APP = 'src/fixtures/app.ts'

/** One JSON log line of a tq process (`--log-format json`). */
export interface LogLine {
  level: string
  time: string
  msg: string
  meta: Record<string, unknown>
}

export interface TqWorkerOptions {
  /** Environment on top of this process's (the worker module reads its TQ_REL_* settings from it). */
  env: Record<string, string>
  /** Extra `tq worker` arguments (e.g. `--concurrency 8`). */
  args?: string[]
  /** Module to import (default the fixture app). */
  module?: string
  /** File every output line is appended to. */
  logFile?: string
  /** Drop `process.env.TQ_BROKER_URL` and friends the test runner may have (default true). */
  cleanEnv?: boolean
}

/** Every `tq worker` started by this process, so a failed test can still kill its processes. */
const running = new Set<TqWorker>()

/**
 * Run `step`; if it fails, ask every running worker for a stats line and rethrow with the last
 * lines of each worker's output, so a failure says what the workers were doing.
 */
export async function diagnosed<T>(workers: readonly TqWorker[], step: Promise<T>): Promise<T> {
  try {
    return await step
  } catch (error) {
    const alive = workers.filter((w) => w.running)
    for (const w of alive) w.requestStats()
    if (alive.length > 0) await new Promise((r) => setTimeout(r, 1000))
    const tails = alive.map((w) => `--- tq worker ${w.pid}:\n${w.tail(15)}`).join('\n')
    const message = error instanceof Error ? error.message : String(error)
    throw new Error(`${message}\n${tails}`, { cause: error })
  }
}

/** SIGKILL every `tq worker` process group this test process started and that is still running. */
export function killAll(): void {
  for (const worker of running) worker.kill9()
}

/**
 * A `tq worker` command: `node --import tsx --conditions=@tq/source packages/core/src/cli/bin.ts
 * worker <module> --log-format json …`, in its own process group so that `kill9()` takes the
 * supervisor and its worker processes down at once.
 */
export class TqWorker {
  readonly child: ChildProcess
  /** Every output line (stdout and stderr), in order. */
  readonly lines: string[] = []
  /** The lines that parsed as JSON log entries. */
  readonly logs: LogLine[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  exitCode: number | null | undefined
  readonly #waiters = new Set<{ test: (line: LogLine) => boolean; resolve: (line: LogLine) => void }>()
  readonly #logFile: string | undefined

  constructor(options: TqWorkerOptions) {
    const env: NodeJS.ProcessEnv = { ...process.env }
    if (options.cleanEnv !== false) {
      for (const key of Object.keys(env)) if (key.startsWith('TQ_') && key !== 'TQ_FAULTS') delete env[key]
      // vitest sets these; a worker process is not a test.
      delete env['VITEST']
      delete env['VITEST_POOL_ID']
      delete env['VITEST_WORKER_ID']
      delete env['NODE_OPTIONS']
    }
    Object.assign(env, options.env)
    this.#logFile = options.logFile
    this.child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--conditions=@tq/source',
        BIN,
        'worker',
        options.module ?? APP,
        '--log-format',
        'json',
        ...(options.args ?? []),
      ],
      { cwd: PACKAGE_DIR, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    )
    running.add(this)
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let buffered = ''
      stream?.setEncoding('utf8')
      stream?.on('data', (chunk: string) => {
        buffered += chunk
        let newline: number
        while ((newline = buffered.indexOf('\n')) >= 0) {
          this.#line(buffered.slice(0, newline))
          buffered = buffered.slice(newline + 1)
        }
      })
      stream?.on('end', () => {
        if (buffered) this.#line(buffered)
        buffered = ''
      })
    }
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        running.delete(this)
        this.exitCode = code
        resolve({ code, signal })
      })
    })
  }

  #line(line: string): void {
    this.lines.push(line)
    if (this.#logFile) appendFileSync(this.#logFile, `${line}\n`)
    if (!line.startsWith('{')) return
    let entry: LogLine
    try {
      entry = JSON.parse(line) as LogLine
    } catch {
      return
    }
    if (typeof entry.msg !== 'string') return
    entry.meta ??= {}
    this.logs.push(entry)
    for (const waiter of [...this.#waiters]) {
      if (waiter.test(entry)) {
        this.#waiters.delete(waiter)
        waiter.resolve(entry)
      }
    }
  }

  /** Resolves with the first log entry (past or future) that `test` accepts; rejects on timeout or exit. */
  waitForLog(test: (line: LogLine) => boolean, timeout = 30_000, what = 'log line'): Promise<LogLine> {
    const seen = this.logs.find(test)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const waiter = {
        test,
        resolve: (line: LogLine) => {
          clearTimeout(timer)
          resolve(line)
        },
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(new Error(`tq worker: no ${what} within ${timeout} ms. Output:\n${this.tail()}`))
      }, timeout)
      this.#waiters.add(waiter)
      void this.exited.then(({ code, signal }) => {
        if (!this.#waiters.has(waiter)) return
        this.#waiters.delete(waiter)
        clearTimeout(timer)
        reject(new Error(`tq worker exited (${signal ?? code}) before ${what}. Output:\n${this.tail()}`))
      })
    })
  }

  /** Waits until `count` worker processes (default 1) logged "Worker process booted". */
  async booted(timeout = 60_000, count = 1): Promise<LogLine> {
    let seen = 0
    return this.waitForLog(
      (l) => l.msg === 'Worker process booted' && ++seen >= count,
      timeout,
      `${count} "Worker process booted" line(s)`,
    )
  }

  /** Pids of the worker processes that booted, latest last. */
  workerPids(): number[] {
    return this.logs.filter((l) => l.msg === 'Worker process booted').map((l) => Number(l.meta['pid']))
  }

  /** The last lines of output, for failure messages. */
  tail(n = 40): string {
    return this.lines.slice(-n).join('\n')
  }

  get pid(): number {
    return this.child.pid as number
  }

  get running(): boolean {
    return this.exitCode === undefined
  }

  /** SIGKILL the whole process group: supervisor and worker processes die at once, nothing runs after. */
  kill9(): void {
    if (!this.running) return
    try {
      process.kill(-this.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }

  /** SIGKILL one worker process only (the supervisor sees it crash and starts another). */
  killWorkerProcess(pid: number): void {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }

  /** SIGUSR1 to the supervisor: every worker process logs a stats line (for failure reports). */
  requestStats(): void {
    if (this.running) this.child.kill('SIGUSR1')
  }

  /** SIGTERM to the supervisor (a graceful stop); resolves with the exit code. */
  async terminate(timeout = 60_000): Promise<number | null> {
    if (this.running) this.child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const result = await Promise.race([
      this.exited,
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeout))),
    ])
    clearTimeout(timer)
    if (result === 'timeout') {
      this.kill9()
      throw new Error(`tq worker did not stop within ${timeout} ms of SIGTERM. Output:\n${this.tail()}`)
    }
    return result.code
  }
}
