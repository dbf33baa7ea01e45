import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'

/** The @tq/results-redis tests use a database of their own, so they never touch other suites' keys. */
export const REDIS_URL = process.env['TQ_RESULTS_REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379/8'

/** The Dramatiq 2.2 wire fixtures, read from the repository (see fixtures/dramatiq-wire/README.md). */
const FIXTURES = new URL('../../../fixtures/dramatiq-wire/', import.meta.url)

export interface FixtureKey {
  type: string
  pttl: number
  value: unknown
}

export interface ResultsFixturePart {
  use_namespace_prefix_keys: boolean
  sent_message: { encoded: string; parsed: { queue_name: string; actor_name: string; message_id: string } }
  result_key_source: string
  result_key: string
  redis_keys_after_processing: Record<string, FixtureKey>
  redis_keys_after_get_result: Record<string, FixtureKey>
  get_result_block_true: {
    value?: unknown
    raised?: string
    str?: string
    orig_exc_type?: string
    orig_exc_msg?: string
  }
  redis_commands: Array<{ from: string; cmd: string[] }>
}

export interface ResultsFixture {
  parts: Record<
    'success' | 'failure' | 'success_namespace_prefix_keys' | 'failure_namespace_prefix_keys',
    ResultsFixturePart
  >
}

export function loadResultsFixture(): ResultsFixture {
  return JSON.parse(readFileSync(new URL('redis-results.json', FIXTURES), 'utf8')) as ResultsFixture
}

/** A namespace no other test file (or process) uses. */
export function uniqueNamespace(label: string): string {
  return `tqtest-results-${label}-${process.pid}-${randomBytes(3).toString('hex')}`
}

/** A plain client, as an inspector (or a Python peer) would use. */
export function rawClient(): Redis {
  return new Redis(REDIS_URL, { lazyConnect: true, connectionName: 'tq-results-test-inspector' })
}

/** Delete every key matching a pattern (SCAN, never FLUSHDB: others may share the server). */
export async function deleteMatching(client: Redis, pattern: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await client.del(...keys)
  } while (cursor !== '0')
}

/** The server's connections named `name` (from CLIENT LIST), with the command each runs. */
export async function namedConnections(client: Redis, name: string): Promise<Array<{ id: string; cmd: string }>> {
  const list = (await client.client('LIST')) as string
  return list
    .split('\n')
    .filter((line) => line.includes(` name=${name} `))
    .map((line) => ({ id: /(?:^|\s)id=(\d+)/.exec(line)?.[1] ?? '', cmd: /\scmd=(\S+)/.exec(line)?.[1] ?? '' }))
}

/** Resolves when `check` returns true, checking every 5 ms; fails after `timeout` ms. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
