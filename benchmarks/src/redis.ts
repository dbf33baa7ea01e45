// RedisBroker benchmark: enqueue throughput, end-to-end throughput of no-op actors at several
// concurrencies (one process), and idle latency (enqueue → actor start at a low steady rate).
//
//   corepack pnpm --filter @tq/benchmarks bench:redis            # full run (about a minute)
//   corepack pnpm --filter @tq/benchmarks bench:redis -- --quick # small N (a few seconds)
//
// Options: --quick, --url redis://127.0.0.1:6379/8 (or TQ_BENCH_REDIS_URL). The benchmark writes
// only under a namespace of its own and deletes it at the end.
import { randomBytes } from 'node:crypto'
import { cpus } from 'node:os'
import { performance } from 'node:perf_hooks'
import { Worker, actor, type Message } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { Redis } from 'ioredis'

const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
const urlIndex = argv.indexOf('--url')
const url =
  (urlIndex >= 0 ? argv[urlIndex + 1] : undefined) ?? process.env['TQ_BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379/8'
const namespace = `tqbench-${process.pid}-${randomBytes(3).toString('hex')}`

const N = {
  enqueue: quick ? 5_000 : 100_000,
  throughput: quick ? 2_000 : 30_000,
  latency: quick ? 40 : 300,
  latencyRate: 20, // messages per second
}

const rate = (count: number, ms: number): string => `${Math.round((count / ms) * 1000).toLocaleString('en-US')} msgs/s`
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN

function newBroker(options: ConstructorParameters<typeof RedisBroker>[0] = {}): RedisBroker {
  return new RedisBroker({ url, namespace, middleware: [], ...options })
}

async function enqueueThroughput(): Promise<Array<[string, string]>> {
  const broker = newBroker()
  const noop = actor('noop', (_i: number) => undefined, { broker, queueName: 'enqueue' })
  const rows: Array<[string, string]> = []
  const seqCount = Math.min(N.enqueue, quick ? 2_000 : 10_000)

  let t = performance.now()
  for (let i = 0; i < seqCount; i++) await noop.send(i)
  rows.push([`send(), one at a time (${seqCount.toLocaleString('en-US')})`, rate(seqCount, performance.now() - t)])
  await broker.flush('enqueue')

  t = performance.now()
  for (let i = 0; i < N.enqueue; i += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, N.enqueue - i) }, (_, j) => noop.send(i + j)))
  }
  rows.push([`send(), 1000 concurrent (${N.enqueue.toLocaleString('en-US')})`, rate(N.enqueue, performance.now() - t)])
  await broker.flush('enqueue')

  t = performance.now()
  for (let i = 0; i < N.enqueue; i += 1000) {
    await broker.enqueueMany(Array.from({ length: Math.min(1000, N.enqueue - i) }, (_, j) => noop.message(i + j)))
  }
  rows.push([
    `enqueueMany(), batches of 1000 (${N.enqueue.toLocaleString('en-US')})`,
    rate(N.enqueue, performance.now() - t),
  ])
  await broker.flush('enqueue')
  await broker.close()
  return rows
}

async function endToEnd(concurrency: number): Promise<[string, string]> {
  const broker = newBroker()
  const queueName = `e2e${concurrency}`
  let done = 0
  let finish: () => void = () => undefined
  const finished = new Promise<void>((resolve) => (finish = resolve))
  const noop = actor(
    'noop',
    () => {
      if (++done === N.throughput) finish()
    },
    { broker, queueName },
  )
  const messages: Message[] = Array.from({ length: N.throughput }, () => noop.message())
  for (let i = 0; i < messages.length; i += 1000) await broker.enqueueMany(messages.slice(i, i + 1000))
  const worker = new Worker(broker, { concurrency, workerTimeout: 100 })
  const t = performance.now()
  await worker.start()
  await finished
  const elapsed = performance.now() - t
  await worker.stop()
  await broker.flush(queueName)
  await broker.close()
  return [
    `no-op actors, concurrency ${concurrency} (${N.throughput.toLocaleString('en-US')})`,
    rate(N.throughput, elapsed),
  ]
}

async function idleLatency(
  label: string,
  options: ConstructorParameters<typeof RedisBroker>[0],
): Promise<[string, string]> {
  const consumerBroker = newBroker(options)
  const producerBroker = newBroker(options)
  const queueName = `latency${randomBytes(2).toString('hex')}`
  const latencies: number[] = []
  let finish: () => void = () => undefined
  const finished = new Promise<void>((resolve) => (finish = resolve))
  actor(
    'ping',
    (sentAt: number) => {
      latencies.push(performance.timeOrigin + performance.now() - sentAt)
      if (latencies.length === N.latency) finish()
    },
    { broker: consumerBroker, queueName },
  )
  const ping = actor('ping', (_sentAt: number) => undefined, { broker: producerBroker, queueName })
  const worker = new Worker(consumerBroker, { concurrency: 8 })
  await worker.start()
  await new Promise((resolve) => setTimeout(resolve, 200)) // let the consumers go idle
  const interval = 1000 / N.latencyRate
  for (let i = 0; i < N.latency; i++) {
    await ping.send(performance.timeOrigin + performance.now())
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
  await finished
  await worker.stop()
  await consumerBroker.flush(queueName)
  await Promise.all([consumerBroker.close(), producerBroker.close()])
  latencies.sort((a, b) => a - b)
  return [
    `${label} (${N.latency} at ${N.latencyRate}/s)`,
    `p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms`,
  ]
}

async function main(): Promise<void> {
  const probe = new Redis(url, { lazyConnect: true })
  const info = await probe.info('server')
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? '?'
  console.log(`tq RedisBroker benchmark${quick ? ' (--quick)' : ''}`)
  console.log(
    `node ${process.version}, redis ${redisVersion} at ${url.replace(/\/\/[^@]*@/, '//***@')}, ${cpus().length} CPUs (${cpus()[0]?.model.trim() ?? '?'})`,
  )
  console.log('')
  const rows: Array<[string, string]> = []
  const section = (title: string): void => void rows.push([`## ${title}`, ''])

  try {
    section('enqueue')
    rows.push(...(await enqueueThroughput()))
    section('end to end (enqueued first, then one worker process drains the queue)')
    for (const concurrency of [1, 8, 100]) rows.push(await endToEnd(concurrency))
    section('idle latency: enqueue → actor start, separate producer and consumer brokers')
    rows.push(await idleLatency('wake-ups on (default)', {}))
    rows.push(await idleLatency('wake-ups off, polling every 100 ms', { wakeups: false, pollInterval: 100 }))
  } finally {
    let cursor = '0'
    do {
      const [next, keys] = await probe.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await probe.del(...keys)
    } while (cursor !== '0')
    await probe.quit()
  }

  const width = Math.max(...rows.map(([name]) => name.length))
  for (const [name, value] of rows) {
    if (name.startsWith('## ')) console.log(`\n${name.slice(3)}`)
    else console.log(`  ${name.padEnd(width)}  ${value}`)
  }
}

await main()
