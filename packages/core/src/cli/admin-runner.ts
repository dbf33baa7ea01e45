import type { EventEmitter } from 'node:events'
import { resolve } from 'node:path'
import { type Command, Option } from 'commander'
import { Admin } from '../admin/admin.ts'
import type { Broker } from '../broker.ts'
import { BrokerConnectionError, ConfigurationError, TqError, errorMessage, errorTypeName } from '../errors.ts'
import { createBroker, getBroker } from '../global.ts'
import { processState } from '../internal/process-state.ts'
import { validateQueueName } from '../queue-names.ts'
import { redactUrl } from '../redact.ts'
import type { TrackingBackend } from '../tracking/backend.ts'
import { Tracking } from '../tracking/middleware.ts'
import { integer, isDirectory } from './args.ts'
import { ExitCode } from './exit-codes.ts'
import { resolveModule, resolvePackage } from './modules.ts'

// The plumbing every admin command shares: modules, broker, tracking, timeouts, closing.

/** What the admin commands need from the program: output, the base directory, the environment. */
export interface AdminCommandIo {
  writeOut: (text: string) => void
  writeErr: (text: string) => void
  /** Base for relative `--path` directories and where `@tq/redis` is looked up (default `process.cwd()`). */
  cwd?: string
  /** Where `TQ_BROKER_URL`, `TQ_TRACKING_URL` and `TQ_TRACKING_PREFIX` are read (default `process.env`). */
  env?: NodeJS.ProcessEnv
}

/** How long closing the broker and the tracking backend may take before `tq` gives up on it. */
const CLOSE_TIMEOUT = 5000

/** The default of `--timeout`. */
const DEFAULT_TIMEOUT = 10_000

export const MODULES_HELP =
  'modules that set the broker (and its Tracking middleware), as for tq worker; optional when TQ_BROKER_URL is set'

const ADMIN_HELP = `Environment:
  TQ_BROKER_URL       the broker, when no module sets one (amqp://, redis://, sqs://, stub://)
  TQ_TRACKING_URL     a redis:// URL of the tracking records (as --tracking)
  TQ_TRACKING_PREFIX  their key prefix (as --tracking-prefix)

Exit codes:
  0  done
  1  it failed: the broker or tracking unreachable, an unknown message, no tracking
  2  bad arguments, or a module failed to import`

/** The options every admin command takes. */
export interface CommonOptions {
  path?: string[]
  json?: boolean
  tracking?: string
  trackingPrefix?: string
  timeout: number
}

/** What an admin command's body works with. */
export interface AdminContext {
  admin: Admin
  broker: Broker
  /** False when no module was given: the broker declares no queue, the command declares the ones it names. */
  fromModules: boolean
  json: boolean
  out: (text: string) => void
  err: (text: string) => void
  /** Where packages of the user's project are looked up (the current directory, then `--path`). */
  dirs: readonly string[]
}

/** A command's body: resolves with the exit code (default 0). */
export type AdminAction = (ctx: AdminContext) => Promise<number | void>

/** `--timeout` ran out. */
class TimeoutError extends Error {}

