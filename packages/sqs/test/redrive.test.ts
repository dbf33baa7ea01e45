import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SendMessageBatchCommand, SendMessageCommand } from '@aws-sdk/client-sqs'
import {
  BrokerClosedError,
  Message,
  QueueNotFoundError,
  SkipMessage,
  Worker,
  actor,
  dqName,
  xqName,
  type Encoder,
} from '@tq/core'
import { Ledger, uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { BODY_ENCODING_ATTRIBUTE, fromSqsBody, toSqsBody, type SqsBroker, type SqsBrokerOptions } from '../src/index.ts'
import {
  SQS_ENDPOINT,
  SQS_EXTERNAL,
  SQS_REGION,
  TIME_SCALE,
  deleteQueues,
  newBroker,
  peek,
  rawClient,
  recordCommands,
  uniquePrefix,
} from './helpers.ts'

const here = dirname(fileURLToPath(import.meta.url))
const raw = rawClient()
const prefix = uniquePrefix('redrive')
const open: SqsBroker[] = []
const workers: Worker[] = []
const t = (ms: number): number => ms * TIME_SCALE

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop({ timeout: 5000 })
  for (const broker of open.splice(0)) {
    await broker.close()
    await deleteQueues(raw, broker)
  }
})
afterAll(() => raw.destroy())

function setup(options: SqsBrokerOptions = {}): { broker: SqsBroker; queueName: string } {
  const broker = newBroker({ queuePrefix: prefix, ...options })
  open.push(broker)
  const queueName = uniqueQueueName('r')
  broker.declareQueue(queueName)
  return { broker, queueName }
}

/** A dead letter as tq leaves it: the message of `queue` (or its delay queue) after failed retries. */
function deadMessage(queueName: string, i: number, fromDelayQueue = false): Message {
  return new Message({
    queueName: fromDelayQueue ? dqName(queueName) : queueName,
    actorName: 'job',
    args: [i],
    kwargs: {},
    options: {
      retries: 3,
      traceback: 'Error: dies',
      requeueTimestamp: 1_700_000_000_000,
      ...(fromDelayQueue ? { eta: Date.now() + 3_600_000 } : {}),
      maxRetries: 5,
    },
  })
}

/** Put dead letters in `q.XQ` the way a nack does (the body sent unchanged), 10 a call. */
async function putDeadLetters(broker: SqsBroker, messages: readonly Message[]): Promise<void> {
  const queueName = messages[0]?.queueName ?? ''
  const url = await broker.getQueueUrl(xqName(queueName.replace(/\.DQ$/, '')))
  const calls: Array<Promise<unknown>> = []
  for (let i = 0; i < messages.length; i += 10) {
    const entries = messages.slice(i, i + 10).map((m, j) => {
      const body = toSqsBody(m.encode(broker.encoder))
      return {
        Id: String(j),
        MessageBody: body.body,
        ...(body.attributes ? { MessageAttributes: body.attributes } : {}),
      }
    })
    calls.push(raw.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries })))
    if (calls.length === 20) await Promise.all(calls.splice(0))
  }
  await Promise.all(calls)
}

/** The tq messages visible in one SQS queue (read and made visible again). */
async function messagesIn(broker: SqsBroker, queueName: string): Promise<Message[]> {
  const found = await peek(raw, await broker.getQueueUrl(queueName))
  return found.map((m) => Message.decode(fromSqsBody(m), broker.encoder))
}

