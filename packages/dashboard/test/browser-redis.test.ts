import { randomBytes } from 'node:crypto'
import { Tracking, defaultMiddleware } from '@tq/core'
import { RedisBroker, RedisTrackingBackend } from '@tq/redis'
import { Redis } from 'ioredis'
import { browserSuite } from './browser.ts'

const REDIS_URL = process.env['TQ_REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379/8'

/** Delete every key under `prefix:` (SCAN, never FLUSHDB: other suites share the server). */
export async function deleteKeys(client: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await client.del(...keys)
  } while (cursor !== '0')
}

// Redis for the broker and for tracking, each under a namespace of its own.
browserSuite({
  name: 'redis',
  docImages: true,
  setup: async () => {
    const id = `${process.pid}-${randomBytes(3).toString('hex')}`
    const namespace = `tqtest-dashboard-${id}`
    const prefix = `tqtest-dashboard-tracking-${id}`
    const backend = new RedisTrackingBackend({ url: REDIS_URL, prefix })
    const tracking = new Tracking({ backend, heartbeatInterval: 200, maxArgsBytes: 16 * 1024 * 1024 })
    const broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [...defaultMiddleware(), tracking] })
    return {
      broker,
      tracking,
      prefix: 'dash_',
      cleanup: async () => {
        await broker.close()
        await backend.close()
        const raw = new Redis(REDIS_URL, { lazyConnect: true })
        await deleteKeys(raw, namespace)
        await deleteKeys(raw, prefix)
        await raw.quit()
      },
    }
  },
})
