import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { Command } from 'commander'
import { TqError, errorMessage } from '../errors.ts'
import type { AdminCommandIo } from './admin-runner.ts'
import { ExitCode } from './exit-codes.ts'

/** What `tq postgres` uses of `@tq/postgres` (loaded from the app, so core does not depend on it). */
interface PostgresPackage {
  migrateDatabase(options: {
    connectionString?: string
    schema?: string
    components?: readonly string[]
  }): Promise<Array<{ component: string; version: number }>>
  migrationScript(options: { schema?: string; components?: readonly string[] }): string
}

interface MigrateOptions {
  url?: string
  schema?: string
  only?: string
  print?: boolean
}

function loadPostgres(cwd: string): PostgresPackage | undefined {
  for (const base of [join(cwd, 'package.json'), import.meta.url]) {
    try {
      return createRequire(base)('@tq/postgres') as PostgresPackage
    } catch (error) {
      const code = (error as { code?: string }).code
      if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') continue
      throw error
    }
  }
  return undefined
}

/** The database URL: `--url`, else `TQ_POSTGRES_URL`, `DATABASE_URL`, a `postgres://` `TQ_BROKER_URL`. */
function databaseUrl(opts: MigrateOptions, env: NodeJS.ProcessEnv): string | undefined {
  if (opts.url) return opts.url
  const broker = env['TQ_BROKER_URL']
  const fromBroker = broker && /^postgres(ql)?:/.test(broker) ? broker : undefined
  return env['TQ_POSTGRES_URL'] || env['DATABASE_URL'] || fromBroker || undefined
}

/** `tq postgres migrate`. */
export function addPostgresCommands(program: Command, io: AdminCommandIo, result: { code: number }): void {
  const postgres = program
    .command('postgres')
    .summary("Manage @tq/postgres's tables.")
    .description('Manage the tables of @tq/postgres (PostgresBroker, OutboxBroker and the Postgres backends).')
  postgres
    .command('migrate')
    .summary('Create or upgrade the tables.')
    .description(
      'Create or upgrade the tables of @tq/postgres in one transaction (safe to run from several processes at ' +
        'once), or print their SQL with --print. The database is --url, else TQ_POSTGRES_URL, DATABASE_URL, a ' +
        "postgres:// TQ_BROKER_URL, else node-postgres's PG* variables.",
    )
    .option('--url <url>', 'postgres://… of the database')
    .option('--schema <name>', 'schema of the tables', 'tq')
    .option('--only <parts>', 'comma-separated parts: broker, results, limits, tracking, outbox (default all)')
    .option('--print', 'print the SQL instead of running it')
    .action(async (opts: MigrateOptions) => {
      const env = io.env ?? process.env
      const pkg = loadPostgres(io.cwd ?? process.cwd())
      if (!pkg) {
        io.writeErr('tq postgres migrate needs @tq/postgres: install it in your app (npm install @tq/postgres pg)\n')
        result.code = ExitCode.USAGE
        return
      }
      const components = opts.only
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean)
      const scope = { ...(opts.schema ? { schema: opts.schema } : {}), ...(components ? { components } : {}) }
      try {
        if (opts.print) {
          io.writeOut(pkg.migrationScript(scope))
          return
        }
        const url = databaseUrl(opts, env)
        const applied = await pkg.migrateDatabase({ ...scope, ...(url ? { connectionString: url } : {}) })
        if (applied.length === 0) io.writeOut(`Schema ${opts.schema ?? 'tq'} is up to date.\n`)
        for (const a of applied) io.writeOut(`Applied ${a.component} ${a.version}\n`)
      } catch (error) {
        io.writeErr(`tq postgres migrate: ${errorMessage(error)}\n`)
        const code = TqError.is(error) ? error.code : undefined
        result.code =
          code === 'TQ_INVALID_ARGUMENT'
            ? ExitCode.USAGE
            : code === 'TQ_CONNECTION_FAILED' || code === 'TQ_CONNECTION_CLOSED'
              ? ExitCode.BROKER_CONNECTION
              : ExitCode.FAILED
      }
    })
}
