import { ConfigurationError, type Logger } from '@tq/core'
import { classifyPgError } from './classify-error.ts'
import { checkSchemaName } from './identifiers.ts'
import type { PgPool, PgQueryable } from './pg-types.ts'

/** One step of a component's tables: applied once, in order of `version`, inside a transaction. */
export interface Migration {
  readonly version: number
  readonly description: string
  /** The statements, for tables in `schema` (already checked). */
  sql(schema: string): string
}

/**
 * A part of the schema with its own version: the broker's tables, the result store's, … A
 * deployment that uses only one of them gets only its tables.
 */
export interface SchemaComponent {
  readonly name: string
  readonly migrations: readonly Migration[]
}

/** The newest version of a component. */
export function latestVersion(component: SchemaComponent): number {
  return component.migrations.reduce((max, m) => Math.max(max, m.version), 0)
}

/**
 * The tables in the database are not the ones this version of `@tq/postgres` uses: never
 * created (run `tq postgres migrate`, or leave `migrate` on), older, or made by a newer version
 * (upgrade `@tq/postgres` first). Nothing was read or written.
 */
export class SchemaVersionError extends ConfigurationError {
  readonly schema: string
  readonly component: string
  /** The version in the database (0: none). */
  readonly found: number
  /** The version this package uses. */
  readonly expected: number

  constructor(schema: string, component: string, found: number, expected: number) {
    const what =
      found === 0
        ? `has no ${component} tables yet: run \`tq postgres migrate\` (or leave the migrate option on)`
        : found < expected
          ? `has ${component} tables at version ${found}, this @tq/postgres needs ${expected}: run \`tq postgres migrate\``
          : `has ${component} tables at version ${found}, made by a newer @tq/postgres (this one knows ${expected}): upgrade @tq/postgres`
    super(`PostgreSQL schema ${JSON.stringify(schema)} ${what}`)
    this.schema = schema
    this.component = component
    this.found = found
    this.expected = expected
  }
}

const versionsTable = (schema: string): string => `${schema}.schema_versions`

/** The plain SQL of a component's migrations after `from` (all of them by default), as `tq postgres migrate` applies them. */
export function migrationSql(component: SchemaComponent, schema = 'tq', from = 0): string {
  checkSchemaName(schema)
  const parts = [
    `CREATE SCHEMA IF NOT EXISTS ${schema};`,
    `CREATE TABLE IF NOT EXISTS ${versionsTable(schema)} (\n  component text PRIMARY KEY,\n  version integer NOT NULL,\n  applied_at timestamptz NOT NULL DEFAULT now()\n);`,
  ]
  for (const m of [...component.migrations].sort((a, b) => a.version - b.version)) {
    if (m.version <= from) continue
    parts.push(`-- ${component.name} ${m.version}: ${m.description}\n${m.sql(schema).trim()}`)
    parts.push(
      `INSERT INTO ${versionsTable(schema)} (component, version) VALUES ('${component.name}', ${m.version})\n` +
        `  ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now();`,
    )
  }
  return `${parts.join('\n\n')}\n`
}

async function readVersions(db: PgQueryable, schema: string): Promise<Map<string, number> | undefined> {
  try {
    const { rows } = await db.query<{ component: string; version: number }>(
      `SELECT component, version FROM ${versionsTable(schema)}`,
    )
    return new Map(rows.map((r) => [r.component, Number(r.version)]))
  } catch (error) {
    // 42P01: no such table; 3F000: no such schema.
    const code = (error as { code?: unknown }).code
    if (code === '42P01' || code === '3F000') return undefined
    throw error
  }
}

/**
 * Bring `components` up to date in `schema`: one transaction holding an advisory lock (so
 * processes starting together apply each migration once), refusing a component a newer version
 * made. Resolves with what it applied.
 */
export async function migrate(
  pool: PgPool,
  schema: string,
  components: readonly SchemaComponent[],
  logger?: Logger,
): Promise<Array<{ component: string; version: number }>> {
  checkSchemaName(schema)
  const client = await pool.connect()
  const applied: Array<{ component: string; version: number }> = []
  let failed: unknown
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tq:migrate:${schema}`])
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${versionsTable(schema)} (component text PRIMARY KEY, version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    )
    const versions = (await readVersions(client, schema)) ?? new Map<string, number>()
    for (const component of components) {
      const found = versions.get(component.name) ?? 0
      const latest = latestVersion(component)
      if (found > latest) throw new SchemaVersionError(schema, component.name, found, latest)
      for (const m of [...component.migrations].sort((a, b) => a.version - b.version)) {
        if (m.version <= found) continue
        await client.query(m.sql(schema))
        await client.query(
          `INSERT INTO ${versionsTable(schema)} (component, version) VALUES ($1, $2)
           ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now()`,
          [component.name, m.version],
        )
        applied.push({ component: component.name, version: m.version })
      }
    }
    await client.query('COMMIT')
  } catch (error) {
    failed = error
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  } finally {
    client.release(failed !== undefined && !(failed instanceof SchemaVersionError))
  }
  for (const a of applied) logger?.info(`Applied the ${a.component} tables' migration ${a.version}`, { schema, ...a })
  return applied
}

/** Throw `SchemaVersionError` unless every component is at this package's version in `schema`. */
export async function checkSchema(
  db: PgQueryable,
  schema: string,
  components: readonly SchemaComponent[],
): Promise<void> {
  const versions = (await readVersions(db, schema)) ?? new Map<string, number>()
  for (const component of components) {
    const found = versions.get(component.name) ?? 0
    const latest = latestVersion(component)
    if (found !== latest) throw new SchemaVersionError(schema, component.name, found, latest)
  }
}

/**
 * Make sure the tables are there, once per process and schema user: migrate (the default) or
 * only check. Failures are not cached, so the next use tries again.
 */
export class SchemaGate {
  readonly #run: () => Promise<void>
  #ready: Promise<void> | undefined
  #done = false

  constructor(options: {
    pool: PgPool
    schema: string
    components: readonly SchemaComponent[]
    migrate: boolean
    logger: Logger
  }) {
    const { pool, schema, components, logger } = options
    this.#run = options.migrate
      ? async () => {
          await migrate(pool, schema, components, logger)
        }
      : () => checkSchema(pool, schema, components)
  }

  get ready(): boolean {
    return this.#done
  }

  /** Resolves once the tables are known to be right. */
  ensure(): Promise<void> {
    if (this.#done) return Promise.resolve()
    this.#ready ??= this.#run().then(
      () => {
        this.#done = true
      },
      (error: unknown) => {
        this.#ready = undefined
        throw classifyPgError(error)
      },
    )
    return this.#ready
  }
}
