import { Message, Worker, actor } from '@tq/core'
import { Ledger, uniqueQueueName } from '@tq/core/testing'
import { afterAll, afterEach, expect, it } from 'vitest'
import { RedisBroker } from '../src/index.ts'
import type { ScriptArg, ScriptName } from '../src/scripts.ts'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

// Dramatiq moves a due delayed message with an enqueue and then an ack: a crash between the two
// runs it twice (#431). tq's worker calls the consumer's `promote`, one Lua script.

const namespace = uniqueNamespace('promote')
const raw = rawClient()
const brokers: RedisBroker[] = []
const workers: Worker[] = []

class CountingBroker extends RedisBroker {
  readonly calls: ScriptName[] = []
  protected override run(...call: [ScriptName, ScriptArg[], ScriptArg[], boolean?]): Promise<unknown> {
    this.calls.push(call[0])
    return super.run(...call)
  }
}

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeout: 5000 })
  for (const b of brokers.splice(0)) await b.close()
})
afterAll(async () => {
  await deleteNamespace(raw, namespace)
  raw.disconnect()
})

it('promotes a due delayed message in one script call, with a new Redis id and no eta', async () => {
  const broker = new CountingBroker({ url: REDIS_URL, namespace, middleware: [] })
  brokers.push(broker)
  const queueName = uniqueQueueName('promote')
  const ledger = new Ledger<string>()
  const seen: Message[] = []
  const later = actor('later', (x: string) => ledger.record(x), { broker, queueName })
  broker.addMiddleware({ beforeProcessMessage: (_b, m) => void seen.push(m.message) })
  const sent = await later.sendWithOptions({ args: ['x'], delay: 50 })
  const worker = new Worker(broker, { workerTimeout: 50 })
  workers.push(worker)
  await worker.start()
  await ledger.waitForTotal(1)
  await broker.join(queueName, { timeout: 5000 })
  expect(broker.calls.filter((c) => c === 'promote')).toHaveLength(1)
  // The delivery was settled by the promote call, not by a separate ack on the delay queue.
  expect(broker.calls.filter((c) => c === 'enqueue')).toHaveLength(1)
  const run = seen[0] as Message
  expect(run.messageId).toBe(sent.messageId)
  expect(run.queueName).toBe(queueName)
  expect('eta' in run.options).toBe(false)
  expect(run.options.redisMessageId).not.toBe(sent.options.redisMessageId)
  expect(await raw.hlen(`${namespace}:${queueName}.DQ.msgs`)).toBe(0)
  expect(await raw.exists(`${namespace}:__acks__.${broker.brokerId}.${queueName}.DQ`)).toBe(0)
})

it('does not promote a delivery that is no longer in its ack set (maintenance gave it away)', async () => {
  const broker = new RedisBroker({ url: REDIS_URL, namespace, middleware: [] })
  brokers.push(broker)
  const queueName = uniqueQueueName('promote')
  const later = actor('later', () => undefined, { broker, queueName })
  await later.sendWithOptions({ args: [], delay: 1 })
  const consumer = broker.consume(`${queueName}.DQ`, { prefetch: 1, timeout: 2000 })
  const [delivery] = await consumer.receive()
  expect(delivery).toBeDefined()
  const acks = `${namespace}:__acks__.${broker.brokerId}.${queueName}.DQ`
  // What a live worker's maintenance does to a worker it thinks is dead: requeue the id.
  const [id] = await raw.smembers(acks)
  await raw.srem(acks, id as string)
  await raw.rpush(`${namespace}:${queueName}.DQ`, id as string)
  const { eta: _eta, ...options } = delivery!.options
  await consumer.promote!(delivery!, new Message({ ...delivery!.message.asDict(), queueName, options }))
  // Not promoted here: the other worker will promote it. One copy, still in the delay queue.
  expect(await raw.llen(`${namespace}:${queueName}`)).toBe(0)
  expect(await raw.llen(`${namespace}:${queueName}.DQ`)).toBe(1)
  expect(await raw.hlen(`${namespace}:${queueName}.DQ.msgs`)).toBe(1)
  await consumer.close()
})
