// Found by the reliability suites (reliability/): after an SQS outage longer than a few
// seconds, consumers retried receives on a backoff that grew to 5 s, so they took up to 5 s
// more to notice the endpoint was back. The backoff now stops at 1 s.
import { Worker, actor, createLogger, type LogEntry } from '@tq/core'
import { Ledger, uniqueQueueName } from '@tq/core/testing'
import { expect, it } from 'vitest'
import { SqsBroker } from '../src/index.ts'

interface App {
  listen(options: { host: string; port: number }): Promise<string>
  close(): Promise<void>
}

/** fauxqs on 127.0.0.1 that can stop and start again on the same port with the same state. */
async function restartableFauxqs(): Promise<{ start(): Promise<void>; stop(): Promise<void>; endpoint(): string }> {
  const entry = import.meta.resolve('fauxqs')
  const { buildApp } = (await import('fauxqs')) as unknown as { buildApp: (options: object) => App }
  const store = async (path: string, name: string): Promise<unknown> => {
    const Store = ((await import(new URL(path, entry).href)) as Record<string, new () => unknown>)[name]
    if (!Store) throw new Error(`fauxqs has no ${name}`)
    return new Store()
  }
  const stores = {
    sqsStore: await store('./sqs/sqsStore.js', 'SqsStore'),
    snsStore: await store('./sns/snsStore.js', 'SnsStore'),
    s3Store: await store('./s3/s3Store.js', 'S3Store'),
  }
  let app: App | undefined
  let port = 0
  return {
    async start() {
      app = buildApp({ logger: false, defaultRegion: 'us-east-1', stores })
      port = Number(new URL(await app.listen({ host: '127.0.0.1', port })).port)
    },
    async stop() {
      await app?.close()
      app = undefined
    },
    endpoint: () => `http://127.0.0.1:${port}`,
  }
}

it('a consumer receives again within about a second of the endpoint coming back after a long outage', async () => {
  const server = await restartableFauxqs()
  await server.start()
  const entries: LogEntry[] = []
  const broker = new SqsBroker({
    endpoint: server.endpoint(),
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    clientConfig: { maxAttempts: 1 },
    waitTimeSeconds: 1,
    closeTimeout: 0,
    middleware: [],
    logger: createLogger((e) => entries.push(e)),
  })
  const queueName = uniqueQueueName('outage')
  const ledger = new Ledger<string>()
  const job = actor('job', (x: string) => ledger.record(x), { broker, queueName })
  const worker = new Worker(broker, { workerTimeout: 100 })
  try {
    await job.send('before')
    await worker.start()
    await ledger.waitForTotal(1, 5000)
    await server.stop()
    // Long enough for a doubling backoff to pass 1 s several times over.
    await new Promise((r) => setTimeout(r, 4000))
    await server.start()
    const backAt = Date.now()
    await job.send('after')
    await ledger.waitForTotal(2, 5000)
    expect(Date.now() - backAt).toBeLessThan(2000)
    const delays = entries
      .map((e) => /^Receiving from .* failed; retrying in (\d+) ms/.exec(e.msg)?.[1])
      .filter((d): d is string => d !== undefined)
      .map(Number)
    expect(Math.max(...delays)).toBe(1000)
    // One warning for the outage, the retries at debug level, one line when it is over.
    // (one per consumer: the queue and its delay queue)
    expect(
      entries.filter((e) => e.level === 'warn' && /^Receiving from .* failed/.test(e.msg)).length,
    ).toBeLessThanOrEqual(2)
    expect(entries.some((e) => /^Receiving from .* again$/.test(e.msg))).toBe(true)
  } finally {
    await worker.stop()
    await broker.close()
    await server.stop()
  }
}, 20_000)
