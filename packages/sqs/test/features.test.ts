import { GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs'
import {
  InvalidArgumentError,
  Message,
  MessageTooLargeError,
  Worker,
  actor,
  createBroker,
  registerBroker,
  dqName,
  type Encoder,
  type MessageProxy,
} from '@tq/core'
import { Ledger, createCapturingLogger, deferred, uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { BODY_ENCODING_ATTRIBUTE, SqsBroker, brokerPlugin, type SqsBrokerOptions } from '../src/index.ts'
import {
  SQS_ENDPOINT,
  SQS_EXTERNAL,
  SQS_REGION,
  TIME_SCALE,
  deadLetterBodies,
  deleteQueues,
  newBroker,
  peek,
  putRaw,
  rawClient,
  recordCommands,
  uniquePrefix,
} from './helpers.ts'

const raw = rawClient()
const prefix = uniquePrefix('feat')
const open: Array<{ broker: SqsBroker; workers: Worker[] }> = []
const t = (ms: number): number => ms * TIME_SCALE

afterEach(async () => {
  for (const { broker, workers } of open.splice(0)) {
    for (const w of workers) await w.stop({ timeout: 5000 })
    await broker.close()
    await deleteQueues(raw, broker)
  }
})
afterAll(() => raw.destroy())

function setup(options: SqsBrokerOptions = {}): {
  broker: SqsBroker
  queueName: string
  startWorker: (opts?: ConstructorParameters<typeof Worker>[1]) => Promise<Worker>
} {
  const broker = newBroker({ queuePrefix: prefix, ...options })
  const entry = { broker, workers: [] as Worker[] }
  open.push(entry)
  return {
    broker,
    queueName: uniqueQueueName('f'),
    startWorker: async (opts = {}) => {
      const worker = new Worker(broker, { workerTimeout: 100, ...opts })
      entry.workers.push(worker)
      await worker.start()
      return worker
    },
  }
}

describe('queues', () => {
  it('creates q, q_DQ and q_XQ, with a redrive policy from both to the dead-letter queue', async () => {
    const { broker } = setup({ maxReceiveCount: 7 })
    broker.declareQueue('orders.eu')
    expect(broker.sqsQueueName('orders.eu')).toBe(`${prefix}orders_eu`)
    expect(broker.sqsQueueName('orders.eu.DQ')).toBe(`${prefix}orders_eu_DQ`)
    expect(broker.sqsQueueName('orders.eu.XQ')).toBe(`${prefix}orders_eu_XQ`)
    const xq = await broker.getQueueUrl('orders.eu.XQ')
    const { Attributes: xqAttributes } = await raw.send(
      new GetQueueAttributesCommand({ QueueUrl: xq, AttributeNames: ['QueueArn'] }),
    )
    for (const name of ['orders.eu', 'orders.eu.DQ']) {
      const url = await broker.getQueueUrl(name)
      expect(url.endsWith(broker.sqsQueueName(name))).toBe(true)
      const { Attributes } = await raw.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['RedrivePolicy', 'MessageRetentionPeriod'] }),
      )
      expect(JSON.parse(Attributes?.RedrivePolicy ?? '{}')).toEqual({
        deadLetterTargetArn: xqAttributes?.QueueArn,
        maxReceiveCount: expect.stringMatching(/^7$/) as unknown,
      })
      expect(Attributes?.MessageRetentionPeriod).toBe('1209600')
    }
  })

  it('refuses queue names longer than SQS allows, and names that collide after mapping', () => {
    const { broker } = setup()
    const long = `q${'x'.repeat(80 - prefix.length - 3)}`
    expect(() => broker.declareQueue(long)).toThrow(InvalidArgumentError)
    expect(() => broker.declareQueue(long)).toThrow(/at most 80/)
    broker.declareQueue(long.slice(0, -1))
    broker.declareQueue('a.b')
    expect(() => broker.declareQueue('a_b')).toThrow(/both map to the SQS queue/)
    expect(() => newBroker({ queuePrefix: 'bad.prefix' })).toThrow(InvalidArgumentError)
  })

  it('creates a queue again when it is deleted under the broker', async () => {
    const { broker, queueName, startWorker } = setup()
    const ledger = new Ledger<string>()
    const rec = actor('rec', (x: string) => ledger.record(x), { broker, queueName })
    await rec.send('before')
    const { QueueUrl } = await raw.send(new GetQueueUrlCommand({ QueueName: broker.sqsQueueName(queueName) }))
    await deleteQueues(raw, broker)
    expect(QueueUrl).toBeDefined()
    await rec.send('after')
    await startWorker()
    await ledger.waitForTotal(1, t(5000))
    expect(ledger.order).toEqual(['after'])
  })
})

