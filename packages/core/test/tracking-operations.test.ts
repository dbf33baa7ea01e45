// Cancellation races and deduplication rules, on the StubBroker with a StubTrackingBackend (the
// conformance suites run the main paths on every broker).
import { afterEach, describe, expect, it } from 'vitest'
import {
  Admin,
  InvalidArgumentError,
  Retries,
  StubBroker,
  StubTrackingBackend,
  Tracking,
  Worker,
  actor,
  currentMessage,
  type Middleware,
} from '../src/index.ts'
import { waitFor } from '../src/testing/index.ts'

const open: Array<{ broker: StubBroker; worker?: Worker }> = []

afterEach(async () => {
  for (const entry of open.splice(0)) {
    await entry.worker?.stop({ timeout: 2000 })
    await entry.broker.close()
  }
})

function setup(middleware: Middleware[] = [new Retries({ minBackoff: 1, maxBackoff: 5, maxRetries: 0 })]) {
  const backend = new StubTrackingBackend()
  const tracking = new Tracking({ backend, flushInterval: 1 })
  const broker = new StubBroker({ middleware: [...middleware, tracking] })
  const entry: { broker: StubBroker; worker?: Worker } = { broker }
  open.push(entry)
  const startWorker = async (): Promise<Worker> => {
    entry.worker = new Worker(broker, { workerTimeout: 20, concurrency: 8 })
    await entry.worker.start()
    return entry.worker
  }
  return { broker, backend, tracking, admin: new Admin({ broker }), startWorker }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('cancel', () => {
  it('racing with completion: every message ends succeeded or cancelled, runs at most once, none dead', async () => {
    const { broker, admin, tracking, startWorker } = setup([new Retries({ minBackoff: 1, maxRetries: 5 })])
    const runs = new Map<number, number>()
    const job = actor(
      'job',
      async (i: number) => {
        runs.set(i, (runs.get(i) ?? 0) + 1)
        await sleep(i % 5)
      },
      { broker },
    )
    const messages = await Promise.all(Array.from({ length: 40 }, (_, i) => job.send(i)))
    await tracking.flush()
    await startWorker()
    // Cancel each at a different moment: before, during and after its run.
    const results = await Promise.all(
      messages.map(async (message, i) => {
        await sleep(i % 7)
        return admin.cancel(message.messageId)
      }),
    )
    await broker.join('default')
    await tracking.flush()
    for (const [i, message] of messages.entries()) {
      const record = await admin.message(message.messageId)
      expect(['succeeded', 'cancelled']).toContain(record?.state)
      expect(runs.get(i) ?? 0).toBeLessThanOrEqual(1)
      if (results[i]?.cancelled === false) expect(record?.state).toBe('succeeded')
    }
    expect(broker.deadLetters).toHaveLength(0)
  })

  it('a second cancel of a cancelled message says it is cancelled already', async () => {
    const { broker, admin, tracking } = setup()
    const job = actor('job', () => undefined, { broker })
    const message = await job.send()
    await tracking.flush()
    expect((await admin.cancel(message.messageId)).cancelled).toBe(true)
    expect(await admin.cancel(message.messageId)).toEqual({
      messageId: message.messageId,
      cancelled: false,
      state: 'cancelled',
    })
  })

  it('a retried cancelled message runs: the retry withdraws the cancel', async () => {
    const { broker, admin, tracking, startWorker } = setup()
    const ran: number[] = []
    const job = actor('job', (n: number) => void ran.push(n), { broker })
    const message = await job.send(1)
    await tracking.flush()
    await admin.cancel(message.messageId)
    await startWorker()
    await broker.join('default')
    expect(ran).toEqual([])
    await admin.retry(message.messageId)
    await waitFor(async () => (await admin.message(message.messageId))?.state === 'succeeded', {
      timeout: 5000,
      message: 'ran on the retry',
    })
    expect(ran).toEqual([1])
  })
})

describe('a producer whose enqueue is recorded after the worker started the message', () => {
  // RabbitMQ confirms a publish after it delivered the message: in one process, the worker may
  // start a message before its producer's afterEnqueue runs.
  it('is not taken for a retry: the message ends succeeded, and a cancel still lands', async () => {
    const { broker, admin, tracking, startWorker } = setup()
    const gates: Array<() => void> = []
    const job = actor(
      'job',
      (mode: string) => {
        if (mode === 'quick') return undefined
        return new Promise<void>((resolve, reject) => {
          gates.push(resolve)
          currentMessage()?.signal.addEventListener('abort', () => reject(currentMessage()?.signal.reason as Error))
        })
      },
      { broker },
    )
    await startWorker()
    const late = async (mode: string) => {
      const message = job.message(mode)
      const began = Date.now()
      // Deliver it without the template's afterEnqueue, then run that hook late, as RabbitMQ's confirm would.
      await broker.enqueue(message.copy({ options: {} }))
      return { message, replay: () => tracking.afterEnqueue(broker, message, undefined, undefined, began) }
    }
    const held = await late('held')
    await waitFor(() => gates.length === 1, { timeout: 5000, message: 'running' })
    held.replay()
    gates[0]?.()
    await waitFor(async () => (await admin.message(held.message.messageId))?.state === 'succeeded', {
      timeout: 5000,
      message: 'succeeded, not stuck as retrying',
    })
    const cancelled = await late('held')
    await waitFor(() => gates.length === 2, { timeout: 5000, message: 'the second one running' })
    cancelled.replay()
    await waitFor(async () => (await admin.message(cancelled.message.messageId))?.state === 'running', {
      timeout: 5000,
      message: 'recorded running',
    })
    await admin.cancel(cancelled.message.messageId)
    await waitFor(async () => (await admin.message(cancelled.message.messageId))?.state === 'cancelled', {
      timeout: 5000,
      message: 'cancelled',
    })
  })
})

describe('deduplication', () => {
  const unique = { uniqueKey: 'k', uniqueFor: 60_000 }

  it('resolves a duplicate to the message holding the key, with its arguments', async () => {
    const { broker } = setup()
    const job = actor('job', (_n: number) => undefined, { broker })
    const first = await job.sendWithOptions({ args: [1], ...unique })
    const second = await job.sendWithOptions({ args: [2], ...unique })
    expect(second.messageId).toBe(first.messageId)
    expect(second.args).toEqual([1])
    expect((await broker.queueCounts('default')).ready).toBe(1)
    // Keys are per actor: another actor with the same key is not a duplicate.
    const other = actor('other', (_n: number) => undefined, { broker })
    expect((await other.sendWithOptions({ args: [3], ...unique })).messageId).not.toBe(first.messageId)
  })

  it("with uniqueUntil 'start', frees the key as soon as the message starts", async () => {
    const { broker, tracking, startWorker } = setup()
    const releases: Array<() => void> = []
    const started: number[] = []
    const job = actor(
      'job',
      (n: number) => {
        started.push(n)
        return new Promise<void>((resolve) => releases.push(resolve))
      },
      { broker },
    )
    const first = await job.sendWithOptions({ args: [1], ...unique, uniqueUntil: 'start' })
    await startWorker()
    await waitFor(() => started.length === 1, { timeout: 5000, message: 'started' })
    await tracking.flush()
    const second = await job.sendWithOptions({ args: [2], ...unique, uniqueUntil: 'start' })
    expect(second.messageId).not.toBe(first.messageId)
    await waitFor(() => started.length === 2, { timeout: 5000, message: 'the second one started' })
    for (const release of releases) release()
  })

  it('frees the key when the message dies or is cancelled, and after uniqueFor at the latest', async () => {
    const { broker, admin, tracking, startWorker } = setup()
    const job = actor(
      'job',
      (fail: boolean) => {
        if (fail) throw new Error('dies')
      },
      { broker },
    )
    const dies = await job.sendWithOptions({ args: [true], ...unique })
    await startWorker()
    await waitFor(async () => (await admin.message(dies.messageId))?.state === 'dead', {
      timeout: 5000,
      message: 'dead',
    })
    await tracking.flush()
    await open[0]?.worker?.stop()
    const queued = await job.sendWithOptions({ args: [false], ...unique })
    expect(queued.messageId).not.toBe(dies.messageId)
    await tracking.flush()
    await admin.cancel(queued.messageId)
    const next = await job.sendWithOptions({ args: [false], ...unique })
    expect(next.messageId).not.toBe(queued.messageId)
    // Short uniqueFor: the key lapses even while the message still waits.
    const brief = await job.sendWithOptions({ args: [false], uniqueKey: 'brief', uniqueFor: 30 })
    expect((await job.sendWithOptions({ args: [false], uniqueKey: 'brief', uniqueFor: 30 })).messageId).toBe(
      brief.messageId,
    )
    await sleep(60)
    expect((await job.sendWithOptions({ args: [false], uniqueKey: 'brief', uniqueFor: 30 })).messageId).not.toBe(
      brief.messageId,
    )
  })

  it('keeps the key through retries: a send while the message waits for its retry is a duplicate', async () => {
    const { broker, admin, tracking, startWorker } = setup([new Retries({ minBackoff: 200, maxBackoff: 200 })])
    let runs = 0
    const job = actor(
      'job',
      () => {
        runs++
        if (runs === 1) throw new Error('first run fails')
      },
      { broker },
    )
    const first = await job.sendWithOptions({ ...unique })
    await startWorker()
    await waitFor(async () => (await admin.message(first.messageId))?.state === 'retrying', {
      timeout: 5000,
      message: 'retrying',
    })
    await tracking.flush()
    expect((await job.sendWithOptions({ ...unique })).messageId).toBe(first.messageId)
    await waitFor(async () => (await admin.message(first.messageId))?.state === 'succeeded', {
      timeout: 5000,
      message: 'succeeded on its retry',
    })
    expect(runs).toBe(2)
  })

  it('refuses bad unique options with InvalidArgumentError, enqueuing nothing', async () => {
    const { broker } = setup()
    const job = actor('job', () => undefined, { broker })
    await expect(job.sendWithOptions({ uniqueKey: 'k' })).rejects.toThrow(/uniqueKey needs uniqueFor/)
    await expect(job.sendWithOptions({ uniqueKey: 'k', uniqueFor: -1 })).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(
      job.sendWithOptions({ uniqueKey: 'k', uniqueFor: 1000, uniqueUntil: 'never' as 'start' }),
    ).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(job.sendWithOptions({ uniqueKey: '', uniqueFor: 1000 })).rejects.toBeInstanceOf(InvalidArgumentError)
    expect((await broker.queueCounts('default')).ready).toBe(0)
  })

  it('takes uniqueFor and uniqueUntil from the actor options', async () => {
    const { broker } = setup()
    const job = actor('job', () => undefined, { broker, uniqueFor: 60_000 })
    const first = await job.sendWithOptions({ uniqueKey: 'from-actor' })
    expect((await job.sendWithOptions({ uniqueKey: 'from-actor' })).messageId).toBe(first.messageId)
  })

  it('without Tracking, a uniqueKey is an unknown option', async () => {
    const broker = new StubBroker({ middleware: [] })
    open.push({ broker })
    const job = actor('job', () => undefined, { broker })
    await expect(job.sendWithOptions({ uniqueKey: 'k', uniqueFor: 1000 })).rejects.toThrow(/unknown message option/)
  })
})
