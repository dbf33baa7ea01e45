import { describe, expect, it } from 'vitest'
import {
  Retries,
  SkipMessage,
  StubBroker,
  StubTrackingBackend,
  Tracking,
  Worker,
  actor,
  type Middleware,
  type TrackingBackend,
  type TrackingUpdate,
} from '../src/index.ts'
import { createCapturingLogger, waitFor } from '../src/testing/index.ts'

/** A StubTrackingBackend that counts its write calls. */
class CountingBackend extends StubTrackingBackend {
  writes: number[] = []
  override async write(updates: readonly TrackingUpdate[], retention: number): Promise<void> {
    this.writes.push(updates.length)
    await super.write(updates, retention)
  }
}

async function setup(options: { extra?: Middleware[]; backend?: TrackingBackend; maxArgsBytes?: number } = {}) {
  const backend = options.backend ?? new CountingBackend()
  const logger = createCapturingLogger()
  const tracking = new Tracking({
    backend,
    workerId: 'test-host:1',
    ...(options.maxArgsBytes === undefined ? {} : { maxArgsBytes: options.maxArgsBytes }),
  })
  const broker = new StubBroker({
    logger,
    middleware: [...(options.extra ?? []), new Retries({ minBackoff: 1, maxBackoff: 5 }), tracking],
  })
  return { backend, tracking, broker, logger }
}

describe('Tracking', () => {
  it('records a message from queued to succeeded, with its attempt', async () => {
    const { backend, tracking, broker } = await setup()
    const add = actor('add', (x: number, y: number) => x + y, { broker })
    const message = await add.send(1, 2)
    await tracking.flush()
    expect(await backend.get(message.messageId)).toMatchObject({
      state: 'queued',
      actorName: 'add',
      queueName: 'default',
      args: [1, 2],
      argsTruncated: false,
      attempts: [],
    })
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await broker.join('default')
    await worker.stop()
    const record = await backend.get(message.messageId)
    expect(record?.state).toBe('succeeded')
    expect(record?.workerId).toBeUndefined()
    expect(record?.attempts).toHaveLength(1)
    expect(record?.attempts[0]).toMatchObject({ number: 1, workerId: 'test-host:1' })
    expect(record?.attempts[0]?.finishedAt).toBeGreaterThanOrEqual(record?.attempts[0]?.startedAt ?? Infinity)
    expect(record?.attempts[0]?.error).toBeUndefined()
    // The encoded message is kept, so it can be sent again.
    expect(JSON.parse(Buffer.from(record?.body ?? []).toString())).toMatchObject({ message_id: message.messageId })
  })

  it('records a failed attempt, the retry and the success after it', async () => {
    const { backend, broker } = await setup()
    let calls = 0
    const flaky = actor(
      'flaky',
      () => {
        calls++
        if (calls === 1) throw new TypeError('first time fails')
      },
      { broker, maxRetries: 3 },
    )
    const message = await flaky.send()
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await waitFor(async () => (await backend.get(message.messageId))?.state === 'succeeded', { message: 'success' })
    await worker.stop()
    const record = await backend.get(message.messageId)
    expect(record?.attempts.map((a) => [a.number, a.error?.type, a.error?.message])).toEqual([
      [1, 'TypeError', 'first time fails'],
      [2, undefined, undefined],
    ])
    expect(record?.attempts[0]?.error?.stack).toContain('first time fails')
    expect(record?.options['retries']).toBe(1)
  })

  it('records a message whose retries ran out as dead, and one for an unknown state as skipped', async () => {
    const skipper: Middleware = {
      beforeProcessMessage: (_b, m) => {
        if (m.actorName === 'skipped') throw new SkipMessage()
      },
    }
    const { backend, broker } = await setup({ extra: [skipper] })
    const broken = actor(
      'broken',
      () => {
        throw new Error('always')
      },
      { broker, maxRetries: 1 },
    )
    const skipped = actor('skipped', () => undefined, { broker })
    const dead = await broken.send()
    const skip = await skipped.send()
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await waitFor(async () => (await backend.get(dead.messageId))?.state === 'dead', { message: 'dead' })
    await waitFor(async () => (await backend.get(skip.messageId))?.state === 'skipped', { message: 'skipped' })
    await worker.stop()
    expect((await backend.get(dead.messageId))?.attempts.map((a) => a.error?.message)).toEqual(['always', 'always'])
  })

  it('records a delayed message with its eta, and leaves out big arguments', async () => {
    const { backend, tracking, broker } = await setup({ maxArgsBytes: 300 })
    const job = actor('job', (_text: string) => undefined, { broker })
    const later = await job.sendWithOptions({ args: ['small'], delay: 60_000 })
    const big = await job.send('x'.repeat(1000))
    await tracking.flush()
    const delayed = await backend.get(later.messageId)
    expect(delayed?.state).toBe('delayed')
    expect(delayed?.eta).toBe(later.options.eta)
    const truncated = await backend.get(big.messageId)
    expect(truncated).toMatchObject({ argsTruncated: true, args: undefined, kwargs: undefined })
    expect(truncated?.body?.byteLength).toBeGreaterThan(1000)
  })

  it('writes the updates of one turn in one call', async () => {
    const backend = new CountingBackend()
    const { tracking, broker } = await setup({ backend })
    const job = actor('job', (_i: number) => undefined, { broker })
    await Promise.all(Array.from({ length: 200 }, (_, i) => job.send(i)))
    await tracking.flush()
    expect(backend.writes).toEqual([200])
    expect((await backend.list({ limit: 500 })).items).toHaveLength(200)
  })

  it('a backend that fails logs one warning per outage and does not fail the messages', async () => {
    const failing: TrackingBackend = {
      write: () => Promise.reject(new Error('tracking store down')),
      get: () => Promise.resolve(undefined),
      list: () => Promise.resolve({ items: [] }),
      delete: () => Promise.resolve(),
      requestCancel: () => Promise.reject(new Error('tracking store down')),
      clearCancel: () => Promise.reject(new Error('tracking store down')),
      subscribeCancels: () => Promise.reject(new Error('tracking store down')),
      claimUnique: () => Promise.reject(new Error('tracking store down')),
      releaseUnique: () => Promise.reject(new Error('tracking store down')),
      heartbeat: () => Promise.reject(new Error('tracking store down')),
      removeWorker: () => Promise.reject(new Error('tracking store down')),
      workers: () => Promise.reject(new Error('tracking store down')),
      addThroughput: () => Promise.reject(new Error('tracking store down')),
      throughput: () => Promise.reject(new Error('tracking store down')),
      acquireLease: () => Promise.reject(new Error('tracking store down')),
      releaseLease: () => Promise.reject(new Error('tracking store down')),
      scheduleMarks: () => Promise.reject(new Error('tracking store down')),
      advanceSchedule: () => Promise.reject(new Error('tracking store down')),
    }
    const { tracking, broker, logger } = await setup({ backend: failing })
    const ran: number[] = []
    const job = actor('job', (i: number) => void ran.push(i), { broker })
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    for (let i = 0; i < 3; i++) {
      await job.send(i)
      await tracking.flush()
    }
    await broker.join('default')
    await worker.stop()
    expect(ran.sort()).toEqual([0, 1, 2])
    const warnings = logger.entries.filter((e) => e.level === 'warn' && e.msg.includes('tracking update'))
    expect(warnings).toHaveLength(1)
  })
})