describe('sending', () => {
  it('refuses a message over 256 KiB at send() with MessageTooLargeError, and sends one just under', async () => {
    const { broker, queueName, startWorker } = setup()
    const got = deferred<number>()
    const big = actor('big', (s: string) => got.resolve(s.length), { broker, queueName })
    const error = await big.send('x'.repeat(262_144)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(MessageTooLargeError)
    expect((error as MessageTooLargeError).limit).toBe(262_144)
    expect((error as MessageTooLargeError).size).toBeGreaterThan(262_144)
    expect((error as Error).message).toMatch(/SQS takes at most 262144 bytes/)
    const counts = await broker.messageCounts(queueName)
    expect(counts.visible + counts.delayed).toBe(0)
    // Leave room for the rest of the message (ids, names, keys).
    await big.send('y'.repeat(262_144 - 400))
    await startWorker()
    expect(await got.promise).toBe(262_144 - 400)
  })

  it('sends 1,000 messages with SendMessageBatch, and each is processed once', async () => {
    const { broker, queueName, startWorker } = setup()
    const commands = recordCommands(broker.client)
    const ledger = new Ledger<number>()
    const rec = actor('rec', (i: number) => ledger.record(i), { broker, queueName })
    const sent = await broker.enqueueMany(Array.from({ length: 1000 }, (_, i) => rec.message(i)))
    expect(sent).toHaveLength(1000)
    expect(commands.count('SendMessageBatchCommand')).toBe(100)
    expect(commands.count('SendMessageCommand')).toBe(0)
    await startWorker({ concurrency: 16 })
    await ledger.waitForTotal(1000, t(30_000))
    await broker.join(queueName, { timeout: t(10_000) })
    expect(ledger.counts.size).toBe(1000)
    expect(ledger.duplicates).toEqual([])
    // Acks were coalesced: far fewer delete calls than messages.
    expect(commands.count('DeleteMessageBatchCommand')).toBeLessThan(300)
    expect(commands.count('DeleteMessageCommand')).toBe(0)
  })

  it('carries bodies that are not SQS text as base64 with a marker attribute', async () => {
    // An encoder whose bytes are not valid UTF-8: JSON behind a 0xff byte.
    const json = new TextEncoder()
    const encoder: Encoder = {
      encode: (data) => Buffer.concat([Buffer.from([0xff]), json.encode(JSON.stringify(data))]),
      decode: (bytes) => JSON.parse(Buffer.from(bytes).subarray(1).toString('utf8')) as Record<string, unknown>,
    }
    const { broker, queueName, startWorker } = setup({ encoder })
    const got = deferred<string>()
    const echo = actor('echo', (s: string) => got.resolve(s), { broker, queueName })
    await echo.send('binary ✓')
    const [queued] = await peek(raw, await broker.getQueueUrl(queueName))
    expect(queued?.MessageAttributes?.[BODY_ENCODING_ATTRIBUTE]?.StringValue).toBe('base64')
    expect(Buffer.from(queued?.Body ?? '', 'base64')[0]).toBe(0xff)
    await startWorker()
    expect(await got.promise).toBe('binary ✓')
  })
})

describe('consuming', () => {
  it('coalesces acks issued together into one DeleteMessageBatch call', async () => {
    const { broker, queueName } = setup()
    const noop = actor('noop', () => undefined, { broker, queueName })
    await broker.enqueueMany(Array.from({ length: 10 }, () => noop.message()))
    const consumer = broker.consume(queueName, { prefetch: 10, timeout: t(2000) })
    const got: MessageProxy[] = []
    await waitFor(async () => (got.push(...(await consumer.receive())), got.length === 10), {
      timeout: t(5000),
      message: '10 deliveries',
    })
    const commands = recordCommands(broker.client)
    await Promise.all(got.map((m) => consumer.ack(m)))
    expect(
      commands.calls
        .filter((c) => c.command === 'DeleteMessageBatchCommand')
        .map((c) => (c.input['Entries'] as unknown[]).length),
    ).toEqual([10])
    await consumer.close()
    await broker.join(queueName, { timeout: t(5000) })
  })

  it('dead-letters undecodable bodies with the reason logged, never delivering them', async () => {
    const logger = createCapturingLogger()
    const { broker, queueName, startWorker } = setup({ logger })
    const ledger = new Ledger<string>()
    const seen: string[] = []
    const good = actor('good', (x: string) => ledger.record(x), { broker, queueName })
    broker.addMiddleware({ beforeProcessMessage: (_b, m) => void seen.push(m.actorName) })
    await putRaw(raw, broker, queueName, Buffer.from('{"queue_name": 1}'))
    await good.send('ok')
    await startWorker()
    await ledger.waitForTotal(1, t(5000))
    await waitFor(async () => (await deadLetterBodies(raw, broker, queueName)).length === 1, { timeout: t(5000) })
    expect(seen).toEqual(['good'])
    const entry = logger.entries.find((e) => e.msg === 'Undecodable message dead-lettered')
    expect(entry?.level).toBe('error')
    expect(entry?.meta['reason']).toMatch(/queue_name must be a string/)
  })

  it('with deadLetter: false, a nacked message is deleted and no XQ exists', async () => {
    const { broker, queueName } = setup({ deadLetter: false })
    const noop = actor('noop', () => undefined, { broker, queueName })
    await noop.send()
    const consumer = broker.consume(queueName, { prefetch: 1, timeout: t(2000) })
    const [m] = await consumer.receive()
    await consumer.nack(m as MessageProxy)
    await consumer.close()
    await broker.join(queueName, { timeout: t(5000) })
    await expect(broker.getQueueUrl(`${queueName}.XQ`)).rejects.toThrow(/deadLetter: false/)
    const missing = await raw
      .send(new GetQueueUrlCommand({ QueueName: broker.sqsQueueName(`${queueName}.XQ`) }))
      .catch((e: unknown) => e)
    expect((missing as Error).name).toBe('QueueDoesNotExist')
  })

  it('extends the visibility of a long-running message so it is processed once', async () => {
    const { broker, queueName, startWorker } = setup({ visibilityTimeout: 2 })
    const commands = recordCommands(broker.client)
    const ledger = new Ledger<string>()
    const deliveries: boolean[] = []
    const slow = actor(
      'slow',
      async (x: string) => {
        ledger.record(x)
        await new Promise((resolve) => setTimeout(resolve, 5000))
      },
      { broker, queueName },
    )
    broker.addMiddleware({ beforeProcessMessage: (_b, m) => void deliveries.push(m.redelivered) })
    await slow.send('long')
    // Two slots: had the visibility lapsed, this worker would receive the message again and run it.
    await startWorker({ concurrency: 2 })
    await ledger.waitForTotal(1, t(5000))
    await broker.join(queueName, { timeout: t(10_000), interval: 200 })
    expect(ledger.order).toEqual(['long'])
    expect(deliveries).toEqual([false])
    const extensions = commands.calls.filter(
      (c) =>
        c.command === 'ChangeMessageVisibilityBatchCommand' &&
        (c.input['Entries'] as Array<{ VisibilityTimeout: number }>).every((e) => e.VisibilityTimeout === 2),
    )
    expect(extensions.length).toBeGreaterThanOrEqual(3)
  }, 20_000)
})

describe('delays', () => {
  it('sends a long delay with DelaySeconds capped at 900 and keeps it in the delay queue', async () => {
    const { broker, queueName } = setup()
    const commands = recordCommands(broker.client)
    const later = actor('later', () => undefined, { broker, queueName })
    const sent = await later.sendWithOptions({ args: [], delay: 16 * 60_000 })
    expect(sent.queueName).toBe(dqName(queueName))
    const send = commands.calls.find((c) => c.command === 'SendMessageCommand')
    expect(send?.input['DelaySeconds']).toBe(900)
    const counts = await broker.messageCounts(dqName(queueName))
    expect(counts.delayed).toBe(1)
  })

  it('a 16-minute delay hops through the delay queue with its remaining delay, never running early', async () => {
    const logger = createCapturingLogger()
    const { broker, queueName, startWorker } = setup({ logger, maxDelaySeconds: 1, delayHoldWindow: 0 })
    const ran: number[] = []
    const later = actor('later', () => void ran.push(Date.now()), { broker, queueName })
    const sent = await later.sendWithOptions({ args: [], delay: 16 * 60_000 })
    const hops = (): Array<Record<string, unknown>> =>
      logger.entries.filter((e) => e.msg === 'Delayed message sent again to wait for its eta').map((e) => e.meta)
    await startWorker()
    await waitFor(() => hops().length >= 2, { timeout: t(8000), message: 'two hops' })
    expect(ran).toEqual([])
    for (const hop of hops()) {
      expect(hop['messageId']).toBe(sent.messageId)
      expect(hop['eta']).toBe(sent.options.eta)
      expect(hop['delaySeconds']).toBe(1)
    }
    // One copy, waiting in the delay queue (a hop briefly has two: the new one is sent before the old is deleted).
    await waitFor(
      async () => {
        const counts = await broker.messageCounts(dqName(queueName))
        return counts.visible + counts.notVisible + counts.delayed === 1
      },
      { timeout: t(3000), message: 'one copy in the delay queue' },
    )
    expect(ran).toEqual([])
  })

  it('a delay longer than the hop runs once, at its eta', async () => {
    const logger = createCapturingLogger()
    const { broker, queueName, startWorker } = setup({ logger, maxDelaySeconds: 1, delayHoldWindow: 0 })
    const ledger = new Ledger<number>()
    const later = actor('later', () => ledger.record(Date.now()), { broker, queueName })
    await startWorker()
    const sent = await later.sendWithOptions({ args: [], delay: 3200 })
    await ledger.waitForTotal(1, t(10_000))
    await broker.join(queueName, { timeout: t(5000) })
    expect(ledger.total).toBe(1)
    expect(ledger.order[0]).toBeGreaterThanOrEqual(sent.options.eta as number)
    expect(
      logger.entries.filter((e) => e.msg === 'Delayed message sent again to wait for its eta').length,
    ).toBeGreaterThanOrEqual(1)
  })
})

describe('client', () => {
  it('uses a client it is given and leaves it open on close()', async () => {
    const client = rawClient()
    try {
      const broker = new SqsBroker({ client, queuePrefix: prefix, waitTimeSeconds: 1, closeTimeout: 0, middleware: [] })
      open.push({ broker, workers: [] })
      expect(broker.client).toBe(client)
      const queueName = uniqueQueueName('c')
      broker.declareQueue(queueName)
      const url = await broker.getQueueUrl(queueName)
      await broker.close()
      // Still usable: the broker did not destroy it.
      const { Attributes } = await client.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
      )
      expect(Attributes?.QueueArn).toMatch(/:tqt-feat-/)
      expect(() => new SqsBroker({ client, region: 'eu-west-1' })).toThrow(InvalidArgumentError)
    } finally {
      client.destroy()
    }
  })
})

describe('brokerPlugin', () => {
  it('builds a working broker from an sqs:// URL', async () => {
    if (SQS_EXTERNAL) return
    const endpoint = new URL(SQS_ENDPOINT)
    registerBroker(brokerPlugin)
    const broker = createBroker(
      `sqs://test:test@${endpoint.host}?secure=false&region=${SQS_REGION}&prefix=${prefix}url-&waitTimeSeconds=1`,
    ) as SqsBroker
    open.push({ broker, workers: [] })
    expect(broker).toBeInstanceOf(SqsBroker)
    expect(broker.queuePrefix).toBe(`${prefix}url-`)
    const queueName = uniqueQueueName('u')
    broker.declareQueue(queueName)
    const message = new Message({ queueName, actorName: 'x', args: [1] })
    await broker.enqueue(message)
    const consumer = broker.consume(queueName, { timeout: t(3000) })
    const [got] = await consumer.receive()
    expect(got?.messageId).toBe(message.messageId)
    await consumer.ack(got as MessageProxy)
    await consumer.close()
  })
})
