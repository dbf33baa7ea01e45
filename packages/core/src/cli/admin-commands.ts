import { type Command, InvalidArgumentError as ArgumentError, Option } from 'commander'
import type { Admin } from '../admin/admin.ts'
import {
  MAX_PAGE_SIZE,
  MESSAGE_STATES,
  type MessageState,
  type TrackedMessage,
  type TrackingQuery,
} from '../tracking/backend.ts'
import { integer, port } from './args.ts'
import { ExitCode } from './exit-codes.ts'
import {
  formatAge,
  formatJsonDocument,
  formatKeyValues,
  formatTable,
  formatTime,
  inlineJson,
  type Column,
} from './table.ts'

import {
  type AdminAction,
  type AdminCommandIo,
  type CommonOptions,
  MODULES_HELP,
  checkQueueName,
  declare,
  importFromProject,
  runAdmin,
  withCommonOptions,
} from './admin-runner.ts'

export type { AdminCommandIo } from './admin-runner.ts'

function messageState(value: string): MessageState {
  if (!(MESSAGE_STATES as readonly string[]).includes(value)) {
    throw new ArgumentError(`--state must be one of ${MESSAGE_STATES.join(', ')}.`)
  }
  return value as MessageState
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
          integer(1, '--limit', MAX_PAGE_SIZE),
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
      .addOption(new Option('--limit <n>', 'at most this many (default: all)').argParser(integer(1, '--limit'))),
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
      .addOption(new Option('--port <n>', 'TCP port (0: any free one)').argParser(port('--port')).default(8080))
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
