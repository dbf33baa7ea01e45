// Tracking's cost on the Redis hot path: end-to-end throughput of no-op actors at concurrency 8,
// without and with `Tracking` (RedisTrackingBackend on the same Redis), alternating rounds.
//
//   node --import tsx --conditions=@tq/source src/tracking.ts [N] [rounds]   # default 30 000, 3
//
// TQ_BENCH_TRACKING_URL puts the records on another Redis. Writes under namespaces of its own (broker and tracking prefix) and deletes them at the end.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Tracking, Worker, actor, type Middleware } from '@tq/core'
import { RedisBroker, RedisTrackingBackend } from '@tq/redis'
import { Redis } from 'ioredis'

const url = process.env['TQ_BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379/8'
/** The tracking records' Redis (default: the broker's). */
const trackingUrl = process.env['TQ_BENCH_TRACKING_URL'] ?? url
const N = Number(process.argv[2] ?? 30_000)
const rounds = Number(process.argv[3] ?? 3)
const tag = `${process.pid}-${randomBytes(3).toString('hex')}`

interface Row {
  tracked: boolean
  enqueue: number
  drain: number
  /** CPU µs per message while draining (and writing the drain's tracking updates): this process, Redis. */
  nodeCpu: number
  redisCpu: number
}

const infoClients = [...new Set([url, trackingUrl])].map((where) => new Redis(where))

/** CPU seconds the Redis servers have used. */
async function redisCpuSeconds(): Promise<number> {
  let total = 0
  for (const client of infoClients) {
    const info = await client.info('cpu')
    for (const field of ['used_cpu_user', 'used_cpu_sys'])
      total += Number(new RegExp(`${field}:([\\d.]+)`).exec(info)?.[1] ?? 0)
  }
  return total
}

async function run(tracked: boolean): Promise<Omit<Row, 'tracked'>> {
  const namespace = `tqbench-tracking-${tag}`
  const backend = tracked
    ? new RedisTrackingBackend({ url: trackingUrl, prefix: `tqbench-tracking-t-${tag}` })
    : undefined
  const tracking = backend ? new Tracking({ backend }) : undefined
  const middleware: Middleware[] = tracking ? [tracking] : []
  const broker = new RedisBroker({ url, namespace, middleware })
  let done = 0
  let finished!: () => void
  const all = new Promise<void>((resolve) => (finished = resolve))
  const noop = actor(
    'noop',
    (_i: number) => {
      if (++done === N) finished()
    },
    { broker, queueName: 'bench' },
  )
  let t = performance.now()
  for (let i = 0; i < N; i += 1000) {
    await broker.enqueueMany(Array.from({ length: Math.min(1000, N - i) }, (_, j) => noop.message(i + j)))
  }
  await tracking?.flush()
  const enqueue = (N / (performance.now() - t)) * 1000
  const worker = new Worker(broker, { concurrency: 8 })
  const redisBefore = await redisCpuSeconds()
  const nodeBefore = process.cpuUsage()
  t = performance.now()
  await worker.start()
  await all
  const drain = (N / (performance.now() - t)) * 1000
  await tracking?.flush()
  const node = process.cpuUsage(nodeBefore)
  const redisCpu = ((await redisCpuSeconds()) - redisBefore) * 1e6
  await worker.stop()
  await broker.flushAll()
  await broker.close()
  await backend?.close?.()
  return { enqueue, drain, nodeCpu: (node.user + node.system) / N, redisCpu: redisCpu / N }
}

const rows: Row[] = []
for (let r = 0; r < rounds; r++) {
  for (const tracked of r % 2 === 0 ? [false, true] : [true, false]) rows.push({ tracked, ...(await run(tracked)) })
}
type Figure = 'enqueue' | 'drain' | 'nodeCpu' | 'redisCpu'
const best = (tracked: boolean, key: 'enqueue' | 'drain'): number =>
  Math.max(...rows.filter((row) => row.tracked === tracked).map((row) => row[key]))
const median = (tracked: boolean, key: Figure): number => {
  const values = rows.filter((row) => row.tracked === tracked).map((row) => row[key])
  values.sort((a, b) => a - b)
  const mid = values.length >> 1
  return values.length % 2 === 1 ? (values[mid] ?? 0) : ((values[mid - 1] ?? 0) + (values[mid] ?? 0)) / 2
}
const fmt = (n: number): string => `${Math.round(n).toLocaleString('en-US')} msgs/s`
for (const row of rows)
  console.log(
    `${row.tracked ? 'tracking' : 'plain   '}  enqueue ${fmt(row.enqueue)}  end to end c8 ${fmt(row.drain)}  ` +
      `CPU per message: node ${row.nodeCpu.toFixed(1)} µs, redis ${row.redisCpu.toFixed(1)} µs`,
  )
console.log(
  `best: plain ${fmt(best(false, 'drain'))}, tracking ${fmt(best(true, 'drain'))} → ${Math.round((best(true, 'drain') / best(false, 'drain')) * 100)} % (enqueue ${Math.round((best(true, 'enqueue') / best(false, 'enqueue')) * 100)} %)`,
)
console.log(
  `median: plain ${fmt(median(false, 'drain'))}, tracking ${fmt(median(true, 'drain'))} → ${Math.round((median(true, 'drain') / median(false, 'drain')) * 100)} % (enqueue ${Math.round((median(true, 'enqueue') / median(false, 'enqueue')) * 100)} %)`,
)
const cpu = (tracked: boolean): number => median(tracked, 'nodeCpu') + median(tracked, 'redisCpu')
console.log(
  `CPU per message drained (median): plain ${cpu(false).toFixed(1)} µs (node ${median(false, 'nodeCpu').toFixed(1)}, redis ${median(false, 'redisCpu').toFixed(1)}), ` +
    `tracking ${cpu(true).toFixed(1)} µs (node ${median(true, 'nodeCpu').toFixed(1)}, redis ${median(true, 'redisCpu').toFixed(1)}): plain/tracking ${Math.round((cpu(false) / cpu(true)) * 100)} %`,
)
// Each round ran one of each, back to back: the median of the rounds' ratios is the least noisy figure.
const ratios = Array.from({ length: rounds }, (_, r) => {
  const pair = rows.slice(2 * r, 2 * r + 2)
  const plainRow = pair.find((row) => !row.tracked)
  const trackedRow = pair.find((row) => row.tracked)
  return plainRow && trackedRow ? trackedRow.drain / plainRow.drain : 0
}).sort((a, b) => a - b)
const mid = ratios.length >> 1
const pairedMedian = ratios.length % 2 === 1 ? (ratios[mid] ?? 0) : ((ratios[mid - 1] ?? 0) + (ratios[mid] ?? 0)) / 2
console.log(
  `paired: median of the rounds' tracking/plain ratios ${Math.round(pairedMedian * 100)} % (rounds: ${ratios.map((ratio) => Math.round(ratio * 100)).join(', ')} %)`,
)
for (const where of new Set([url, trackingUrl])) {
  const cleanup = new Redis(where)
  for (const pattern of [`tqbench-tracking-${tag}*`, `tqbench-tracking-t-${tag}*`]) {
    const keys = await cleanup.keys(pattern)
    for (let i = 0; i < keys.length; i += 1000) await cleanup.del(...keys.slice(i, i + 1000))
  }
  await cleanup.quit()
}
for (const client of infoClients) await client.quit()