/** `promise`, or a `TimeoutError` with `message()` after `ms`. A later rejection of `promise` is ignored. */
async function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  promise.catch(() => undefined)
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(message())), ms)
    timer.unref()
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** What Node says when it cannot load a TypeScript module: it needs a loader or a build. */
function loaderHint(error: unknown, command: string): string {
  if ((error as { code?: unknown } | null)?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') return ''
  return ` (Node runs TypeScript only through a loader: NODE_OPTIONS='--import tsx' npx tq ${command} …, or give tq the compiled .js files)`
}

/** The broker for messages: its class and its URL (redacted), if it has one. */
function brokerLabel(broker: Broker, envUrl: string | undefined): string {
  const described = broker.describe()['url']
  const url = envUrl ?? (typeof described === 'string' ? described : undefined)
  return url === undefined
    ? `the broker (${broker.constructor.name})`
    : `the broker at ${redactUrl(url)} (${broker.constructor.name})`
}

type RedisTrackingBackendClass = new (options: { url: string; prefix?: string }) => TrackingBackend

/**
 * Keep the last error a backend's client reports as an event while its commands wait (a Redis
 * client reconnecting), for a timeout's message; unheard, ioredis prints each to the console.
 * ioredis mixes EventEmitter in (no `instanceof`): a `client` with `on` is taken as an emitter.
 */
function lastClientError(backend: TrackingBackend | undefined): () => unknown {
  let lastError: unknown
  const client = (backend as { client?: { on?: unknown } } | undefined)?.client
  if (typeof client?.on === 'function') {
    ;(client as Pick<EventEmitter, 'on'>).on('error', (error: unknown) => (lastError = error))
  }
  return () => lastError
}

/**
 * An export of a package of the user's project (looked up from `dirs`, the current directory
 * first), which @tq/core does not depend on: `@tq/redis`, `@tq/dashboard`. `why` says what
 * needs it, for the error when it is not installed.
 */
export async function importFromProject(
  pkg: string,
  name: string,
  dirs: readonly string[],
  why: string,
): Promise<unknown> {
  let resolved: string | undefined
  for (const dir of dirs) {
    resolved = resolvePackage(dir, pkg)
    if (resolved) break
  }
  if (!resolved) {
    throw new ConfigurationError(
      `${why} needs ${pkg}, and it is not installed (looked from ${dirs.join(', ')}): install it (npm install ${pkg})`,
    )
  }
  let mod: Record<string, unknown>
  try {
    mod = (await import(resolved)) as Record<string, unknown>
  } catch (error) {
    throw new ConfigurationError(
      `${pkg} is installed (${resolved}) but could not be loaded: ${errorMessage(error)}. Install ${pkg} in your project (npm install ${pkg}).`,
      { cause: error },
    )
  }
  if (typeof mod[name] !== 'function') {
    throw new ConfigurationError(
      `The installed ${pkg} has no ${name}: install a version that matches @tq/core (npm install ${pkg})`,
    )
  }
  return mod[name]
}

/** A `RedisTrackingBackend` for a `redis://` tracking URL, from the `@tq/redis` of the user's project. */
async function openRedisTracking(
  url: string,
  prefix: string | undefined,
  dirs: readonly string[],
  source: string,
): Promise<TrackingBackend> {
  const Backend = (await importFromProject(
    '@tq/redis',
    'RedisTrackingBackend',
    dirs,
    `${source} ${redactUrl(url)}`,
  )) as RedisTrackingBackendClass
  return new Backend(prefix === undefined ? { url } : { url, prefix })
}

/** The options every admin command has. */
export function withCommonOptions(command: Command): Command {
  return command
    .addHelpText('after', `\n${ADMIN_HELP}\n`)
    .addOption(
      new Option(
        '-P, --path <dirs...>',
        'directories to look up modules in, in order (default: the current directory)',
      ),
    )
    .addOption(new Option('--json', 'print the result as JSON instead of a table'))
    .addOption(
      new Option(
        '--tracking <url>',
        "a redis:// URL to read tracking records from with @tq/redis's RedisTrackingBackend (default: TQ_TRACKING_URL; else the broker's Tracking middleware)",
      ),
    )
    .addOption(
      new Option(
        '--tracking-prefix <prefix>',
        'the key prefix of those records (default: TQ_TRACKING_PREFIX, else tq-tracking)',
      ),
    )
    .addOption(
      new Option('--timeout <ms>', 'give up when the broker or tracking does not answer within <ms>')
        .argParser(integer(1, '--timeout'))
        .default(DEFAULT_TIMEOUT),
    )
}

/**
 * Import the modules, find the broker (theirs, or one from `TQ_BROKER_URL`), open tracking,
 * connect (bounded by `--timeout`), run the command's body (bounded too), then flush tracking
 * and close the broker and the tracking backend. Sets `result.code`.
 */
export async function runAdmin(
  io: AdminCommandIo,
  result: { code: number },
  command: Command,
  modules: readonly string[],
  opts: CommonOptions,
  action: AdminAction,
  /** A command that runs until it is stopped (`tq dashboard`): its body has no timeout. */
  unbounded = false,
): Promise<void> {
  const cwd = io.cwd ?? process.cwd()
  const env = io.env ?? process.env
  const name = command.name()
  const usage = (message: string): never =>
    command.error(`error: ${message}`, { exitCode: ExitCode.USAGE, code: 'tq.invalidArgument' })
  const fail = (message: string, code: number = ExitCode.FAILED): void => {
    io.writeErr(`error: ${message}\n`)
    result.code = code
  }

  const paths = (opts.path ?? [cwd]).map((p) => resolve(cwd, p))
  for (const dir of paths) if (!isDirectory(dir)) usage(`--path ${dir} is not a directory`)
  const urls = new Map<string, string>()
  for (const spec of modules) {
    try {
      urls.set(spec, resolveModule(spec, paths).url)
    } catch (error) {
      usage(errorMessage(error))
    }
  }
  const envUrl = env['TQ_BROKER_URL'] || undefined
  if (modules.length === 0 && envUrl === undefined) {
    usage(`give the modules that set the broker (tq ${name} <modules…>), or set TQ_BROKER_URL`)
  }
  const trackingSource = opts.tracking !== undefined ? '--tracking' : 'TQ_TRACKING_URL'
  const trackingUrl = opts.tracking ?? (env['TQ_TRACKING_URL'] || undefined)
  if (trackingUrl !== undefined && !/^rediss?:\/\//i.test(trackingUrl)) {
    usage(`${trackingSource} ${redactUrl(trackingUrl)}: only redis:// and rediss:// tracking URLs are supported`)
  }
  const trackingPrefix = opts.trackingPrefix ?? (env['TQ_TRACKING_PREFIX'] || undefined)

  for (const spec of modules) {
    try {
      await import(urls.get(spec) ?? spec)
    } catch (error) {
      fail(`failed to import ${spec}: ${errorMessage(error)}${loaderHint(error, name)}`, ExitCode.USAGE)
      return
    }
  }

  let broker: Broker
  // A broker the modules set (or made through getBroker()) comes first; else one for TQ_BROKER_URL.
  const set = modules.length > 0 ? processState().broker : undefined
  const ownUrl = set === undefined ? envUrl : undefined
  try {
    broker = set ?? (ownUrl !== undefined ? createBroker(ownUrl) : getBroker())
  } catch (error) {
    fail(`could not create the broker: ${errorMessage(error)}`, ExitCode.USAGE)
    return
  }
  const where = brokerLabel(broker, ownUrl)

  let opened: TrackingBackend | undefined
  try {
    if (trackingUrl !== undefined) {
      opened = await openRedisTracking(
        trackingUrl,
        trackingPrefix,
        [cwd, ...paths.filter((p) => p !== cwd)],
        trackingSource,
      )
    }
  } catch (error) {
    fail(errorMessage(error))
    await closeAll(broker, undefined, io)
    return
  }
  const admin = new Admin(opened ? { broker, tracking: opened } : { broker })
  const trackingError = lastClientError(admin.tracking)
  const trackingWhere = (): string => {
    if (!admin.tracking) return ''
    const last = trackingError()
    const which =
      opened && trackingUrl !== undefined ? `the tracking backend at ${redactUrl(trackingUrl)}` : 'its tracking backend'
    return ` or ${which}${last === undefined ? '' : ` (${errorMessage(last)})`}`
  }
  const ctx: AdminContext = {
    admin,
    broker,
    fromModules: modules.length > 0,
    json: opts.json === true,
    out: (text) => void io.writeOut(text),
    err: (text) => void io.writeErr(text),
    dirs: [cwd, ...paths.filter((p) => p !== cwd)],
  }

  try {
    try {
      await withTimeout(broker.connect(), opts.timeout, () => `${where} did not answer within ${opts.timeout} ms`)
    } catch (error) {
      if (error instanceof TimeoutError) fail(`cannot reach ${error.message}`)
      else if (error instanceof BrokerConnectionError) fail(`cannot reach ${where}: ${errorMessage(error)}`)
      else fail(`cannot connect to ${where}: ${errorMessage(error)}`)
      return
    }
    try {
      const code = unbounded
        ? await action(ctx)
        : await withTimeout(
            action(ctx),
            opts.timeout,
            () => `no answer within ${opts.timeout} ms from ${where}${trackingWhere()}`,
          )
      result.code = typeof code === 'number' ? code : ExitCode.OK
    } catch (error) {
      if (error instanceof TimeoutError || TqError.is(error)) fail(error.message)
      else fail(`${errorTypeName(error)}: ${errorMessage(error)}`)
    }
  } finally {
    await closeAll(broker, admin.tracking, io)
  }
}

/**
 * Write what the broker's Tracking middleware still holds (a retry records its enqueue), then
 * close the broker and every tracking backend involved, bounded by `CLOSE_TIMEOUT`.
 */
async function closeAll(broker: Broker, tracking: TrackingBackend | undefined, io: AdminCommandIo): Promise<void> {
  const backends = new Set<TrackingBackend>()
  if (tracking) backends.add(tracking)
  const middleware = broker.middleware.filter((m): m is Tracking => m instanceof Tracking)
  for (const m of middleware) backends.add(m.backend)
  const close = async (): Promise<void> => {
    for (const m of middleware) await m.flush()
    await broker.close()
    for (const backend of backends) await backend.close?.()
  }
  try {
    await withTimeout(close(), CLOSE_TIMEOUT, () => `closing the broker took over ${CLOSE_TIMEOUT} ms; exiting anyway`)
  } catch (error) {
    io.writeErr(
      `warning: ${error instanceof TimeoutError ? error.message : `could not close the broker: ${errorMessage(error)}`}\n`,
    )
  }
}

/** Check a queue name given on the command line (a usage error if it is not one). */
export function checkQueueName(command: Command, queue: string): void {
  try {
    validateQueueName(queue)
  } catch (error) {
    command.error(`error: ${errorMessage(error)}`, { exitCode: ExitCode.USAGE, code: 'tq.invalidArgument' })
  }
}

/** Without modules nothing declares the queue a command names: declare it on the broker. */
export function declare(ctx: AdminContext, queue: string): void {
  if (!ctx.fromModules && !ctx.broker.getDeclaredQueues().has(queue)) ctx.broker.declareQueue(queue)
}
