/**
 * Groups and pipelines reading their results from RedisResultBackend on the in-memory
 * StubBroker (the backend works with any broker; cross-process.test.ts does the same on Redis).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { ResultFailureError, Results, StubBroker, Worker, defaultMiddleware, group, pipeline } from '@tq/core'
import { RedisResultBackend } from '../src/index.ts'
import { REDIS_URL, deleteMatching, rawClient, uniqueNamespace } from './helpers.ts'
import { declareActors } from './support/actors.ts'

const namespace = uniqueNamespace('composition')
const raw = rawClient()
const closers: Array<() => Promise<void>> = []

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

afterAll(async () => {
  await deleteMatching(raw, `${namespace}:*`)
  await raw.quit()
})

async function setup() {
  const backend = new RedisResultBackend({ url: REDIS_URL, namespace, usePrefixKeys: true })
  closers.push(() => backend.close())
  const broker = new StubBroker({ middleware: [...defaultMiddleware(), new Results({ backend })] })
  closers.push(() => broker.close())
  const actors = declareActors(broker)
  const worker = new Worker(broker, { workerTimeout: 50 })
  await worker.start()
  closers.push(() => worker.stop({ timeout: 1000 }))
  return { backend, broker, ...actors }
}

describe('composition on RedisResultBackend (StubBroker)', () => {
  it("collects a group's results in child order and counts completed children", async () => {
    const { broker, add } = await setup()
    const g = group(
      [add.message(1, 2), pipeline([add.message(1, 1), add.message(10)], { broker }), add.message(5, 6)],
      {
        broker,
      },
    )
    expect(await g.completedCount).toBe(0)
    expect(await g.completed).toBe(false)
    await g.run()
    expect(await g.collectResults({ block: true, timeout: 5000 })).toEqual([3, 12, 11])
    expect(await g.completedCount).toBe(3)
    expect(await g.completed).toBe(true)
  })

  it("reads a pipeline's result, every step's result and its completed count", async () => {
    const { broker, add } = await setup()
    const p = pipeline([add.message(1, 2), add.message(3), add.message(4)], { broker })
    await p.run()
    expect(await p.getResult({ block: true, timeout: 5000 })).toBe(10)
    expect(await p.collectResults()).toEqual([3, 6, 10])
    expect(await p.completedCount).toBe(3)
    expect(await p.completed).toBe(true)
  })

  it('stops a pipeline at a failed step and reports the failure', async () => {
    const { broker, add, fails } = await setup()
    const p = pipeline([add.message(1, 2), fails.message(), add.message(4)], { broker })
    await p.run()
    await broker.join('default', { failFast: false, timeout: 5000 })
    const results = p.getResults({ block: false })
    expect((await results.next()).value).toBe(3)
    const error = await results.next().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ResultFailureError)
    expect((error as ResultFailureError).origExcType).toBe('ValueError')
    expect((error as ResultFailureError).origExcMsg).toBe('boom')
    // As in Dramatiq, counting reads each step's result, so the stored failure surfaces.
    await expect(p.completedCount).rejects.toBeInstanceOf(ResultFailureError)
  })
})
