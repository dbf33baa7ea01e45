import { fileURLToPath } from 'node:url'
import type { Logger } from '../logger.ts'
import { CHILD_ENV, type WorkerCommandConfig, type WorkerProcessConfig } from './config.ts'
import { ExitCode } from './exit-codes.ts'
import { createCliLogger } from './log.ts'
import { cliVersion, parseAndRun } from './program.ts'
import { Supervisor, type RestartPolicy } from './supervisor.ts'
import { runWorkerProcess } from './worker-process.ts'

export { CHILD_ENV } from './config.ts'
export type { WorkerCommandConfig, WorkerProcessConfig } from './config.ts'
export { EXIT_CODE_HELP, ExitCode } from './exit-codes.ts'
export { addAdminCommands, formatMessageRecord } from './admin-commands.ts'
export type { AdminCommandIo } from './admin-commands.ts'
export { LogFormat, createCliLogger, formatJson, formatPretty } from './log.ts'
export type { CliLoggerOptions } from './log.ts'
export { resolveModule } from './modules.ts'
export { buildProgram, cliVersion } from './program.ts'
export { Supervisor } from './supervisor.ts'
export type { RestartPolicy, SupervisorOptions } from './supervisor.ts'
export { watchTree } from './watch.ts'
export type { TreeWatcher, TreeWatcherOptions } from './watch.ts'
export { runWorkerProcess } from './worker-process.ts'

export interface RunCliOptions {
  /** Help and version text (default stdout). */
  stdout?: (text: string) => void
  /** Argument errors and log lines (default stderr). */
  stderr?: (text: string) => void
  /** The script worker processes run (default: this package's `tq` bin). */
  binPath?: string
  /** Node flags for worker processes (default `process.execArgv`). */
  execArgv?: readonly string[]
  /** The environment of worker processes, and where the admin commands read `TQ_BROKER_URL`/`TQ_TRACKING_URL` (default `process.env`). */
  env?: NodeJS.ProcessEnv
  cwd?: string
  restart?: RestartPolicy
  /** Stop on SIGTERM/SIGINT, reload on SIGHUP and ask for stats lines on SIGUSR1 sent to this process (default true). */
  handleSignals?: boolean
  /**
   * Stop gracefully when the process that started `tq` exits (checked every 500 ms). Default:
   * when started by a package manager (`npx tq`, `npm run`, `pnpm run`), whose shell dies on
   * SIGTERM without passing it on. Off for a `tq` started directly, so `nohup tq worker &`
   * outlives its shell.
   */
  stopWithParent?: boolean
}

/** How often the supervisor checks whether the process that started it is still there. */
const PARENT_CHECK_INTERVAL = 500

/** Call `onGone` once when this process's parent exits (it is re-parented); returns a stop function. */
function watchParent(onGone: () => void): () => void {
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    onGone()
  }, PARENT_CHECK_INTERVAL)
  timer.unref()
  return () => clearInterval(timer)
}

/** The bin next to this module: `bin.ts` when running from source, `bin.js` when built. */
function defaultBinPath(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js'
  return fileURLToPath(new URL(`./bin${ext}`, import.meta.url))
}

async function superviseWorkers(config: WorkerCommandConfig, options: RunCliOptions): Promise<number> {
  const logger: Logger = createCliLogger({
    format: config.logFormat,
    verbose: config.verbose,
    ...(options.stderr ? { write: options.stderr } : {}),
    bindings: { process: 'supervisor', pid: process.pid },
  })
  const supervisor = new Supervisor({
    config,
    logger,
    version: cliVersion(),
    binPath: options.binPath ?? defaultBinPath(),
    ...(options.execArgv ? { execArgv: options.execArgv } : {}),
    ...(options.env ? { env: options.env } : {}),
    ...(options.restart ? { restart: options.restart } : {}),
  })
  if (options.handleSignals === false) return supervisor.run()
  const onTerm = (): void => supervisor.stop('SIGTERM')
  const onInt = (): void => supervisor.stop('SIGINT')
  const onHup = (): void => supervisor.reload('SIGHUP')
  const onUsr1 = (): void => supervisor.requestStats('SIGUSR1')
  process.on('SIGTERM', onTerm)
  process.on('SIGINT', onInt)
  process.on('SIGHUP', onHup)
  process.on('SIGUSR1', onUsr1)
  const env = options.env ?? process.env
  const stopWithParent = options.stopWithParent ?? env['npm_lifecycle_event'] !== undefined
  const unwatch = stopWithParent ? watchParent(() => supervisor.stop('the process that started tq exited')) : undefined
  try {
    return await supervisor.run()
  } finally {
    unwatch?.()
    process.off('SIGTERM', onTerm)
    process.off('SIGINT', onInt)
    process.off('SIGHUP', onHup)
    process.off('SIGUSR1', onUsr1)
  }
}

/**
 * Run the `tq` command line with `argv` (the arguments after `tq`). Resolves with the exit code:
 * 0 clean shutdown, 1 unclean, 2 bad arguments or a module failed to import, 3 broker
 * connection failed at startup. The admin commands (`tq queues`, `tq messages`, …) resolve with 0
 * when done, 1 when the operation failed, 2 for bad arguments.
 */
export async function runCli(argv: readonly string[], options: RunCliOptions = {}): Promise<number> {
  const writeOut = options.stdout ?? ((text: string) => void process.stdout.write(text))
  const writeErr = options.stderr ?? ((text: string) => void process.stderr.write(text))
  return parseAndRun(argv, {
    writeOut,
    writeErr,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env } : {}),
    runWorker: (config) => superviseWorkers(config, options),
  })
}

/** The bin's entry: a worker process when started by the supervisor, else the command line. */
export async function main(): Promise<void> {
  const childConfig = process.env[CHILD_ENV]
  if (childConfig !== undefined) {
    // Not inherited by anything the user's code spawns.
    delete process.env[CHILD_ENV]
    await runWorkerProcess(JSON.parse(childConfig) as WorkerProcessConfig)
    return
  }
  let code: number
  try {
    code = await runCli(process.argv.slice(2))
  } catch (error) {
    console.error(error)
    code = ExitCode.UNCLEAN
  }
  process.exit(code)
}
