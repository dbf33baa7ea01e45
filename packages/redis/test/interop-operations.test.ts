// Operations (Tracking, cancel, dedup) on the tq side of queues shared with Python Dramatiq 2.2:
// what Python wrote (fixtures/dramatiq-wire/redis-*.json) is tracked and can be cancelled, and
// what tq writes with them on stays what Python reads.
import { Admin, CancelledError, Retries, Tracking, Worker, actor, currentMessage } from '@tq/core'
import { waitFor } from '@tq/core/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RedisBroker, RedisTrackingBackend } from '../src/index.ts'
import { loadFixture, putLikePython } from './fixtures.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const raw = rawClient()
let namespace: string
let broker: RedisBroker
let backend: RedisTrackingBackend
let tracking: Tracking
let worker: Worker | undefined

beforeEach(() => {
  namespace = uniqueNamespace('ops-interop')
  backend = new RedisTrackingBackend({ url: REDIS_URL, prefix: `tq-tracking-${namespace}` })
  tracking = new Tracking({ backend, flushInterval: 5 })
  broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [new Retries({ maxRetries: 3 }), tracking] })
})

afterEach(async () => {
  await worker?.stop({ timeout: 5000 })
  worker = undefined
  await broker.close()
  await backend.close()
  await deleteNamespace(raw, namespace)
  await deleteNamespace(raw, `tq-tracking-${namespace}`)
})

async function startWorker(): Promise<Worker> {
  worker = new Worker(broker, { workerTimeout: 100 })
  await worker.start()
  return worker
}

/** Every key under a prefix. */
async function keysOf(prefix: string): Promise<string[]> {
  return (await raw.keys(`${prefix}:*`)).sort()
}

describe('operations beside Python Dramatiq', () => {
  it('tracks a message Python sent, from its first run (the producer had no Tracking)', async () => {
    const admin = new Admin({ broker })
    actor('add', (x: number, y: number) => x + y, { broker, queueName: 'default' })
    const encoded = loadFixture('redis-enqueue.json').returned_message.encoded as string
    const id = (JSON.parse(encoded) as { message_id: string }).message_id
    await putLikePython(raw, namespace, encoded)
    await startWorker()
    await waitFor(async () => (await admin.message(id))?.state === 'succeeded', {
      timeout: 10_000,
      message: 'tracked as succeeded',
    })
    const record = await admin.message(id)
    expect(record?.attempts).toHaveLength(1)
    // Tracking keys stay under their prefix: Dramatiq's namespace holds only Dramatiq's keys.
    expect(
      (await keysOf(namespace)).every((key) =>
        /^[^:]+:(default(\.DQ|\.XQ)?(\.msgs)?|__heartbeats__|__acks__.*)$/.test(key),
      ),
    ).toBe(true)
  })

  it('cancels a Python-sent message while a tq worker runs it: aborted, acked, nothing dead-lettered', async () => {
    const admin = new Admin({ broker })
    let reason: unknown
    actor(
      'add',
      () =>
        new Promise((_resolve, reject) => {
          const signal = currentMessage()?.signal as AbortSignal
          signal.addEventListener('abort', () => {
            reason = signal.reason
            reject(signal.reason as Error)
          })
        }),
      { broker, queueName: 'default' },
    )
    const encoded = loadFixture('redis-enqueue.json').returned_message.encoded as string
    const id = (JSON.parse(encoded) as { message_id: string }).message_id
    await putLikePython(raw, namespace, encoded)
    await startWorker()
    await waitFor(async () => (await admin.message(id))?.state === 'running', { timeout: 10_000, message: 'running' })
    expect((await admin.cancel(id)).cancelled).toBe(true)
    await waitFor(() => reason !== undefined, { timeout: 1000, message: 'aborted within 1 s' })
    expect(reason).toBeInstanceOf(CancelledError)
    await waitFor(async () => (await admin.message(id))?.state === 'cancelled', {
      timeout: 10_000,
      message: 'cancelled',
    })
    await broker.join('default', { timeout: 5000 })
    expect(await raw.zcard(`${namespace}:default.XQ`)).toBe(0)
    expect(await raw.llen(`${namespace}:default`)).toBe(0)
    expect(await raw.hlen(`${namespace}:default.msgs`)).toBe(0)
  })

  it('a deduplicated send writes one Dramatiq message, in the layout and field order Python reads', async () => {
    const job = actor('add', (x: number, y: number) => x + y, { broker, queueName: 'default' })
    const sent = await Promise.all(
      Array.from({ length: 10 }, () => job.sendWithOptions({ args: [1, 2], uniqueKey: 'sum', uniqueFor: 60_000 })),
    )
    expect(new Set(sent.map((m) => m.messageId)).size).toBe(1)
    expect(await raw.llen(`${namespace}:default`)).toBe(1)
    const payloads = await raw.hvals(`${namespace}:default.msgs`)
    expect(payloads).toHaveLength(1)
    const wire = JSON.parse(payloads[0] as string) as Record<string, unknown>
    expect(Object.keys(wire)).toEqual([
      'queue_name',
      'actor_name',
      'args',
      'kwargs',
      'options',
      'message_id',
      'message_timestamp',
    ])
    // Python keeps unknown options as they are; the key lives under tracking's prefix only.
    expect(wire['options']).toMatchObject({ unique_key: 'sum', unique_for: 60_000 })
    expect((await keysOf(`tq-tracking-${namespace}`)).some((key) => key.includes(':u:add:sum'))).toBe(true)
  })
})
