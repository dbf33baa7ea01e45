import { randomBytes } from 'node:crypto'
import { Worker, actor } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { afterAll, describe, expect, it } from 'vitest'
import { MsgpackEncoder } from '../src/index.ts'

/** Database 9, and a namespace of this run only; keys are removed afterwards (never FLUSHDB). */
const REDIS_URL = process.env['TQ_MSGPACK_REDIS_URL'] ?? 'redis://127.0.0.1:6379/9'
const namespace = `tqtest-msgpack-${process.pid}-${randomBytes(3).toString('hex')}`
const broker = new RedisBroker({ url: REDIS_URL, namespace, encoder: new MsgpackEncoder(), middleware: [] })

afterAll(async () => {
  let cursor = '0'
  do {
    const [next, keys] = await broker.client.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await broker.client.del(...keys)
  } while (cursor !== '0')
  await broker.close()
})

describe('MsgpackEncoder with RedisBroker (real Redis)', () => {
  it('stores MessagePack in Redis and delivers Date, Map, BigInt and Set intact', async () => {
    let resolve!: (value: unknown[]) => void
    const done = new Promise<unknown[]>((r) => (resolve = r))
    const inspect = actor(
      (when: Date, counts: Map<string, bigint>, tags: Set<number>, blob: Uint8Array) =>
        resolve([when, counts, tags, blob]),
      { broker, actorName: 'inspect', queueName: 'msgpack' },
    )
    const message = await inspect.send(
      new Date('2030-01-02T03:04:05.678Z'),
      new Map([['big', -(2n ** 90n)]]),
      new Set([1, 2, 3]),
      Buffer.from([0, 255]),
    )

    // What sits in Redis is the encoder's MessagePack map, not JSON.
    const stored = await broker.client.hgetallBuffer(`${namespace}:msgpack.msgs`)
    const bodies = Object.values(stored)
    expect(bodies).toHaveLength(1)
    const body = bodies[0] as Buffer
    expect(body[0]).toBe(0x87)
    const decoded = broker.encoder.decode(body)
    expect(decoded['message_id']).toBe(message.messageId)
    expect(decoded['options']).toHaveProperty('redis_message_id')

    const worker = new Worker(broker, { queues: ['msgpack'], workerTimeout: 50 })
    await worker.start()
    try {
      const [when, counts, tags, blob] = await done
      await broker.join('msgpack', { timeout: 5000 })
      expect(when).toBeInstanceOf(Date)
      expect((when as Date).toISOString()).toBe('2030-01-02T03:04:05.678Z')
      expect(counts).toEqual(new Map([['big', -(2n ** 90n)]]))
      expect(tags).toEqual(new Set([1, 2, 3]))
      expect([...(blob as Uint8Array)]).toEqual([0, 255])
    } finally {
      await worker.stop()
    }
  })

  it('dead-letters a payload that is not MessagePack and keeps consuming', async () => {
    let resolve!: (value: Map<string, number>) => void
    const done = new Promise<Map<string, number>>((r) => (resolve = r))
    const after = actor((value: Map<string, number>) => resolve(value), {
      broker,
      actorName: 'after',
      queueName: 'hostile',
    })
    // A foreign producer puts garbage on the queue the way Dramatiq documents it.
    await broker.client.hset(
      `${namespace}:hostile.msgs`,
      'garbage-id',
      Buffer.from([0x81, 0xa1, 0x78, 0xd4, 0x72, 0x40]),
    )
    await broker.client.rpush(`${namespace}:hostile`, 'garbage-id')
    await after.send(new Map([['ok', 1]]))

    const worker = new Worker(broker, { queues: ['hostile'], workerTimeout: 50 })
    await worker.start()
    try {
      expect(await done).toEqual(new Map([['ok', 1]]))
      await broker.join('hostile', { timeout: 5000 })
    } finally {
      await worker.stop()
    }
    const dead = await broker.deadLetters('hostile')
    expect(dead.map((d) => d.redisMessageId)).toEqual(['garbage-id'])
  })
})
