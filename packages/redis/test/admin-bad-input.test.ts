// Admin on bad input with Tracking on Redis: corrupt records, unknown ids, a corrupt encoded copy.
import { Admin, DecodeError, MessageNotFoundError, Tracking, Worker, actor } from '@tq/core'
import { uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisBroker, RedisTrackingBackend } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const raw = rawClient()
const namespace = uniqueNamespace('admin-bad')
const prefix = `tq-tracking-${namespace}`

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await deleteNamespace(raw, prefix)
  await raw.quit()
})

describe('Admin on bad input (Redis tracking)', () => {
  it('reports a corrupt record as DecodeError on read, cancel and retry, and keeps the worker running', async () => {
    const backend = new RedisTrackingBackend({ url: REDIS_URL, prefix })
    const tracking = new Tracking({ backend, flushInterval: 5 })
    const broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [tracking] })
    const worker = new Worker(broker, { workerTimeout: 50 })
    try {
      const queueName = uniqueQueueName('bad')
      const ran: number[] = []
      const job = actor('job', (n: number) => void ran.push(n), { broker, queueName })
      const admin = new Admin({ broker })
      await raw.set(`${prefix}:m:garbage`, 'not a record')
      await expect(admin.message('garbage')).rejects.toBeInstanceOf(DecodeError)
      await expect(admin.cancel('garbage')).rejects.toBeInstanceOf(DecodeError)
      await expect(admin.retry('garbage')).rejects.toBeInstanceOf(DecodeError)
      await expect(admin.cancel('never-sent')).rejects.toBeInstanceOf(MessageNotFoundError)

      // A record whose encoded copy is garbage: retry says so with DecodeError, sending nothing.
      const message = await job.send(1)
      await worker.start()
      await waitFor(async () => (await admin.message(message.messageId))?.state === 'succeeded', {
        timeout: 10_000,
        message: 'succeeded',
      })
      await raw.hset(`${prefix}:m:${message.messageId}`, 'body', 'garbage')
      await expect(admin.retry(message.messageId)).rejects.toBeInstanceOf(DecodeError)
      expect((await admin.queues()).find((q) => q.name === queueName)?.ready).toBe(0)

      // A message whose record key holds garbage is still run and tracking's write replaces it.
      const next = job.message(2)
      await raw.set(`${prefix}:m:${next.messageId}`, 'not a record')
      await broker.enqueue(next)
      await waitFor(() => ran.includes(2), { timeout: 10_000, message: 'the second message ran' })
      await waitFor(async () => (await admin.message(next.messageId).catch(() => undefined))?.state === 'succeeded', {
        timeout: 10_000,
        message: 'its record replaced',
      })
      // Redrive of an empty dead-letter queue is a no-op.
      expect(await admin.redrive(queueName)).toBe(0)
    } finally {
      await worker.stop({ timeout: 5000 })
      await broker.close()
      await backend.close()
    }
  })
})
