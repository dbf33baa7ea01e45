import type { EventEmitter } from 'node:events'
import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { type Command, InvalidArgumentError as ArgumentError, Option } from 'commander'
import { Admin } from '../admin/admin.ts'
import type { Broker } from '../broker.ts'
import { BrokerConnectionError, ConfigurationError, TqError, errorMessage, errorTypeName } from '../errors.ts'
import { createBroker, getBroker } from '../global.ts'
import { processState } from '../internal/process-state.ts'
import { validateQueueName } from '../queue-names.ts'
import { redactUrl } from '../redact.ts'
import {
  MAX_PAGE_SIZE,
  MESSAGE_STATES,
  type MessageState,
  type TrackedMessage,
  type TrackingBackend,
  type TrackingQuery,
} from '../tracking/backend.ts'
import { Tracking } from '../tracking/middleware.ts'
import { ExitCode } from './exit-codes.ts'
import { resolveModule, resolvePackage } from './modules.ts'
import {
  formatAge,
  formatJsonDocument,
  formatKeyValues,
  formatTable,
  formatTime,
  inlineJson,
  type Column,
} from './table.ts'

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

const MODULES_HELP =
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
interface CommonOptions {
  path?: string[]
  json?: boolean
  tracking?: string
  trackingPrefix?: string
  timeout: number
}

/** What an admin command's body works with. */
interface AdminContext {
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
type AdminAction = (ctx: AdminContext) => Promise<number | void>

/** `--timeout` ran out. */
class TimeoutError extends Error {}

function integer(min: number, max: number, what: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new ArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `${what} must be an integer >= ${min}.`
          : `${what} must be an integer from ${min} to ${max}.`,
      )
    }
    return n
  }
}