describe('redriveDeadLetters', () => {
  it('returns 0 for an empty dead-letter queue, and with deadLetter: false', async () => {
    const { broker, queueName } = setup()
    expect(await broker.redriveDeadLetters(queueName)).toBe(0)
    const off = setup({ deadLetter: false })
    expect(await off.broker.redriveDeadLetters(off.queueName)).toBe(0)
    await expect(broker.redriveDeadLetters('not_declared')).rejects.toBeInstanceOf(QueueNotFoundError)
    await expect(broker.redriveDeadLetters(queueName, { limit: -1 })).rejects.toThrow(/limit/)
    await broker.close()
    await expect(broker.redriveDeadLetters(queueName)).rejects.toBeInstanceOf(BrokerClosedError)
  })

  it('moves exactly `limit`, 10 per round trip, each as a fresh message due now on the canonical queue', async () => {
    const { broker, queueName } = setup()
    const dead = Array.from({ length: 25 }, (_, i) => deadMessage(queueName, i, i % 5 === 0))
    await putDeadLetters(broker, dead)
    const commands = recordCommands(broker.client)

    expect(await broker.redriveDeadLetters(queueName, { limit: 13 })).toBe(13)
    // One count, then per batch of 10: a receive, a send and a delete.
    expect(commands.count('GetQueueAttributesCommand')).toBe(1)
    expect(commands.count('ReceiveMessageCommand')).toBe(2)
    expect(commands.count('SendMessageBatchCommand')).toBe(2)
    expect(commands.count('DeleteMessageBatchCommand')).toBe(2)
    expect(commands.count('SendMessageCommand') + commands.count('DeleteMessageCommand')).toBe(0)
    expect(
      commands.calls.filter((c) => c.command === 'ReceiveMessageCommand').map((c) => c.input['MaxNumberOfMessages']),
    ).toEqual([10, 3])
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 13, dead: 12, delayed: 0, running: 0 })

    expect(await broker.redriveDeadLetters(queueName)).toBe(12)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 25, dead: 0, delayed: 0 })
    expect(await broker.redriveDeadLetters(queueName)).toBe(0)

    const back = await messagesIn(broker, queueName)
    expect(back.map((m) => m.messageId).sort()).toEqual(dead.map((m) => m.messageId).sort())
    const byId = new Map(dead.map((m) => [m.messageId, m]))
    for (const m of back) {
      const original = byId.get(m.messageId) as Message
      expect(m.queueName).toBe(queueName)
      expect(m.messageTimestamp).toBe(original.messageTimestamp)
      expect(m.args).toEqual(original.args)
      expect(m.options).toEqual({ maxRetries: 5 })
    }
  })

  it('leaves undecodable dead letters where they are, visible, and stops', async () => {
    const { broker, queueName } = setup()
    await putDeadLetters(
      broker,
      Array.from({ length: 5 }, (_, i) => deadMessage(queueName, i)),
    )
    const xq = await broker.getQueueUrl(xqName(queueName))
    for (const body of ['not json', '{"actor_name": 1}']) {
      await raw.send(new SendMessageCommand({ QueueUrl: xq, MessageBody: body }))
    }
    expect(await broker.redriveDeadLetters(queueName)).toBe(5)
    expect(await broker.messageCounts(xqName(queueName))).toEqual({ visible: 2, notVisible: 0, delayed: 0 })
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 5, dead: 2 })
    expect(await broker.redriveDeadLetters(queueName)).toBe(0)
    expect(await broker.messageCounts(xqName(queueName))).toEqual({ visible: 2, notVisible: 0, delayed: 0 })
  })

  it('leaves a dead letter whose send SQS refused, or whose batch call failed, visible in the dead-letter queue', async () => {
    const { broker, queueName } = setup()
    const dead = Array.from({ length: 20 }, (_, i) => deadMessage(queueName, i))
    await putDeadLetters(broker, dead)
    // The first SendMessageBatch loses its 4th entry (SQS refuses it for good); the second fails as a whole.
    let sends = 0
    let refused = ''
    broker.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'SendMessageBatchCommand') return next(args)
        sends++
        if (sends === 2) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
        if (sends !== 1) return next(args)
        const input = args.input as { QueueUrl: string; Entries: Array<{ Id: string; MessageBody: string }> }
        const [kept, dropped] = [input.Entries.filter((e) => e.Id !== '3'), input.Entries.find((e) => e.Id === '3')]
        refused = Message.decode(Buffer.from(dropped?.MessageBody ?? ''), broker.encoder).messageId
        const out = await next({ ...args, input: { ...input, Entries: kept } })
        const output = out.output as { Failed?: unknown[] }
        output.Failed = [{ Id: '3', SenderFault: true, Code: 'InvalidParameterValue', Message: 'refused in a test' }]
        return out
      },
      { step: 'initialize', name: 'tqTestRefuse' },
    )
    expect(await broker.redriveDeadLetters(queueName)).toBe(9)
    expect(await broker.messageCounts(xqName(queueName))).toEqual({ visible: 11, notVisible: 0, delayed: 0 })
    const stillDead = (await messagesIn(broker, xqName(queueName))).map((m) => m.messageId)
    expect(stillDead).toContain(refused)
    const queued = (await messagesIn(broker, queueName)).map((m) => m.messageId)
    expect(queued).toHaveLength(9)
    expect(new Set([...queued, ...stillDead]).size).toBe(20)
    // The next redrive moves them.
    expect(await broker.redriveDeadLetters(queueName)).toBe(11)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 20, dead: 0 })
  })

  it('runs the enqueue hooks for each message; one a beforeEnqueue hook skips stays dead', async () => {
    const { broker, queueName } = setup()
    const dead = Array.from({ length: 4 }, (_, i) => deadMessage(queueName, i))
    const skipped = dead[2] as Message
    const before: string[] = []
    const after: string[] = []
    broker.addMiddleware({
      beforeEnqueue: (_b, m) => {
        before.push(m.messageId)
        expect(m.options['retries']).toBeUndefined()
        if (m.messageId === skipped.messageId) throw new SkipMessage('not this one')
      },
      afterEnqueue: (_b, m) => void after.push(m.messageId),
    })
    await putDeadLetters(broker, dead)
    expect(await broker.redriveDeadLetters(queueName)).toBe(3)
    expect(before.sort()).toEqual(dead.map((m) => m.messageId).sort())
    expect(after.sort()).toEqual(
      dead
        .filter((m) => m !== skipped)
        .map((m) => m.messageId)
        .sort(),
    )
    expect((await messagesIn(broker, xqName(queueName))).map((m) => m.messageId)).toEqual([skipped.messageId])
  })

  it('sends bodies the way every enqueue does (base64 for bytes that are not SQS text); a worker runs them', async () => {
    // An encoder whose bytes are not valid UTF-8: JSON behind a 0xff byte.
    const json = new TextEncoder()
    const encoder: Encoder = {
      encode: (data) => Buffer.concat([Buffer.from([0xff]), json.encode(JSON.stringify(data))]),
      decode: (bytes) => JSON.parse(Buffer.from(bytes).subarray(1).toString('utf8')) as Record<string, unknown>,
    }
    const { broker, queueName } = setup({ encoder })
    const ledger = new Ledger<number>()
    actor('job', (i: number) => ledger.record(i), { broker, queueName })
    await putDeadLetters(
      broker,
      Array.from({ length: 12 }, (_, i) => deadMessage(queueName, i, i % 2 === 0)),
    )
    expect(await broker.redriveDeadLetters(queueName)).toBe(12)
    const [queued] = await peek(raw, await broker.getQueueUrl(queueName))
    expect(queued?.MessageAttributes?.[BODY_ENCODING_ATTRIBUTE]?.StringValue).toBe('base64')
    const worker = new Worker(broker, { workerTimeout: 100 })
    workers.push(worker)
    await worker.start()
    await ledger.waitForTotal(12, t(10_000))
    expect([...ledger.counts.keys()].sort((a, b) => a - b)).toEqual([...Array(12).keys()])
  })

  it('redrives 1 000 dead letters', async () => {
    const { broker, queueName } = setup()
    await putDeadLetters(
      broker,
      Array.from({ length: 1000 }, (_, i) => deadMessage(queueName, i)),
    )
    const commands = recordCommands(broker.client)
    const started = performance.now()
    expect(await broker.redriveDeadLetters(queueName)).toBe(1000)
    const ms = performance.now() - started
    console.info(`redrove 1000 dead letters in ${ms.toFixed(0)} ms (${commands.calls.length} SQS calls)`)
    if (!SQS_EXTERNAL) expect(commands.calls.length).toBe(1 + 3 * 100)
    expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 1000, dead: 0 })
  }, 60_000)
})

