// A URL naming a database the server does not have fails with ConfigurationError instead of
// silently reading and writing database 0 (ioredis swallows the failed SELECT).
import { ConfigurationError, Message } from '@tq/core'
import { rejection } from '@tq/core/testing'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisResultBackend } from '../src/index.ts'
import { REDIS_URL, uniqueNamespace } from './helpers.ts'

const host = new URL(REDIS_URL).host
const db0 = new Redis(`redis://${host}/0`, { lazyConnect: true, connectionName: 'tq-results-test-db0' })

afterAll(async () => {
  await db0.quit()
})

describe('RedisResultBackend with a database index the server does not have', () => {
  it('storeResult() and getResult() reject with ConfigurationError and nothing lands on database 0', async () => {
    const namespace = uniqueNamespace('db99')
    const backend = new RedisResultBackend({ url: `redis://:s3cretPW@${host}/99`, namespace, usePrefixKeys: true })
    try {
      const m = new Message({ queueName: 'default', actorName: 'add', args: [1, 2] })
      const stored = await rejection(backend.storeResult(m, 3, 60_000))
      expect(stored).toBeInstanceOf(ConfigurationError)
      expect((stored as Error).message).toContain(`redis://:***@${host}/99`)
      expect((stored as Error).message).toMatch(/database 99: .*DB index is out of range/)
      expect(JSON.stringify(stored, Object.getOwnPropertyNames(stored))).not.toContain('s3cretPW')
      expect(await rejection(backend.getResult(m))).toBeInstanceOf(ConfigurationError)
      expect(await db0.keys(`${namespace}:*`)).toEqual([])
    } finally {
      await backend.close()
    }
  })
})
