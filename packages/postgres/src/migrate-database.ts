import pg from 'pg'
import { InvalidArgumentError, errorMeta, type Logger } from '@tq/core'
import { classifyPgError } from './classify-error.ts'
import { schemaComponents } from './components.ts'
import { checkSchemaName } from './identifiers.ts'
import type { PgPool } from './pg-types.ts'
import { migrate, migrationSql, type SchemaComponent } from './schema.ts'

export interface MigrateDatabaseOptions {
  /** Your pool (not ended); or give `connectionString`. */
  pool?: PgPool
  /** `postgres://…` (default: node-postgres's `PG*` environment variables). */
  connectionString?: string | undefined
  /** The schema of tq's tables (default `tq`). */
  schema?: string
  /** The parts to migrate, by name (`broker`, `results`, `limits`, `tracking`; default all). */
  components?: readonly string[]
  logger?: Logger
}

function pick(names: readonly string[] | undefined): SchemaComponent[] {
  if (!names) return [...schemaComponents]
  return names.map((name) => {
    const found = schemaComponents.find((c) => c.name === name)
    if (!found) {
      throw new InvalidArgumentError(
        `Unknown schema part ${JSON.stringify(name)}; known: ${schemaComponents.map((c) => c.name).join(', ')}`,
      )
    }
    return found
  })
}

/**
 * Create or upgrade tq's tables (what `tq postgres migrate` runs): every part, or the ones named,
 * in one transaction under an advisory lock. Resolves with the migrations applied (none when up
 * to date); a schema made by a newer `@tq/postgres` is refused with `SchemaVersionError`.
 */
export async function migrateDatabase(
  options: MigrateDatabaseOptions = {},
): Promise<Array<{ component: string; version: number }>> {
  const schema = checkSchemaName(options.schema ?? 'tq')
  const components = pick(options.components)
  const own = options.pool
    ? undefined
    : new pg.Pool({
        max: 1,
        application_name: 'tq migrate',
        ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }),
      })
  own?.on('error', (error) => options.logger?.warn('A PostgreSQL connection failed', errorMeta(error)))
  const pool: PgPool = options.pool ?? (own as PgPool)
  try {
    return await migrate(pool, schema, components, options.logger)
  } catch (error) {
    throw classifyPgError(error)
  } finally {
    await own?.end()
  }
}

/** The plain SQL `migrateDatabase` would apply to an empty database, for your own migration tool. */
export function migrationScript(options: Pick<MigrateDatabaseOptions, 'schema' | 'components'> = {}): string {
  const schema = checkSchemaName(options.schema ?? 'tq')
  return pick(options.components)
    .map((c) => migrationSql(c, schema))
    .join('\n')
}

/** The text of `sql/<name>.sql`: a component's migrations for schema `tq`, with a header. */
export function plainSqlFile(component: SchemaComponent): string {
  return (
    `-- @tq/postgres: the ${component.name} tables in schema tq (what \`tq postgres migrate\` applies).\n` +
    `-- For another schema: migrationScript({ schema }) or \`tq postgres migrate --print --schema <name>\`.\n\n` +
    migrationSql(component)
  )
}