describe('a redrive killed with SIGKILL', () => {
  /**
   * Where the child dies: after it moved 300 messages (wherever it is then), while the 21st
   * `SendMessageBatch` is about to go (its batch received, not sent: in the dead-letter queue
   * only), or while the 21st `DeleteMessageBatch` is (its batch sent, not deleted: in both).
   */
  const cases = [
    { at: 'midway, after 300 moved', hold: undefined, inBoth: [0, 10] },
    { at: 'between a receive and its send', hold: 'SendMessageBatchCommand', inBoth: [0, 0] },
    { at: 'between a send and its delete', hold: 'DeleteMessageBatchCommand', inBoth: [10, 10] },
  ] as const

  it.each(cases)(
    'loses no message when killed $at',
    async ({ hold, inBoth }) => {
      const total = 2000
      const visibilityTimeout = 2
      const { broker, queueName } = setup({ visibilityTimeout })
      const dead = Array.from({ length: total }, (_, i) => deadMessage(queueName, i, i % 7 === 0))
      await putDeadLetters(broker, dead)
      expect(await broker.queueCounts(queueName)).toMatchObject({ ready: 0, dead: total })

      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--conditions=@tq/source',
          join(here, 'scripts/redrive-child.ts'),
          SQS_ENDPOINT,
          SQS_REGION,
          String(SQS_EXTERNAL),
          prefix,
          queueName,
          String(visibilityTimeout),
          ...(hold ? [hold, '21'] : []),
        ],
        { cwd: join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let moved = 0
      let holding = false
      let done = false
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      child.stdout.on('data', (chunk: Buffer) => {
        const text = chunk.toString()
        for (const match of text.matchAll(/moved (\d+)/g)) moved = Math.max(moved, Number(match[1]))
        if (text.includes('holding')) holding = true
        if (text.includes('done')) done = true
      })
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on('exit', (_code, signal) => resolve(signal)),
      )
      try {
        await waitFor(() => (hold ? holding : moved >= 300) || done, {
          timeout: t(20_000),
          interval: 1,
          message: `the child to reach the kill point (stderr: ${stderr})`,
        })
      } finally {
        child.kill('SIGKILL')
      }
      expect(await exited).toBe('SIGKILL')
      expect(done, 'the child was killed before it finished').toBe(false)

      // What the child had received and not deleted comes back once its visibility timeout passed
      // (fauxqs returns it to the queue on the next receive: the reads below).
      const visibleAgain = Date.now() + visibilityTimeout * 1000 + 100
      await waitFor(() => Date.now() >= visibleAgain, { timeout: t(10_000), interval: 50 })
      const inQueue = await messagesIn(broker, queueName)
      const inDead = await messagesIn(broker, xqName(queueName))
      const counts = await broker.queueCounts(queueName)
      expect(counts).toMatchObject({ running: 0, delayed: 0 })
      expect(await broker.messageCounts(xqName(queueName))).toMatchObject({ notVisible: 0 })
      expect(inQueue.length).toBe(counts.ready)
      expect(inDead.length).toBe(counts.dead)
      expect(counts.ready).toBeGreaterThanOrEqual(hold ? 200 : 300)
      expect(counts.dead).toBeGreaterThan(0)

      // Every message is somewhere, none twice in one queue; only the batch between its send and
      // its delete can be in both (the design sends the next batch once the last one is deleted).
      const queued = new Set(inQueue.map((m) => m.messageId))
      const stillDead = new Set(inDead.map((m) => m.messageId))
      expect(queued.size).toBe(inQueue.length)
      expect(stillDead.size).toBe(inDead.length)
      const both = [...queued].filter((id) => stillDead.has(id))
      expect(both.length).toBeGreaterThanOrEqual(inBoth[0])
      expect(both.length).toBeLessThanOrEqual(inBoth[1])
      expect(counts.ready + counts.dead).toBe(total + both.length)
      for (const m of dead) expect(queued.has(m.messageId) || stillDead.has(m.messageId), m.messageId).toBe(true)
      console.info(
        `killed after ${moved} moved: ${counts.ready} in the queue, ${counts.dead} dead, ${both.length} in both`,
      )

      // A second redrive moves the rest; only the ones that were in both are in the queue twice.
      expect(await broker.redriveDeadLetters(queueName)).toBe(counts.dead)
      const after = await messagesIn(broker, queueName)
      expect(await broker.queueCounts(queueName)).toMatchObject({ ready: total + both.length, dead: 0 })
      const seen = new Map<string, number>()
      for (const m of after) seen.set(m.messageId, (seen.get(m.messageId) ?? 0) + 1)
      expect(seen.size).toBe(total)
      for (const m of dead) expect(seen.has(m.messageId), m.messageId).toBe(true)
      expect(
        [...seen]
          .filter(([, n]) => n > 1)
          .map(([id]) => id)
          .sort(),
      ).toEqual(both.sort())
      for (const m of after) {
        expect(m.queueName).toBe(queueName)
        expect(m.options).toEqual({ maxRetries: 5 })
      }
    },
    90_000,
  )
})