function messageState(value: string): MessageState {
  if (!(MESSAGE_STATES as readonly string[]).includes(value)) {
    throw new ArgumentError(`--state must be one of ${MESSAGE_STATES.join(', ')}.`)
  }
  return value as MessageState
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

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
async function importFromProject(pkg: string, name: string, dirs: readonly string[], why: string): Promise<unknown> {
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
function withCommonOptions(command: Command): Command {
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
        .argParser(integer(1, Number.MAX_SAFE_INTEGER, '--timeout'))
        .default(DEFAULT_TIMEOUT),
    )
}

/**
 * Import the modules, find the broker (theirs, or one from `TQ_BROKER_URL`), open tracking,
 * connect (bounded by `--timeout`), run the command's body (bounded too), then flush tracking
 * and close the broker and the tracking backend. Sets `result.code`.
 */
async function runAdmin(
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
function checkQueueName(command: Command, queue: string): void {
  try {
    validateQueueName(queue)
  } catch (error) {
    command.error(`error: ${errorMessage(error)}`, { exitCode: ExitCode.USAGE, code: 'tq.invalidArgument' })
  }
}

/** Without modules nothing declares the queue a command names: declare it on the broker. */
function declare(ctx: AdminContext, queue: string): void {
  if (!ctx.fromModules && !ctx.broker.getDeclaredQueues().has(queue)) ctx.broker.declareQueue(queue)
}

const QUEUE_COLUMNS: Column[] = [
  { header: 'NAME' },
  { header: 'READY', align: 'right' },
  { header: 'DELAYED', align: 'right' },
  { header: 'RUNNING', align: 'right' },
  { header: 'DEAD', align: 'right' },
]

const MESSAGE_COLUMNS: Column[] = [
  { header: 'ID' },
  { header: 'STATE' },
  { header: 'ACTOR' },
  { header: 'QUEUE' },
  { header: 'ENQUEUED' },
  { header: 'ATTEMPTS', align: 'right' },
]

const WORKER_COLUMNS: Column[] = [
  { header: 'ID' },
  { header: 'HOST' },
  { header: 'PID', align: 'right' },
  { header: 'QUEUES' },
  { header: 'IN-FLIGHT', align: 'right' },
  { header: 'PROCESSED', align: 'right' },
  { header: 'FAILED', align: 'right' },
  { header: 'LAST-SEEN' },
]

/** A tracked message as `key: value` lines. */
export function formatMessageRecord(record: TrackedMessage): string {
  const entries: [string, string][] = [
    ['id', record.messageId],
    ['state', record.state],
    ['actor', record.actorName],
    ['queue', record.queueName],
    ['enqueued', formatTime(record.enqueuedAt)],
    ['updated', formatTime(record.updatedAt)],
    ['eta', formatTime(record.eta)],
    ['worker', record.workerId ?? '-'],
    ['progress', inlineJson(record.progress)],
  ]
  if (record.argsTruncated) {
    entries.push(['args', '(not kept: the message was over maxArgsBytes)'], ['kwargs', '(not kept)'])
  } else {
    entries.push(['args', inlineJson(record.args)], ['kwargs', inlineJson(record.kwargs)])
  }
  entries.push(['options', inlineJson(record.options)])
  entries.push(['attempts', String(record.attempts.length)])
  for (const attempt of record.attempts) {
    const outcome = attempt.error
      ? `${attempt.error.type}: ${attempt.error.message}`
      : attempt.finishedAt === undefined
        ? 'running'
        : 'ok'
    const times = `${formatTime(attempt.startedAt)} → ${formatTime(attempt.finishedAt)}`
    entries.push([`attempt ${attempt.number}`, `${outcome}\n${times} on ${attempt.workerId}`])
  }
  return formatKeyValues(entries)
}

/** Add `tq queues`, `tq messages`, `tq message`, `tq retry`, `tq redrive`, `tq cancel`, `tq purge` and `tq workers`. */
export function addAdminCommands(program: Command, io: AdminCommandIo, result: { code: number }): void {
  const run = (command: Command, modules: readonly string[], opts: CommonOptions, action: AdminAction) =>
    runAdmin(io, result, command, modules, opts, action)

  withCommonOptions(
    program
      .command('queues')
      .summary('List the queues and their counts.')
      .description('List the declared queues with their counts: ready, delayed, running and dead.')
      .argument('[modules...]', MODULES_HELP)
      .addOption(new Option('-Q, --queues <names...>', 'only these queues (without modules, the queues to count)')),
  ).action(async (modules: string[], opts: CommonOptions & { queues?: string[] }, command: Command) => {
    for (const queue of opts.queues ?? []) checkQueueName(command, queue)
    await run(command, modules, opts, async (ctx) => {
      const only = opts.queues
      for (const queue of only ?? []) if (!ctx.broker.getDeclaredQueues().has(queue)) ctx.broker.declareQueue(queue)
      const queues = (await ctx.admin.queues()).filter((q) => !only || only.includes(q.name))
      if (ctx.json) return ctx.out(formatJsonDocument(queues))
      if (queues.length === 0) {
        return ctx.out(
          'No queues are declared: give the modules that declare the actors, or name the queues with -Q.\n',
        )
      }
      const rows = queues.map((q) => [
        q.name,
        String(q.ready),
        String(q.delayed),
        q.running === undefined ? '-' : String(q.running),
        String(q.dead),
      ])
      ctx.out(formatTable(QUEUE_COLUMNS, rows))
    })
  })

  withCommonOptions(
    program
      .command('messages')
      .summary('List tracked messages.')
      .description('List tracked messages, newest first, filtered (needs the Tracking middleware or --tracking).')
      .argument('[modules...]', MODULES_HELP)
      .addOption(new Option('--queue <name>', 'only messages of this queue'))
      .addOption(
        new Option('--state <state>', `only messages in this state: ${MESSAGE_STATES.join(', ')}`).argParser(
          messageState,
        ),
      )
      .addOption(new Option('--actor <name>', 'only messages of this actor'))
      .addOption(new Option('--search <text>', 'only messages whose id, actor name or arguments contain <text>'))
      .addOption(
        new Option('--limit <n>', `most messages on the page (1 to ${MAX_PAGE_SIZE}, default 50)`).argParser(
          integer(1, MAX_PAGE_SIZE, '--limit'),
        ),
      )
      .addOption(new Option('--cursor <cursor>', 'where the previous page stopped (printed under it)')),
  ).action(
    async (
      modules: string[],
      opts: CommonOptions & {
        queue?: string
        state?: MessageState
        actor?: string
        search?: string
        limit?: number
        cursor?: string
      },
      command: Command,
    ) => {
      const query: TrackingQuery = {}
      if (opts.queue !== undefined) query.queue = opts.queue
      if (opts.state !== undefined) query.state = opts.state
      if (opts.actor !== undefined) query.actor = opts.actor
      if (opts.search !== undefined) query.search = opts.search
      if (opts.limit !== undefined) query.limit = opts.limit
      if (opts.cursor !== undefined) query.cursor = opts.cursor
      await run(command, modules, opts, async (ctx) => {
        const page = await ctx.admin.messages(query)
        if (ctx.json) return ctx.out(formatJsonDocument(page))
        if (page.items.length === 0) ctx.out('No tracked messages match.\n')
        else {
          const rows = page.items.map((m) => [
            m.messageId,
            m.state,
            m.actorName,
            m.queueName,
            formatTime(m.enqueuedAt),
            String(m.attempts.length),
          ])
          ctx.out(formatTable(MESSAGE_COLUMNS, rows))
        }
        if (page.cursor !== undefined) ctx.out(`More may follow: run the same command with --cursor ${page.cursor}\n`)
      })
    },
  )

  withCommonOptions(
    program
      .command('message')
      .summary('Show one tracked message.')
      .description('Show what tracking knows about one message: state, arguments, options, attempts.')
      .argument('<id>', 'the message id')
      .argument('[modules...]', MODULES_HELP),
  ).action(async (id: string, modules: string[], opts: CommonOptions, command: Command) => {
    await run(command, modules, opts, async (ctx) => {
      const record = await ctx.admin.message(id)
      if (!record) {
        ctx.err(`error: Message ${id} is not known to tracking (never tracked, or its record expired)\n`)
        return ExitCode.FAILED
      }
      ctx.out(ctx.json ? formatJsonDocument(record) : formatMessageRecord(record))
      return ExitCode.OK
    })
  })

  withCommonOptions(
    program
      .command('retry')
      .summary('Send a finished message again.')
      .description(
        'Send a finished message (failed, dead, cancelled, skipped, succeeded) again, from its tracked copy.',
      )
      .argument('<id>', 'the message id')
      .argument('[modules...]', MODULES_HELP),
  ).action(async (id: string, modules: string[], opts: CommonOptions, command: Command) => {
    await run(command, modules, opts, async (ctx) => {
      const message = await ctx.admin.retry(id)
      if (ctx.json) return ctx.out(formatJsonDocument(message.asDict()))
      ctx.out(`Re-sent message ${message.messageId} to queue ${message.queueName}\n`)
    })
  })

  withCommonOptions(
    program
      .command('redrive')
      .summary("Send a queue's dead letters back to it.")
      .description("Send a queue's dead letters back to it (due now, retry count reset).")
      .argument('<queue>', 'the queue')
      .argument('[modules...]', MODULES_HELP)
      .addOption(
        new Option('--limit <n>', 'at most this many (default: all)').argParser(
          integer(1, Number.MAX_SAFE_INTEGER, '--limit'),
        ),
      ),
  ).action(async (queue: string, modules: string[], opts: CommonOptions & { limit?: number }, command: Command) => {
    checkQueueName(command, queue)
    await run(command, modules, opts, async (ctx) => {
      declare(ctx, queue)
      const moved = await ctx.admin.redrive(queue, opts.limit === undefined ? {} : { limit: opts.limit })
      if (ctx.json) return ctx.out(formatJsonDocument({ queue, redriven: moved }))
      ctx.out(`Sent ${moved} dead letter${moved === 1 ? '' : 's'} of ${queue} back to the queue\n`)
    })
  })

  withCommonOptions(
    program
      .command('cancel')
      .summary('Cancel a message.')
      .description('Cancel a message: a waiting one is skipped when delivered, a running one is aborted.')
      .argument('<id>', 'the message id')
      .argument('[modules...]', MODULES_HELP),
  ).action(async (id: string, modules: string[], opts: CommonOptions, command: Command) => {
    await run(command, modules, opts, async (ctx) => {
      const outcome = await ctx.admin.cancel(id)
      if (ctx.json) return ctx.out(formatJsonDocument(outcome))
      ctx.out(
        outcome.cancelled
          ? `Message ${outcome.messageId}: cancelled (was ${outcome.state})\n`
          : `Message ${outcome.messageId}: not cancelled: already ${outcome.state}\n`,
      )
    })
  })

  withCommonOptions(
    program
      .command('purge')
      .summary('Drop the waiting messages of a queue (--yes).')
      .description('Drop every message waiting in a queue and its delay queue. Needs --yes.')
      .argument('<queue>', 'the queue')
      .argument('[modules...]', MODULES_HELP)
      .addOption(new Option('--yes', 'really purge: the messages cannot be got back')),
  ).action(async (queue: string, modules: string[], opts: CommonOptions & { yes?: boolean }, command: Command) => {
    checkQueueName(command, queue)
    if (opts.yes !== true) {
      io.writeErr(
        `error: refusing to purge ${queue} without --yes: purging drops every message waiting in it ` +
          '(and in its delay queue) for good. Run again with --yes to purge it.\n',
      )
      result.code = ExitCode.USAGE
      return
    }
    await run(command, modules, opts, async (ctx) => {
      declare(ctx, queue)
      await ctx.admin.purge(queue)
      if (ctx.json) return ctx.out(formatJsonDocument({ queue, purged: true }))
      ctx.out(`Purged ${queue}: its waiting and delayed messages are gone\n`)
    })
  })

  withCommonOptions(
    program
      .command('dashboard')
      .summary('Serve the web dashboard (@tq/dashboard).')
      .description(
        'Serve the web dashboard of @tq/dashboard (install it in your project) until SIGINT or SIGTERM. ' +
          'It listens on 127.0.0.1 unless --host says otherwise: put authentication in front of it before exposing it.',
      )
      .argument('[modules...]', MODULES_HELP)
      .addOption(
        new Option('--port <n>', 'TCP port (0: any free one)').argParser(integer(0, 65535, '--port')).default(8080),
      )
      .addOption(new Option('--host <host>', 'interface to listen on').default('127.0.0.1'))
      .addOption(new Option('--read-only', 'show everything, offer and accept no action'))
      .addOption(new Option('--base-path <path>', 'the path the dashboard is served under').default('/')),
  ).action(
    async (
      modules: string[],
      opts: CommonOptions & { port: number; host: string; readOnly?: boolean; basePath: string },
      command: Command,
    ) => {
      await runAdmin(
        io,
        result,
        command,
        modules,
        opts,
        async (ctx) => {
          const serve = (await importFromProject(
            '@tq/dashboard',
            'serveDashboard',
            ctx.dirs,
            'tq dashboard',
          )) as (options: {
            admin: Admin
            port: number
            host: string
            readOnly: boolean
            basePath: string
          }) => Promise<{ url: string; close(): Promise<void> }>
          const server = await serve({
            admin: ctx.admin,
            port: opts.port,
            host: opts.host,
            readOnly: opts.readOnly === true,
            basePath: opts.basePath,
          })
          ctx.out(
            ctx.json ? `${JSON.stringify({ url: server.url })}\n` : `Dashboard on ${server.url} (stop with Ctrl-C)\n`,
          )
          await new Promise<void>((resolve) => {
            process.once('SIGINT', resolve)
            process.once('SIGTERM', resolve)
          })
          await server.close()
        },
        true,
      )
    },
  )

  withCommonOptions(
    program
      .command('workers')
      .summary('List the workers sending heartbeats.')
      .description('List the workers sending heartbeats (workers whose broker has the Tracking middleware).')
      .argument('[modules...]', MODULES_HELP),
  ).action(async (modules: string[], opts: CommonOptions, command: Command) => {
    await run(command, modules, opts, async (ctx) => {
      const workers = await ctx.admin.workers()
      if (ctx.json) return ctx.out(formatJsonDocument(workers))
      if (workers.length === 0) {
        return ctx.out(
          'No workers are sending heartbeats (a worker sends them when its broker has the Tracking middleware).\n',
        )
      }
      const now = Date.now()
      const rows = workers.map((w) => [
        w.id,
        w.host,
        String(w.pid),
        w.queues.join(',') || '-',
        String(w.inFlight),
        String(w.processed),
        String(w.failed),
        formatAge(w.lastSeen, now),
      ])
      ctx.out(formatTable(WORKER_COLUMNS, rows))
    })
  })
}
