// A bad database index and an unreachable server fail fast with a typed error naming the
// server, instead of writing to database 0 or hanging for ioredis's ~74 s of retries.
import { type AddressInfo, type Server, type Socket, connect as netConnect, createServer } from 'node:net'
import { ConfigurationError, ConnectionFailedError, actor } from '@tq/core'
import { freePort, rejection, uniqueQueueName } from '@tq/core/testing'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, uniqueNamespace } from './helpers.ts'

const redisUrl = new URL(REDIS_URL)
const redisHost = redisUrl.hostname
const redisPort = Number(redisUrl.port || 6379)
const db0 = new Redis(`redis://${redisUrl.host}/0`, { lazyConnect: true, connectionName: 'tq-test-db0' })

afterAll(async () => {
  await db0.quit()
})

async function keysOnDb0(namespace: string): Promise<string[]> {
  return db0.keys(`${namespace}:*`)
}

describe('RedisBroker with a database index the server does not have', () => {
  const url = `redis://:s3cretPW@${redisUrl.host}/99`

  it('connect() rejects with ConfigurationError naming the redacted URL and the database', async () => {
    const broker = new RedisBroker({ url, namespace: uniqueNamespace('db99'), middleware: [] })
    try {
      const error = await rejection(broker.connect())
      expect(error).toBeInstanceOf(ConfigurationError)
      expect((error as Error).message).toContain(`redis://:***@${redisUrl.host}/99`)
      expect((error as Error).message).toMatch(/database 99: .*DB index is out of range/)
      expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain('s3cretPW')
      // It stays an error: retrying cannot help.
      expect(await rejection(broker.connect())).toBeInstanceOf(ConfigurationError)
    } finally {
      await broker.close()
    }
  })

  it('send() without connect() rejects the same way and writes nothing to database 0', async () => {
    const namespace = uniqueNamespace('db99send')
    const broker = new RedisBroker({ url, namespace, middleware: [] })
    try {
      const job = actor('job', (_i: number) => undefined, { broker, queueName: uniqueQueueName('db99') })
      const error = await rejection(job.send(1))
      expect(error).toBeInstanceOf(ConfigurationError)
      expect((error as Error).message).toMatch(/DB index is out of range/)
      const again = await rejection(broker.enqueueMany([job.message(2), job.message(3)]))
      expect(again).toBeInstanceOf(ConfigurationError)
      expect(await keysOnDb0(namespace)).toEqual([])
    } finally {
      await broker.close()
      await deleteNamespace(db0, namespace)
    }
  })
})

describe('RedisBroker with the server unreachable', () => {
  it('send() rejects within the connect timeout, naming host:port and ECONNREFUSED', async () => {
    const port = await freePort()
    const broker = new RedisBroker({ url: `redis://:pw@127.0.0.1:${port}/0`, middleware: [] })
    try {
      const job = actor('job', (_i: number) => undefined, { broker, queueName: uniqueQueueName('down') })
      const started = Date.now()
      const error = await rejection(job.send(1))
      expect(Date.now() - started).toBeLessThan(8000)
      expect(error).toBeInstanceOf(ConnectionFailedError)
      expect((error as Error).message).toContain(`127.0.0.1:${port}`)
      expect((error as Error).message).toContain('ECONNREFUSED')
      // A second send, while ioredis retries in the background, is bounded by connectTimeout.
      const second = await rejection(job.send(2))
      expect(Date.now() - started).toBeLessThan(8000 + 6000)
      expect(second).toBeInstanceOf(ConnectionFailedError)
      expect((second as Error).message).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED`))
    } finally {
      await broker.close()
    }
  }, 20_000)

  it('rejects an invalid connectTimeout', () => {
    expect(() => new RedisBroker({ connectTimeout: 0, middleware: [] })).toThrow(ConfigurationError)
  })
})

/** A TCP proxy to Redis that can be stopped (refusing connections) and started again on the same port. */
class Proxy {
  #server: Server | undefined
  readonly #sockets = new Set<Socket>()
  port = 0

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = netConnect(redisPort, redisHost)
      for (const s of [client, upstream]) {
        this.#sockets.add(s)
        s.on('close', () => this.#sockets.delete(s))
        s.on('error', () => undefined)
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve))
    this.port = (server.address() as AddressInfo).port
    this.#server = server
  }

  async stop(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const s of this.#sockets) s.destroy()
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

describe('RedisBroker losing an established connection', () => {
  it('an enqueue during the outage fails after connectTimeout; the broker recovers when Redis is back', async () => {
    const proxy = new Proxy()
    await proxy.start()
    const namespace = uniqueNamespace('outage')
    const db = redisUrl.pathname.slice(1) || '0'
    const broker = new RedisBroker({
      url: `redis://127.0.0.1:${proxy.port}/${db}`,
      namespace,
      middleware: [],
      connectTimeout: 1000,
    })
    try {
      const job = actor('job', (_i: number) => undefined, { broker, queueName: uniqueQueueName('outage') })
      await job.send(1)
      await proxy.stop()
      const started = Date.now()
      const error = await rejection(job.send(2))
      const elapsed = Date.now() - started
      expect(error).toBeInstanceOf(ConnectionFailedError)
      expect((error as Error).message).toContain(`127.0.0.1:${proxy.port} within 1000 ms`)
      expect((error as Error).message).toContain('ECONNREFUSED')
      expect(elapsed).toBeLessThan(4000)
      await proxy.start()
      await expect.poll(() => rejection(job.send(3)), { timeout: 10_000, interval: 200 }).toBeUndefined()
      expect(await broker.qsize(job.queueName)).toBeGreaterThanOrEqual(2)
    } finally {
      await broker.close()
      await proxy.stop()
      const cleanup = new Redis(REDIS_URL, { lazyConnect: true })
      await deleteNamespace(cleanup, namespace)
      await cleanup.quit()
    }
  }, 30_000)
})

describe('RedisBroker.describe()', () => {
  it('names the server with its password redacted, and the database (the tq worker boot line shows them)', async () => {
    const broker = new RedisBroker({ url: `redis://:s3cretPW@${redisUrl.host}/7`, middleware: [] })
    try {
      expect(broker.describe()).toEqual({ url: `redis://:***@${redisUrl.host}/7`, db: 7 })
    } finally {
      await broker.close()
    }
  })
})
