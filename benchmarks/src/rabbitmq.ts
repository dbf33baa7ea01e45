// RabbitmqBroker benchmark: tq against raw amqplib doing the same work on the same server —
// persistent messages, publisher confirms, manual acks, the same queue arguments and bodies.
//
//   corepack pnpm --filter @tq/benchmarks bench:rabbitmq            # full run (about two minutes)
//   corepack pnpm --filter @tq/benchmarks bench:rabbitmq -- --quick # small N (a few seconds)
//
// Options: --quick, --url amqp://guest:guest@127.0.0.1:5672 (or TQ_BENCH_AMQP_URL). The
// benchmark uses queues of its own and deletes them at the end.
//
// What is measured, for tq and for the raw baseline:
// - publish: N messages in batches of 1000, each batch waiting for its confirms;
// - consume: draining N messages already in the queue, acking each (tq: a Worker running
//   no-op actors; raw: a consumer with the same prefetch that parses each body and acks it);
// - end to end: the consumer running while N messages are published in batches of 1000;
//   the clock stops when the last one is acked.
// The raw baseline does what a hand-written amqplib program would: JSON.stringify on publish,
// JSON.parse on delivery, the same bodies and queue arguments as tq. The machine may be shared,
// so the two run in interleaved rounds (alternating which goes first) and the median round of
// each is reported.
import { randomBytes } from 'node:crypto'
import { cpus } from 'node:os'
import { performance } from 'node:perf_hooks'
import { Worker, actor, dqName, xqName, type Message } from '@tq/core'
import { RabbitmqBroker, queueDeclarations } from '@tq/rabbitmq'
import { connect, type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib'

const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
const urlIndex = argv.indexOf('--url')
const url =
  (urlIndex >= 0 ? argv[urlIndex + 1] : undefined) ??
  process.env['TQ_BENCH_AMQP_URL'] ??
  'amqp://guest:guest@127.0.0.1:5672'
const prefix = `tqbench_${process.pid}_${randomBytes(3).toString('hex')}`
const N = quick ? 2_000 : 20_000
const ROUNDS = quick ? 1 : 5
const BATCH = 1000
/** Worker concurrency for tq; the raw consumer gets tq's prefetch (2 × concurrency). */
const CONCURRENCY = 50
const PREFETCH = CONCURRENCY * 2

const perSecond = (count: number, ms: number): number => (count / ms) * 1000
const fmt = (rate: number): string => `${Math.round(rate).toLocaleString('en-US')} msgs/s`
const used = new Set<string>()

function queueName(name: string): string {
  const q = `${prefix}_${name}`
  used.add(q)
  return q
}

// ---- tq ----

function tqSetup(q: string): { broker: RabbitmqBroker; messages: Message[]; done: Promise<void> } {
  const broker = new RabbitmqBroker({ url, middleware: [], connectionName: prefix })
  let count = 0
  let finish: () => void = () => undefined
  const done = new Promise<void>((resolve) => (finish = resolve))
  const noop = actor(
    'noop',
    (_i: number) => {
      if (++count === N) finish()
    },
    { broker, queueName: q },
  )
  const messages = Array.from({ length: N }, (_, i) => noop.message(i))
  return { broker, messages, done }
}

async function tqPublish(broker: RabbitmqBroker, messages: Message[]): Promise<void> {
  for (let i = 0; i < messages.length; i += BATCH) await broker.enqueueMany(messages.slice(i, i + BATCH))
}

async function tqRun(): Promise<{ publish: number; consume: number; endToEnd: number }> {
  // publish, then consume
  const q1 = queueName('tq_split')
  const split = tqSetup(q1)
  await split.broker.assertQueue(q1)
  let t = performance.now()
  await tqPublish(split.broker, split.messages)
  const publish = perSecond(N, performance.now() - t)
  const worker = new Worker(split.broker, { concurrency: CONCURRENCY, workerTimeout: 100 })
  t = performance.now()
  await worker.start()
  await split.done
  const consume = perSecond(N, performance.now() - t)
  await worker.stop()
  await split.broker.close()

  // end to end
  const q2 = queueName('tq_e2e')
  const e2e = tqSetup(q2)
  await e2e.broker.assertQueue(q2)
  const worker2 = new Worker(e2e.broker, { concurrency: CONCURRENCY, workerTimeout: 100 })
  await worker2.start()
  t = performance.now()
  await tqPublish(e2e.broker, e2e.messages)
  await e2e.done
  const endToEnd = perSecond(N, performance.now() - t)
  await worker2.stop()
  await e2e.broker.close()
  return { publish, consume, endToEnd }
}

// ---- raw amqplib ----

async function rawDeclare(channel: Channel, q: string): Promise<void> {
  for (const d of queueDeclarations(q)) {
    await channel.assertQueue(d.name, {
      durable: d.durable,
      exclusive: d.exclusive,
      autoDelete: d.autoDelete,
      arguments: d.arguments,
    })
  }
}

async function rawPublish(channel: ConfirmChannel, q: string, dicts: unknown[]): Promise<void> {
  for (let i = 0; i < dicts.length; i += BATCH) {
    for (const dict of dicts.slice(i, i + BATCH)) {
      channel.publish('', q, Buffer.from(JSON.stringify(dict)), { deliveryMode: 2 })
    }
    await channel.waitForConfirms()
  }
}

async function rawConsume(
  model: ChannelModel,
  q: string,
  count: number,
  onReady: () => void = () => undefined,
): Promise<void> {
  const channel = await model.createChannel()
  await channel.prefetch(PREFETCH, false)
  let seen = 0
  let finish: () => void = () => undefined
  const done = new Promise<void>((resolve) => (finish = resolve))
  const { consumerTag } = await channel.consume(
    q,
    (message) => {
      if (!message) return
      JSON.parse(message.content.toString('utf8'))
      channel.ack(message)
      if (++seen === count) finish()
    },
    { noAck: false },
  )
  onReady()
  await done
  await channel.cancel(consumerTag)
  await channel.close()
}

async function rawRun(dicts: unknown[]): Promise<{ publish: number; consume: number; endToEnd: number }> {
  const publisher = await connect(url, { noDelay: true })
  const consumer = await connect(url, { noDelay: true })
  try {
    const channel = await publisher.createConfirmChannel()
    const q1 = queueName('raw_split')
    await rawDeclare(channel, q1)
    let t = performance.now()
    await rawPublish(channel, q1, dicts)
    const publish = perSecond(N, performance.now() - t)
    t = performance.now()
    await rawConsume(consumer, q1, N)
    const consume = perSecond(N, performance.now() - t)

    const q2 = queueName('raw_e2e')
    await rawDeclare(channel, q2)
    let ready: () => void = () => undefined
    const consuming = new Promise<void>((resolve) => (ready = resolve))
    const drained = rawConsume(consumer, q2, N, ready)
    await consuming
    t = performance.now()
    await rawPublish(channel, q2, dicts)
    await drained
    const endToEnd = perSecond(N, performance.now() - t)
    await channel.close()
    return { publish, consume, endToEnd }
  } finally {
    await publisher.close()
    await consumer.close()
  }
}

async function cleanup(): Promise<void> {
  const model = await connect(url)
  try {
    for (const q of used) {
      for (const name of [q, dqName(q), xqName(q)]) {
        const channel = await model.createChannel()
        channel.on('error', () => undefined)
        await channel.deleteQueue(name).catch(() => undefined)
        await channel.close().catch(() => undefined)
      }
    }
  } finally {
    await model.close()
  }
}

async function main(): Promise<void> {
  const probe = await connect(url)
  const reported: unknown = (probe.connection.serverProperties as Record<string, unknown>)['version']
  const version = typeof reported === 'string' ? reported : '?'
  await probe.close()
  console.log(`tq RabbitmqBroker benchmark${quick ? ' (--quick)' : ''}`)
  console.log(
    `node ${process.version}, RabbitMQ ${version} at ${url.replace(/\/\/[^@]*@/, '//***@')}, ${cpus().length} CPUs (${cpus()[0]?.model.trim() ?? '?'})`,
  )
  console.log(
    `${N.toLocaleString('en-US')} persistent messages, publisher confirms, manual acks; tq Worker concurrency ${CONCURRENCY}, prefetch ${PREFETCH} for both`,
  )
  console.log('')

  // The same messages for both (a tq body is about 180 bytes).
  const sample = new RabbitmqBroker({ url, middleware: [] })
  const noop = actor('noop', (_i: number) => undefined, { broker: sample, queueName: 'sample' })
  const dicts = Array.from({ length: N }, (_, i) => noop.message(i).toWire())
  await sample.close()

  type Rates = Awaited<ReturnType<typeof tqRun>>
  const median = (runs: Rates[], key: keyof Rates): number => {
    const sorted = runs.map((r) => r[key]).sort((a, b) => a - b)
    const mid = Math.floor(sorted.length / 2)
    return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  }
  const rawRuns: Rates[] = []
  const tqRuns: Rates[] = []
  try {
    for (let round = 0; round < ROUNDS; round++) {
      if (round % 2 === 0) {
        rawRuns.push(await rawRun(dicts))
        tqRuns.push(await tqRun())
      } else {
        tqRuns.push(await tqRun())
        rawRuns.push(await rawRun(dicts))
      }
      await cleanup()
      used.clear()
    }
    const rows: Array<[string, keyof Rates]> = [
      ['publish (batches of 1000, confirmed)', 'publish'],
      ['consume (drain with acks)', 'consume'],
      ['end to end (publish while consuming)', 'endToEnd'],
    ]
    const width = Math.max(...rows.map(([name]) => name.length))
    console.log(`median of ${ROUNDS} interleaved round(s)`)
    console.log(`  ${''.padEnd(width)}  ${'tq'.padStart(14)}  ${'raw amqplib'.padStart(14)}  tq / raw`)
    for (const [name, key] of rows) {
      const ours = median(tqRuns, key)
      const theirs = median(rawRuns, key)
      console.log(
        `  ${name.padEnd(width)}  ${fmt(ours).padStart(14)}  ${fmt(theirs).padStart(14)}  ${((ours / theirs) * 100).toFixed(0)} %`,
      )
    }
  } finally {
    await cleanup()
  }
}

await main()
