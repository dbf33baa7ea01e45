/** `tq postgres migrate` (the real bin under tsx) against the real server. */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { PG_URL, dropSchema, testPool, testSchema } from './helpers.ts'

const BIN = join(dirname(createRequire(import.meta.url).resolve('@tq/core/package.json')), 'src', 'cli', 'bin.ts')
const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')
const pool = testPool(2)
const schema = testSchema('tq_cli')

afterAll(async () => {
  await dropSchema(pool, schema)
  await pool.end()
})

function tq(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', BIN, ...args], {
    cwd: PACKAGE_DIR,
    env: { ...process.env, TQ_BROKER_URL: '', TQ_POSTGRES_URL: '', DATABASE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  return new Promise((resolve) => child.on('exit', (code) => setImmediate(() => resolve({ code, out, err }))))
}

describe('tq postgres migrate', () => {
  it('creates the tables, then says they are up to date', async () => {
    const first = await tq(['postgres', 'migrate', '--url', PG_URL, '--schema', schema, '--only', 'broker'])
    expect(first.code, first.err).toBe(0)
    expect(first.out).toContain('Applied broker 1')
    const { rows } = await pool.query(`SELECT version FROM ${schema}.schema_versions WHERE component = 'broker'`)
    expect(rows).toEqual([{ version: 1 }])
    // The URL from the environment this time.
    const again = await tq(['postgres', 'migrate', '--schema', schema, '--only', 'broker'], { TQ_POSTGRES_URL: PG_URL })
    expect(again.code, again.err).toBe(0)
    expect(again.out).toContain('up to date')
  })

  it('prints the SQL for a schema without touching the database', async () => {
    const printed = await tq(['postgres', 'migrate', '--print', '--schema', 'jobs_printed', '--only', 'broker'])
    expect(printed.code, printed.err).toBe(0)
    expect(printed.out).toContain('CREATE TABLE jobs_printed.messages')
    const { rows } = await pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'jobs_printed'`)
    expect(rows).toEqual([])
  })

  it('refuses a schema a newer version made (exit 1), a bad name (exit 2), a server it cannot reach (exit 3)', async () => {
    await pool.query(`UPDATE ${schema}.schema_versions SET version = 7 WHERE component = 'broker'`)
    const newer = await tq(['postgres', 'migrate', '--url', PG_URL, '--schema', schema, '--only', 'broker'])
    expect(newer.code).toBe(1)
    expect(newer.err).toContain('newer @tq/postgres')
    await pool.query(`UPDATE ${schema}.schema_versions SET version = 1 WHERE component = 'broker'`)
    const bad = await tq(['postgres', 'migrate', '--url', PG_URL, '--schema', 'No-Such"Name'])
    expect(bad.code).toBe(2)
    expect(bad.err).toContain('schema must be')
    const unknownPart = await tq(['postgres', 'migrate', '--url', PG_URL, '--only', 'brokers'])
    expect(unknownPart.code).toBe(2)
    const away = await tq(['postgres', 'migrate', '--url', 'postgres://postgres@127.0.0.1:1/test', '--schema', schema])
    expect(away.code, away.err).toBe(3)
  })
})
