// RedisBroker.connect(): the CLI calls it at boot, so an unreachable Redis is exit code 3
// instead of a worker that polls forever (found by the reliability suites).
import { BrokerConnectionError, ConnectionFailedError } from '@tq/core'
import { describe, expect, it } from 'vitest'
import { RedisBroker } from '../src/index.ts'
import { REDIS_URL, uniqueNamespace } from './helpers.ts'

describe('RedisBroker.connect()', () => {
  it('resolves once the server answers', async () => {
    const broker = new RedisBroker({ url: REDIS_URL, namespace: uniqueNamespace('connect'), middleware: [] })
    try {
      await broker.connect()
      expect(broker.client.status).toBe('ready')
    } finally {
      await broker.close()
    }
  })

  it('rejects with ConnectionFailedError naming the address, never the password, when nothing listens', async () => {
    const broker = new RedisBroker({ url: 'redis://:s3cretPW@127.0.0.1:1/0', middleware: [] })
    try {
      const error = await broker.connect().then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(ConnectionFailedError)
      expect(error).toBeInstanceOf(BrokerConnectionError)
      expect((error as Error).message).toMatch(/Could not connect to Redis at 127\.0\.0\.1:1: .*ECONNREFUSED/)
      expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain('s3cretPW')
    } finally {
      await broker.close()
    }
  })
})
