// Found by the reliability suites (reliability/): `tq worker` gives a broker without a logger of
// its own the CLI's logger after construction; the consumers' log entries must go there.
import { Worker, actor } from '@tq/core'
import { Ledger, createCapturingLogger, uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, expect, it } from 'vitest'
import { deadLetterBodies, deleteQueues, newBroker, putRaw, rawClient, uniquePrefix } from './helpers.ts'

const raw = rawClient()
afterAll(() => raw.destroy())

it('logs an undecodable message through a logger set after the broker was built', async () => {
  const broker = newBroker({ queuePrefix: uniquePrefix('late') })
  const queueName = uniqueQueueName('late')
  const logger = createCapturingLogger()
  broker.logger = logger
  const ledger = new Ledger<string>()
  const good = actor('good', (x: string) => ledger.record(x), { broker, queueName })
  const worker = new Worker(broker, { workerTimeout: 100 })
  try {
    await putRaw(raw, broker, queueName, Buffer.from('not json'))
    await good.send('ok')
    await worker.start()
    await ledger.waitForTotal(1, 10_000)
    await waitFor(async () => (await deadLetterBodies(raw, broker, queueName)).length === 1, { timeout: 10_000 })
    const entry = logger.entries.find((e) => e.msg === 'Undecodable message dead-lettered')
    expect(entry?.meta).toMatchObject({ component: 'sqs', err: { type: 'DecodeError' } })
  } finally {
    await worker.stop()
    await deleteQueues(raw, broker)
    await broker.close()
  }
})
