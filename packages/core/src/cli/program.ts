import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { Command, CommanderError, Option } from 'commander'
import { errorMessage } from '../errors.ts'
import { validateQueueName } from '../queue-names.ts'
import { addScheduleCommands } from './schedule-commands.ts'
import { addAdminCommands } from './admin-commands.ts'
import { addPostgresCommands } from './postgres-commands.ts'
import type { WorkerCommandConfig } from './config.ts'
import { integer, isDirectory, port } from './args.ts'
import { EXIT_CODE_HELP, ExitCode } from './exit-codes.ts'
import { LogFormat } from './log.ts'
import { isPathLike, resolveModule } from './modules.ts'

/** The version of @tq/core (this file sits two levels under the package root, in src/ and in dist/). */
export function cliVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown
    }
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0'
  } catch {
    return '0.0.0'
  }
}

const SIGNAL_HELP = `Signals:
  SIGTERM, SIGINT  stop gracefully: running messages finish (up to --worker-shutdown-timeout),
                   received ones go back to the broker; a second signal exits at once (code 1);
                   under npx/npm run, tq also stops when the process that started it exits
  SIGHUP           restart every worker process gracefully (reload the code)
  SIGUSR1          every worker process logs a stats line (processed, failed, retried, in flight)`

interface WorkerOptionsParsed {
  processes: number
  concurrency: number
  queues?: string[]
  path?: string[]
  watch?: string
  workerShutdownTimeout: number
  workerTimeout: number
  logFormat: LogFormat
  verbose?: boolean
  metricsPort?: number
  metricsHost: string
  statsInterval: number
  scheduler?: boolean
}

export interface ProgramIo {
  writeOut: (text: string) => void
  writeErr: (text: string) => void
  /** Runs `tq worker` once the arguments are valid; resolves with the exit code. */
  runWorker: (config: WorkerCommandConfig) => Promise<number>
  /** Base for relative `--path` and `--watch` directories (default `process.cwd()`). */
  cwd?: string
  /** Where the admin commands read `TQ_BROKER_URL` and `TQ_TRACKING_URL` (default `process.env`). */
  env?: NodeJS.ProcessEnv
}

/** Build the `tq` commander program. Parse errors throw `CommanderError` (exitOverride). */
export function buildProgram(io: ProgramIo, result: { code: number }): Command {
  const cwd = io.cwd ?? process.cwd()
  const program = new Command('tq')
    .description('tq: background tasks for TypeScript, the Dramatiq way.')
    .version(cliVersion(), '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .configureOutput({ writeOut: io.writeOut, writeErr: io.writeErr })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\n${EXIT_CODE_HELP}\n`)

  program
    .command('worker')
    .description('Run worker processes that consume messages and run actors.')
    .argument(
      '<modules...>',
      'modules to import: files (./tasks.ts, dist/app.js, tasks) or package names; they declare actors and set the broker',
    )
    .addOption(
      new Option('-p, --processes <n>', 'worker processes to run')
        .argParser(integer(1, '--processes'))
        .default(availableParallelism(), 'the number of CPUs'),
    )
    .addOption(
      new Option('-c, --concurrency <n>', 'messages each process runs at once')
        .argParser(integer(1, '--concurrency'))
        .default(8),
    )
    .addOption(new Option('-Q, --queues <names...>', 'consume only these queues (default: every declared queue)'))
    .addOption(
      new Option(
        '-P, --path <dirs...>',
        'directories to look up modules in, in order (default: the current directory)',
      ),
    )
    .addOption(
      new Option('--watch <dir>', 'restart the worker processes when a source file under <dir> changes (development)'),
    )
    .addOption(
      new Option('--worker-shutdown-timeout <ms>', 'how long running messages may take to finish on shutdown')
        .argParser(integer(0, '--worker-shutdown-timeout'))
        .default(600_000),
    )
    .addOption(
      new Option('--worker-timeout <ms>', 'how long a consumer waits for a message before checking for shutdown')
        .argParser(integer(1, '--worker-timeout'))
        .default(1000),
    )
    .addOption(
      new Option('--log-format <format>', 'log line format')
        .choices([LogFormat.PRETTY, LogFormat.JSON])
        .default(LogFormat.PRETTY),
    )
    .addOption(new Option('-v, --verbose', 'also log debug entries'))
    .addOption(
      new Option(
        '--metrics-port <port>',
        "serve every worker process's Prometheus metrics, merged, at http://<host>:<port>/metrics (needs @tq/prometheus; 0 picks a free port)",
      ).argParser(port('--metrics-port')),
    )
    .addOption(new Option('--metrics-host <host>', 'interface of the metrics endpoint').default('127.0.0.1'))
    .addOption(
      new Option(
        '--scheduler',
        'also run the Schedulers the modules make, in every worker process (they elect one leader)',
      ),
    )
    .addOption(
      new Option('--stats-interval <ms>', 'log a stats line from each worker process every <ms>')
        .argParser(integer(0, '--stats-interval'))
        .default(0, 'off'),
    )
    .addHelpText(
      'after',
      `\n${SIGNAL_HELP}\n\n${EXIT_CODE_HELP}\n\nOptions that take several values (--queues, --path) stop at the next option; put modules first or end the list with --.\n`,
    )
    .action(async (modules: string[], opts: WorkerOptionsParsed, command: Command) => {
      const fail = (message: string): never =>
        command.error(`error: ${message}`, { exitCode: ExitCode.USAGE, code: 'tq.invalidArgument' })
      for (const queue of opts.queues ?? []) {
        try {
          validateQueueName(queue)
        } catch (error) {
          fail(errorMessage(error))
        }
      }
      const paths = (opts.path ?? [cwd]).map((p) => resolve(cwd, p))
      for (const dir of paths) if (!isDirectory(dir)) fail(`--path ${dir} is not a directory`)
      const watch = opts.watch === undefined ? undefined : resolve(cwd, opts.watch)
      if (watch !== undefined && !isDirectory(watch)) fail(`--watch ${watch} is not a directory`)
      // Files are checked here; package names are resolved by the worker processes (which resolve as ESM).
      for (const spec of modules) {
        if (!isPathLike(spec)) continue
        try {
          resolveModule(spec, paths)
        } catch (error) {
          fail(errorMessage(error))
        }
      }
      result.code = await io.runWorker({
        modules,
        processes: opts.processes,
        concurrency: opts.concurrency,
        queues: opts.queues,
        paths,
        watch,
        workerShutdownTimeout: opts.workerShutdownTimeout,
        workerTimeout: opts.workerTimeout,
        logFormat: opts.logFormat,
        verbose: opts.verbose === true,
        metricsPort: opts.metricsPort,
        metricsHost: opts.metricsHost,
        statsInterval: opts.statsInterval,
        scheduler: opts.scheduler === true,
      })
    })
  addAdminCommands(program, io, result)
  addScheduleCommands(program, io, result)
  addPostgresCommands(program, io, result)
  return program
}

/** Parse `argv` (without `node` and the script) and run the command; resolves with the exit code. */
export async function parseAndRun(argv: readonly string[], io: ProgramIo): Promise<number> {
  const result = { code: ExitCode.OK as number }
  const program = buildProgram(io, result)
  try {
    await program.parseAsync([...argv], { from: 'user' })
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE
    throw error
  }
  return result.code
}
