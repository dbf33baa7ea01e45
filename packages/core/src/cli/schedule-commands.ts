import { type Command, Option } from 'commander'
import { errorMessage } from '../errors.ts'
import type { ScheduleInfo } from '../scheduler/scheduler.ts'
import { type AdminCommandIo, type CommonOptions, runAdmin, withCommonOptions } from './admin-runner.ts'
import { ExitCode } from './exit-codes.ts'
import { LogFormat, createCliLogger } from './log.ts'
import { formatJsonDocument, formatTable, formatTime, type Column } from './table.ts'

const SCHEDULE_MODULES_HELP =
  'modules that set the broker and make its schedulers (new Scheduler({ broker, backend }) with add(…)), as for tq worker'

const SCHEDULE_COLUMNS: Column[] = [
  { header: 'ID' },
  { header: 'ACTOR' },
  { header: 'QUEUE' },
  { header: 'WHEN' },
  { header: 'NEXT' },
  { header: 'LAST' },
]

/** `cron '0 6 * * MON' America/New_York`, `every 5000 ms`. */
function when(schedule: ScheduleInfo): string {
  if (schedule.cron !== undefined) return `cron '${schedule.cron}'${schedule.tz === 'UTC' ? '' : ` ${schedule.tz}`}`
  return `every ${schedule.every ?? '?'} ms`
}

const NO_SCHEDULERS =
  'the modules made no Scheduler for the broker (new Scheduler({ broker, backend }), then scheduler.add(…))'

/** `tq schedules` and `tq scheduler`. */
export function addScheduleCommands(program: Command, io: AdminCommandIo, result: { code: number }): void {
  withCommonOptions(
    program
      .command('schedules')
      .summary('List the schedules with their next and last run.')
      .description(
        'List the schedules the modules declare (their Schedulers), with the next due time and the last run.',
      )
      .argument('<modules...>', SCHEDULE_MODULES_HELP),
  ).action(async (modules: string[], opts: CommonOptions, command: Command) => {
    await runAdmin(io, result, command, modules, opts, async (ctx) => {
      const schedules = await ctx.admin.schedules()
      if (ctx.json) return ctx.out(formatJsonDocument(schedules))
      if (schedules.length === 0) return ctx.out(`No schedules: ${NO_SCHEDULERS}.\n`)
      const rows = schedules.map((s) => [
        s.id,
        s.actorName,
        s.queueName,
        when(s),
        formatTime(s.nextRunAt),
        formatTime(s.lastRunAt),
      ])
      ctx.out(formatTable(SCHEDULE_COLUMNS, rows))
    })
  })

  withCommonOptions(
    program
      .command('scheduler')
      .summary('Run the schedules the modules declare, until SIGINT or SIGTERM.')
      .description(
        'Run the Schedulers the modules make for their broker until SIGINT or SIGTERM, logging each message sent. ' +
          'Run as many as you like: they elect one leader through their backend, and each due time is sent once.',
      )
      .argument('<modules...>', SCHEDULE_MODULES_HELP)
      .addOption(
        new Option('--log-format <format>', 'log line format')
          .choices([LogFormat.PRETTY, LogFormat.JSON])
          .default(LogFormat.PRETTY),
      )
      .addOption(new Option('-v, --verbose', 'also log debug entries')),
  ).action(
    async (modules: string[], opts: CommonOptions & { logFormat: LogFormat; verbose?: boolean }, command: Command) => {
      await runAdmin(
        io,
        result,
        command,
        modules,
        opts,
        async (ctx) => {
          const schedulers = [...ctx.broker.schedulers]
          if (schedulers.length === 0) {
            ctx.err(`error: ${NO_SCHEDULERS}\n`)
            return ExitCode.USAGE
          }
          // A broker without a logger of its own logs through the CLI's (the schedulers follow it).
          if (!ctx.broker.hasLogger) {
            ctx.broker.logger = createCliLogger({
              format: opts.logFormat,
              verbose: opts.verbose === true,
              write: ctx.err,
              bindings: { process: 'scheduler', pid: process.pid },
            })
          }
          const stopped = new Promise<void>((resolve) => {
            process.once('SIGINT', resolve)
            process.once('SIGTERM', resolve)
          })
          for (const scheduler of schedulers) await scheduler.start()
          const count = schedulers.reduce((n, s) => n + s.size, 0)
          if (ctx.json) ctx.out(`${JSON.stringify({ schedulers: schedulers.length, schedules: count })}\n`)
          else ctx.out(`Running ${count} schedule(s) (stop with Ctrl-C)\n`)
          await stopped
          for (const scheduler of schedulers) {
            await scheduler.stop()
            try {
              await scheduler.backend.close?.()
            } catch (error) {
              ctx.err(`warning: could not close a scheduler's backend: ${errorMessage(error)}\n`)
            }
          }
          return ExitCode.OK
        },
        true,
      )
    },
  )
}
