import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'

/** @tq/redis tests use a database of their own so they never touch other suites' keys. */
export const REDIS_URL = process.env['TQ_REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379/7'

/** A namespace no other test file (or process) uses. */
export function uniqueNamespace(label: string): string {
  return `tqtest-${label}-${process.pid}-${randomBytes(3).toString('hex')}`
}

/** A plain client, as a foreign producer or an inspector would use. */
export function rawClient(): Redis {
  return new Redis(REDIS_URL, { lazyConnect: true, connectionName: 'tq-test-inspector' })
}

/** Delete every key of a namespace (SCAN, never FLUSHDB: other suites share the server). */
export async function deleteNamespace(client: Redis, namespace: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await client.del(...keys)
  } while (cursor !== '0')
}

/** Put a payload on a queue exactly the way Python Dramatiq documents for foreign producers. */
export async function putRaw(
  client: Redis,
  namespace: string,
  queueName: string,
  id: string,
  body: Uint8Array | string,
): Promise<void> {
  await client.hset(`${namespace}:${queueName}.msgs`, id, Buffer.from(body))
  await client.rpush(`${namespace}:${queueName}`, id)
}

/** The ids of the broker's own connections, from CLIENT LIST. */
export async function brokerConnectionIds(client: Redis, brokerId: string): Promise<string[]> {
  const list = (await client.client('LIST')) as string
  return list
    .split('\n')
    .filter((line) => line.includes(`name=tq:${brokerId}:`))
    .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1])
    .filter((id): id is string => id !== undefined)
}
