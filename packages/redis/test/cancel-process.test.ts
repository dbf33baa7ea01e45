// Cancellation across processes: the admin in this process, the message running in a worker
// process of its own; the cancel travels on the tracking backend's Redis pub/sub channel.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Admin, StubBroker, actor } from '@tq/core'
import { uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisBroker, RedisTrackingBackend } from '../src/index.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const raw = rawClient()
const namespace = uniqueNamespace('cancel-proc')
const prefix = `tq-tracking-${namespace}`

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await deleteNamespace(raw, prefix)
  await raw.quit()
})

describe('cancel across processes', () => {
  it("aborts a message running in another worker process within 1 s, and that process's heartbeat is listed", async () => {
    const queueName = uniqueQueueName('cancel')
    const script = fileURLToPath(new URL('./support/cancel-worker.ts', import.meta.url))
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=@tq/source', script, REDIS_URL, namespace, prefix, queueName],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const lines: string[] = []
    createInterface({ input: child.stdout }).on('line', (line) => lines.push(line))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const backend = new RedisTrackingBackend({ url: REDIS_URL, prefix })
    const broker = new RedisBroker({ url: REDIS_URL, namespace })
    try {
      await waitFor(() => lines.includes('ready'), { timeout: 15_000, message: 'the worker process started' })
      const admin = new Admin({ broker, tracking: backend })
      const workers = await admin.workers()
      expect(workers.map((w) => w.pid)).toContain(child.pid)
      expect(workers.find((w) => w.pid === child.pid)?.queues).toContain(queueName)

      // The producer side: this process sends through the same Redis (no Tracking here needed:
      // the worker process records the message when it starts it).
      const wait = actor('wait', () => undefined, { broker, queueName })
      const message = await wait.send()
      await waitFor(async () => (await admin.message(message.messageId))?.state === 'running', {
        timeout: 10_000,
        message: 'running in the worker process',
      })
      const asked = Date.now()
      expect(await admin.cancel(message.messageId)).toMatchObject({ cancelled: true, state: 'running' })
      await waitFor(() => lines.some((line) => line.startsWith(`aborted ${message.messageId}`)), {
        timeout: 1000,
        message: 'aborted within 1 s',
      })
      expect(Date.now() - asked).toBeLessThan(1000)
      expect(lines).toContain(`aborted ${message.messageId} CancelledError`)
      await waitFor(async () => (await admin.message(message.messageId))?.state === 'cancelled', {
        timeout: 10_000,
        message: 'recorded cancelled',
      })
      // Not retried, not dead-lettered: the queue is empty.
      await waitFor(async () => (await admin.queues()).find((q) => q.name === queueName)?.ready === 0, {
        timeout: 5000,
        message: 'nothing left in the queue',
      })
      expect(await raw.zcard(`${namespace}:${queueName}.XQ`)).toBe(0)
      expect(lines.filter((line) => line.startsWith('aborted'))).toHaveLength(1)
    } finally {
      child.kill('SIGTERM')
      await exited
      await broker.close()
      await backend.close()
    }
    // A stopped worker takes its heartbeat with it.
    const admin = new Admin({
      broker: new StubBroker(),
      tracking: new RedisTrackingBackend({ url: REDIS_URL, prefix }),
    })
    expect((await admin.workers()).map((w) => w.pid)).not.toContain(child.pid)
    await admin.tracking?.close?.()
  }, 30_000)
})
