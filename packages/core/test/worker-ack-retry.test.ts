// Found by the reliability suites (reliability/): after an SQS outage of one second, every
// worker slot sat in a 5 s pause before retrying its failed ack, so nothing ran for 5 s. Acks
// are now retried after 100 ms, the pause doubling up to `ackRetryDelay`.
import { describe, expect, it } from 'vitest'
import { ConnectionClosedError, StubBroker, Worker, actor, type ConsumeOptions, type Consumer } from '../src/index.ts'
import { Ledger, createCapturingLogger } from '../src/testing/index.ts'

/** A StubBroker whose acks fail with a connection error until `healAt` (Unix ms). */
class OutageBroker extends StubBroker {
  healAt = 0
  override consume(queueName: string, options?: ConsumeOptions): Consumer {
    const inner = super.consume(queueName, options)
    const ack = inner.ack.bind(inner)
    inner.ack = async (m) => {
      if (Date.now() < this.healAt) throw new ConnectionClosedError('connection lost')
      return ack(m)
    }
    return inner
  }
}

describe('Worker ack retries', () => {
  it('retries a failed ack within milliseconds of the broker coming back, whatever ackRetryDelay is', async () => {
    const logger = createCapturingLogger()
    const broker = new OutageBroker({ middleware: [], logger })
    const ledger = new Ledger<number>()
    const work = actor('work', (i: number) => ledger.record(i), { broker })
    const worker = new Worker(broker, { concurrency: 1, workerTimeout: 20 })
    await worker.start()
    const healAt = (broker.healAt = Date.now() + 250)
    const first = await work.send(1)
    await work.send(2)
    await ledger.waitForTotal(2, 1500)
    await broker.join('default', { timeout: 1000 })
    // join() returns once the acks are confirmed: right after the outage ends.
    expect(Date.now() - healAt).toBeLessThan(400)
    await worker.stop()
    const delays = logger.entries
      .filter((e) => e.meta.messageId === first.messageId)
      .map((e) => /^Could not ack message; retrying in (\d+) ms$/.exec(e.msg)?.[1])
      .filter((d): d is string => d !== undefined)
      .map(Number)
    // 100, 200, … : the outage lasted 250 ms, so two or three retries.
    expect(delays[0]).toBe(100)
    expect(delays.every((d, i) => i === 0 || d === (delays[i - 1] as number) * 2)).toBe(true)
  })

  it('runs the next message while an ack waits for the broker', async () => {
    const broker = new OutageBroker({ middleware: [] })
    const ledger = new Ledger<number>()
    const work = actor('work', (i: number) => ledger.record(i), { broker })
    const worker = new Worker(broker, { concurrency: 1, workerTimeout: 20 })
    await worker.start()
    broker.healAt = Date.now() + 60_000
    await work.send(1)
    await work.send(2)
    // Both ran although the first ack has not gone through.
    await ledger.waitForTotal(2, 1000)
    broker.healAt = 0
    await broker.join('default', { timeout: 2000 })
    await worker.join({ timeout: 2000 })
    await worker.stop()
  })

  it('never pauses longer than ackRetryDelay', async () => {
    const logger = createCapturingLogger()
    const broker = new OutageBroker({ middleware: [], logger })
    const ledger = new Ledger<number>()
    const work = actor('work', (i: number) => ledger.record(i), { broker })
    const worker = new Worker(broker, { workerTimeout: 20, ackRetryDelay: 30 })
    await worker.start()
    broker.healAt = Date.now() + 200
    await work.send(1)
    await ledger.waitForTotal(1, 1000)
    await broker.join('default', { timeout: 1000 })
    await worker.stop()
    const delays = logger.entries
      .map((e) => /retrying in (\d+) ms$/.exec(e.msg)?.[1])
      .filter((d): d is string => d !== undefined)
      .map(Number)
    expect(delays.length).toBeGreaterThan(1)
    expect(Math.max(...delays)).toBe(30)
  })
})
