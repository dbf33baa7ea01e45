// An agent process: runs one system's producer and/or consumer at a time on the orchestrator's
// orders (see protocol.ts). Started by src/bench.ts with `node --import tsx --conditions=@tq/source`,
// or from a bundle with plain `node` for the memory scenario.
import { setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import {
  PROGRESS_INTERVAL,
  now,
  type AgentEnvelope,
  type AgentMessage,
  type GcStats,
  type SessionStats,
} from './protocol.ts'
import { loadSystem, type ConsumerHandle, type Producer } from './types.ts'

interface Session {
  producer: Producer | undefined
  consumer: ConsumerHandle | undefined
  count: number
  lastAt: number
  peakRss: number
  timer: NodeJS.Timeout | undefined
  /** With `measureGc`: the profiler and the used heap when it started. */
  gc: { profiler: v8.GCProfiler | undefined; startUsed: number } | undefined
}

interface GcEntry {
  cost: number
  beforeGC: { heapStatistics: { usedHeapSize: number } }
  afterGC: { heapStatistics: { usedHeapSize: number } }
}

/** Collections, their cost and the bytes allocated (heap growth between collections) since `start`. */
function gcStats(gc: NonNullable<Session['gc']>): GcStats | undefined {
  const profile = gc.profiler?.stop() as { statistics: GcEntry[] } | undefined
  if (!profile) return undefined
  let allocated = 0
  let used = gc.startUsed
  let micros = 0
  for (const entry of profile.statistics) {
    allocated += Math.max(0, entry.beforeGC.heapStatistics.usedHeapSize - used)
    used = entry.afterGC.heapStatistics.usedHeapSize
    micros += entry.cost
  }
  allocated += Math.max(0, v8.getHeapStatistics().used_heap_size - used)
  return { collections: profile.statistics.length, ms: micros / 1000, allocated }
}

let session: Session | undefined

function send(message: AgentMessage): void {
  process.send?.(message)
}

function current(): Session {
  if (!session) throw new Error('no open session')
  return session
}

let ticks = 0
let heapUsed = 0

function sample(s: Session): void {
  // process.memoryUsage() walks the heap spaces: only every fourth tick; the RSS alone is cheap.
  let rss: number
  if (ticks++ % 4 === 0) {
    const usage = process.memoryUsage()
    rss = usage.rss
    heapUsed = usage.heapUsed
  } else {
    rss = process.memoryUsage.rss()
  }
  if (rss > s.peakRss) s.peakRss = rss
  send({ t: 'progress', count: s.count, lastAt: s.lastAt, rss, heapUsed })
}

async function closeSession(): Promise<SessionStats> {
  const s = current()
  session = undefined
  if (s.timer) clearInterval(s.timer)
  const rss = process.memoryUsage().rss
  // Before stopping: the collections of the run, not of closing its connections.
  const gc = s.gc ? gcStats(s.gc) : undefined
  await s.consumer?.stop()
  await s.producer?.close()
  return { count: s.count, lastAt: s.lastAt, peakRss: Math.max(s.peakRss, rss), rss, ...(gc ? { gc } : {}) }
}

async function latency(request: Extract<AgentEnvelope, { t: 'latency' }>): Promise<number[]> {
  const system = await loadSystem(request.system)
  const producer = await system.producer(request.ctx, request.queue)
  const samples: number[] = []
  let finish: () => void = () => undefined
  const finished = new Promise<void>((resolve) => (finish = resolve))
  const consumer = await system.consumer(request.ctx, request.queue, request.concurrency, (sentAt) => {
    samples.push(performance.now() - sentAt)
    if (samples.length === request.count) finish()
  })
  try {
    await consumer.start()
    await sleep(300) // let the consumer go idle
    const interval = 1000 / request.rate
    let next = performance.now()
    for (let i = 0; i < request.count; i++) {
      await producer.one(performance.now())
      next += interval
      const wait = next - performance.now()
      if (wait > 0) await sleep(wait)
    }
    const timeout = sleep(10_000).then(() => {
      throw new Error(`only ${samples.length} of ${request.count} latency messages arrived within 10 s`)
    })
    await Promise.race([finished, timeout])
    return samples
  } finally {
    await consumer.stop()
    await producer.close()
  }
}

async function handle(request: AgentEnvelope): Promise<unknown> {
  switch (request.t) {
    case 'open': {
      if (session) await closeSession()
      const system = await loadSystem(request.system)
      const s: Session = {
        producer: undefined,
        consumer: undefined,
        count: 0,
        lastAt: 0,
        peakRss: 0,
        timer: undefined,
        gc: request.measureGc ? { profiler: undefined, startUsed: 0 } : undefined,
      }
      session = s
      if (request.producer) s.producer = await system.producer(request.ctx, request.queue)
      if (request.concurrency !== undefined) {
        s.consumer = await system.consumer(request.ctx, request.queue, request.concurrency, () => {
          s.count++
          s.lastAt = now()
        })
      }
      return process.memoryUsage().rss
    }
    case 'fill': {
      const producer = current().producer
      if (!producer) throw new Error('no producer in this session')
      const started = performance.now()
      for (let i = 0; i < request.count; i += request.batch) {
        const size = Math.min(request.batch, request.count - i)
        await producer.bulk(Array.from({ length: size }, (_, j) => request.start + i + j))
      }
      return performance.now() - started
    }
    case 'single': {
      const producer = current().producer
      if (!producer) throw new Error('no producer in this session')
      const started = performance.now()
      for (let i = 0; i < request.count; i++) await producer.one(i)
      return performance.now() - started
    }
    case 'inFlight': {
      // `window` sends outstanding at any moment, each started as soon as one resolves.
      const producer = current().producer
      if (!producer) throw new Error('no producer in this session')
      const started = performance.now()
      let next = 0
      const lane = async (): Promise<void> => {
        while (next < request.count) await producer.one(next++)
      }
      await Promise.all(Array.from({ length: Math.min(request.window, request.count) }, lane))
      return performance.now() - started
    }
    case 'go': {
      const s = current()
      if (!s.consumer) throw new Error('no consumer in this session')
      s.timer = setInterval(() => sample(s), PROGRESS_INTERVAL)
      if (s.gc) {
        s.gc.startUsed = v8.getHeapStatistics().used_heap_size
        s.gc.profiler = new v8.GCProfiler()
        s.gc.profiler.start()
      }
      await s.consumer.start()
      return now()
    }
    case 'stop':
      return session ? closeSession() : undefined
    case 'latency':
      return latency(request)
    case 'cleanup': {
      const system = await loadSystem(request.system)
      await system.cleanup?.(request.ctx, request.queue)
      return undefined
    }
    case 'memory': {
      const { rss, heapUsed } = process.memoryUsage()
      return { rss, heapUsed }
    }
    case 'prepare': {
      const system = await loadSystem(request.system)
      await system.prepare?.(request.ctx)
      return undefined
    }
    case 'seed': {
      const system = await loadSystem(request.system)
      if (!system.seedDelayed) throw new Error(`${request.system} cannot seed delayed messages`)
      const started = performance.now()
      await system.seedDelayed(request.ctx, request.queue, request.count, request.delayMs)
      return performance.now() - started
    }
    case 'transactions': {
      // Loaded on demand, like the systems: an agent that never runs it never loads pg.
      const { measureTransactions } = await import('./transactions.ts')
      return measureTransactions(await loadSystem(request.system), request.ctx, request.queue, request.count)
    }
  }
}

process.on('message', (request: AgentEnvelope) => {
  handle(request).then(
    (value) => send({ t: 'reply', id: request.id, ok: true, value }),
    (error: unknown) =>
      send({
        t: 'reply',
        id: request.id,
        ok: false,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      }),
  )
})
// The orchestrator went away: nothing left to do.
process.on('disconnect', () => process.exit(0))
send({ t: 'ready' })
