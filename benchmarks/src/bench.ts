// The one-run benchmark: tq against BullMQ, bee-queue and the raw client ceilings, side by side on
// the same Redis (a database of its own, flushed before every scenario) and the same RabbitMQ; and
// tq on PostgreSQL against graphile-worker and pg-boss on the same PostgreSQL (a schema each,
// dropped and migrated again before every scenario).
//
//   pnpm bench                 # full run (N = 100 000; several minutes); writes
//                              #   benchmarks/results/latest.json, docs/benchmarks.md, docs/benchmarks.svg
//   pnpm bench -- --quick      # small N, under a minute; writes benchmarks/results/quick.json only
//
// Options: --n N, --n-c1 N (messages per run at concurrency 1; default N), --redis-url redis://127.0.0.1:6379/10, --redis-db D, --amqp-url amqp://…,
// --pg-url postgres://postgres@127.0.0.1:5432/test, --out FILE, --docs / --no-docs,
// --systems tq-redis,bullmq,…, --no-sqs, --no-postgres,
// --sections enqueue,e2e,cold,latency,memory,delayed,transactions (cold: a fresh worker process per run drains
// the first 20 000 messages, its GC profiled), --backlog N (delayed messages present
// in the PostgreSQL backlog scenario), --tx N (transactions timed per kind),
// --middleware default|none, --profile DIR (CPU profiles
// of the agent processes, `node --cpu-prof`), --memory-processed N, --concurrency 1,8,100,
// --processes 1,2, --rounds R, --render FILE (rewrite the docs from a saved report, measure nothing).
// With 2 processes, agent1 only consumes: profile it for the worker's hot path.
//
// How it works: this process only orchestrates. Producers and consumers run in agent processes
// (src/peers/agent.ts, bundled by esbuild and started under plain `node`) that
// report how many messages their no-op handlers ran, and when the last one ran, over IPC: no
// TypeScript loader costs CPU or memory in them. The memory and cold scenarios run their
// consumer in a fresh process. See docs/benchmarks.md for the method.
//
// A run of PostgreSQL systems only (--systems tq-postgres,graphile-worker,pg-boss) writes
// benchmarks/results/postgres.json and only the PostgreSQL part of the docs, leaving the rest.
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { loadavg } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { DEFAULT_PG_URL, dropBenchSchemas } from './peers/pg.ts'
import { now, type AgentMessage, type AgentRequest, type MemorySample, type SessionStats } from './peers/protocol.ts'
import { SYSTEMS, isPostgres, type BenchContext, type SystemName } from './peers/types.ts'
import { coldSection } from './cold-section.ts'
import { delayedBacklogSection, transactionSection, type Harness } from './postgres-sections.ts'
import { machineFacts } from './report/machine.ts'
import { writeDocs } from './report/markdown.ts'
import type {
  BenchReport,
  ColdResult,
  DelayedBacklogResult,
  EndToEndResult,
  EnqueueResult,
  Failure,
  LatencyResult,
  MemoryPoint,
  MemoryResult,
  Settings,
  TransactionCostResult,
} from './report/types.ts'

const here = dirname(fileURLToPath(import.meta.url))
const benchDir = resolve(here, '..')
const repoRoot = resolve(benchDir, '..')

// ---- options -----------------------------------------------------------------------------

const SECTIONS = ['enqueue', 'e2e', 'cold', 'latency', 'memory', 'delayed', 'transactions'] as const
type Section = (typeof SECTIONS)[number]

interface Options {
  quick: boolean
  n: number | undefined
  redisUrl: string
  amqpUrl: string
  pgUrl: string
  out: string | undefined
  docs: boolean | undefined
  systems: SystemName[]
  sections: Section[]
  middleware: 'default' | 'none'
  profile: string | undefined
  memoryProcessed: number | undefined
  concurrencies: number[] | undefined
  processes: number[] | undefined
  rounds: number | undefined
  render: string | undefined
  backlog: number | undefined
  tx: number | undefined
  nConcurrency1: number | undefined
}

function parseArgs(argv: string[]): Options {
  const args = argv.filter((a) => a !== '--')
  const options: Options = {
    quick: false,
    n: undefined,
    redisUrl: process.env['TQ_BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379/10',
    amqpUrl: process.env['TQ_BENCH_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672',
    pgUrl: process.env['TQ_BENCH_PG_URL'] ?? DEFAULT_PG_URL,
    out: undefined,
    docs: undefined,
    systems: [...SYSTEMS],
    sections: [...SECTIONS],
    middleware: 'default',
    profile: undefined,
    memoryProcessed: undefined,
    concurrencies: undefined,
    processes: undefined,
    rounds: undefined,
    render: undefined,
    backlog: undefined,
    tx: undefined,
    nConcurrency1: undefined,
  }
  let redisDb: string | undefined
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    const value = (): string => {
      const v = args[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    const list = <T extends string>(allowed: readonly T[]): T[] => {
      const items = value().split(',').filter(Boolean)
      for (const item of items) if (!allowed.includes(item as T)) throw new Error(`${arg}: unknown ${item}`)
      return items as T[]
    }
    switch (arg) {
      case '--quick':
        options.quick = true
        break
      case '--n':
        options.n = Number(value())
        break
      case '--n-c1':
        options.nConcurrency1 = Number(value())
        break
      case '--redis-url':
        options.redisUrl = value()
        break
      case '--redis-db':
        redisDb = value()
        break
      case '--amqp-url':
        options.amqpUrl = value()
        break
      case '--pg-url':
        options.pgUrl = value()
        break
      case '--backlog':
        options.backlog = Number(value())
        break
      case '--tx':
        options.tx = Number(value())
        break
      case '--no-postgres':
        options.systems = options.systems.filter((s) => !isPostgres(s))
        break
      case '--out':
        options.out = resolve(value())
        break
      case '--docs':
        options.docs = true
        break
      case '--no-docs':
        options.docs = false
        break
      case '--systems':
        options.systems = list(SYSTEMS)
        break
      case '--no-sqs':
        options.systems = options.systems.filter((s) => s !== 'tq-sqs')
        break
      case '--sections':
        options.sections = list(SECTIONS)
        break
      case '--middleware': {
        const m = value()
        if (m !== 'default' && m !== 'none') throw new Error('--middleware is default or none')
        options.middleware = m
        break
      }
      case '--profile':
        options.profile = resolve(value())
        break
      case '--memory-processed':
        options.memoryProcessed = Number(value())
        break
      case '--concurrency':
        options.concurrencies = value().split(',').map(Number)
        break
      case '--processes':
        options.processes = value().split(',').map(Number)
        break
      case '--rounds':
        options.rounds = Number(value())
        break
      case '--render':
        options.render = resolve(value())
        break
      default:
        throw new Error(`unknown option ${arg}`)
    }
  }
  if (redisDb !== undefined) {
    const url = new URL(options.redisUrl)
    url.pathname = `/${redisDb}`
    options.redisUrl = url.toString()
  }
  return options
}

const opts = parseArgs(process.argv.slice(2))
const quick = opts.quick
const N = opts.n ?? (quick ? 500 : 100_000)
/** The in-flight enqueue scenario: sends outstanding at once, and messages so sent. */
const IN_FLIGHT = { window: 100, n: quick ? 500 : 20_000, nSqs: quick ? 100 : 2_000 }

const settings: Settings = {
  n: N,
  nConcurrency1: opts.nConcurrency1 ?? N,
  rounds: opts.rounds ?? (quick ? 1 : 2),
  nSqs: Math.max(50, Math.round(N / 50)),
  nSingle: quick ? 100 : 5_000,
  nSingleSqs: quick ? 20 : 500,
  nInFlight: IN_FLIGHT.n,
  nInFlightSqs: IN_FLIGHT.nSqs,
  inFlightWindow: IN_FLIGHT.window,
  batch: 1000,
  concurrencies: opts.concurrencies ?? [1, 8, 100],
  processes: opts.processes ?? [1, 2],
  ceilingBatch: 200,
  latencyCount: quick ? 20 : 200,
  latencyRate: 50,
  latencyConcurrency: 8,
  memoryQueued: quick ? 5_000 : 100_000,
  memoryProcessed: opts.memoryProcessed ?? (quick ? 20_000 : 1_000_000),
  memoryPeerProcessed: quick ? 0 : 100_000,
  memoryConcurrency: 8,
  tqMiddleware: opts.middleware,
  systems: opts.systems,
  delayedBacklog: opts.backlog ?? (quick ? 20_000 : 1_000_000),
  delayedN: N,
  delayedConcurrency: 8,
  txCount: opts.tx ?? (quick ? 200 : 2000),
  coldN: quick ? 500 : 20_000,
}
/** Only PostgreSQL systems: results of their own, so that the main report (latest.json) stays. */
const postgresOnly = settings.systems.length > 0 && settings.systems.every(isPostgres)
const outFile =
  opts.out ?? join(benchDir, 'results', quick ? 'quick.json' : postgresOnly ? 'postgres.json' : 'latest.json')
const writeDocsToo = opts.docs ?? !quick
/** A run with no progress for this long has failed. */
const STALL_MS = quick ? 20_000 : 60_000

const runId = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`
const ctx: BenchContext = {
  redisUrl: opts.redisUrl,
  amqpUrl: opts.amqpUrl,
  pgUrl: opts.pgUrl,
  runId,
  tqMiddleware: opts.middleware,
}
const enabled = (system: SystemName): boolean => settings.systems.includes(system)
const failures: Failure[] = []

const fmt = (rate: number): string => Math.round(rate).toLocaleString('en-US')
const log = (line: string): void => console.log(line)
const debug = process.env['TQ_BENCH_DEBUG'] === '1'

// ---- agents --------------------------------------------------------------------------------

type Progress = Extract<AgentMessage, { t: 'progress' }>

/** A child process running src/peers/agent.ts (or its bundle), driven over IPC. */
class Agent {
  readonly child: ChildProcess
  readonly ready: Promise<void>
  onProgress: ((progress: Progress) => void) | undefined
  #nextId = 1
  readonly #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>()
  #exited = false
  readonly label: string

  constructor(label: string, script: string, execArgv: string[]) {
    this.label = label
    // One folder per agent.
    const profileArgs = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(opts.profile, `${label}-${runId}`)}`] : []
    this.child = fork(script, [], {
      cwd: benchDir,
      execArgv: [...execArgv, ...profileArgs],
      // The AWS SDK warns about Node < 22 on first use; the warning is noise here.
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    let markReady: () => void = () => undefined
    this.ready = new Promise<void>((resolve, reject) => {
      markReady = resolve
      this.child.once('exit', (code) => reject(new Error(`agent ${label} exited (${code}) before it was ready`)))
    })
    this.ready.catch(() => undefined)
    this.child.on('message', (message: AgentMessage) => {
      if (message.t === 'ready') markReady()
      else if (message.t === 'progress') this.onProgress?.(message)
      else {
        const pending = this.#pending.get(message.id)
        if (!pending) return
        this.#pending.delete(message.id)
        if (message.ok) pending.resolve(message.value)
        else pending.reject(new Error(`agent ${label}: ${message.error}`))
      }
    })
    this.child.on('exit', (code, signal) => {
      this.#exited = true
      for (const pending of this.#pending.values())
        pending.reject(new Error(`agent ${label} exited (${code ?? signal})`))
      this.#pending.clear()
    })
  }

  get alive(): boolean {
    return !this.#exited
  }

  call<T>(request: AgentRequest): Promise<T> {
    if (this.#exited) return Promise.reject(new Error(`agent ${this.label} is gone`))
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.child.send({ ...request, id })
    })
  }

  /** Close the IPC channel (the agent exits); kill it if it has not exited after 10 s. */
  async close(): Promise<void> {
    if (this.#exited) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    if (this.child.connected) this.child.disconnect()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
}

const agentScript = join(here, 'peers', 'agent.ts')
const pool: Agent[] = []
/**
 * Every agent runs the bundled agent under plain `node`, as an application runs its compiled
 * code: under tsx, every function tq creates per message would also pay for the `__name`
 * calls tsx adds (about 5 % of the worker's CPU at c=8), which no user runs.
 */
const bundleDir = join(benchDir, 'node_modules', '.cache', 'tq-bench', runId)
let agentBundle: Promise<string> | undefined

async function ensurePool(size: number): Promise<Agent[]> {
  agentBundle ??= bundleAgent(bundleDir)
  const bundle = await agentBundle
  for (let i = 0; i < size; i++) {
    if (!pool[i]?.alive) pool[i] = new Agent(`agent${i}`, bundle, [])
  }
  await Promise.all(pool.slice(0, size).map((a) => a.ready))
  return pool.slice(0, size)
}

// ---- servers --------------------------------------------------------------------------------

const redis = new Redis(ctx.redisUrl, { lazyConnect: true })

/** Key prefixes the systems write under: tq, the raw ceiling, BullMQ and bee-queue (their defaults). */
const BENCH_KEY_PATTERNS = ['tqbench:*', 'rawbench:*', 'bull:*', 'bq:*']

/** Delete what earlier scenarios left, and nothing else in the database. */
async function resetRedis(): Promise<void> {
  for (const match of BENCH_KEY_PATTERNS) {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.unlink(...keys)
    } while (cursor !== '0')
  }
}

/**
 * Before a scenario: Redis loses the bench keys; a PostgreSQL system's schema is dropped and
 * migrated again (in `agent`, which loads the system's library), so no migration runs on the clock.
 */
async function resetFor(agent: Agent, system: SystemName): Promise<void> {
  if (isPostgres(system)) await agent.call({ t: 'prepare', system, ctx })
  else await resetRedis()
}

async function cleanup(agent: Agent, system: SystemName, queue: string): Promise<void> {
  await agent.call({ t: 'cleanup', system, ctx, queue }).catch((error: unknown) => {
    log(`  (cleanup of ${system} ${queue} failed: ${String(error)})`)
  })
}

let stopFauxqs: (() => Promise<void>) | undefined

async function startFauxqs(): Promise<void> {
  const { buildApp } = await import('fauxqs')
  const app = buildApp({ logger: false, defaultRegion: 'us-east-1' })
  ctx.sqsEndpoint = await app.listen({ host: '127.0.0.1', port: 0 })
  stopFauxqs = async () => {
    await app.close()
  }
}

// ---- scenarios ------------------------------------------------------------------------------

const queueName = (...parts: Array<string | number>): string => parts.join('_').replace(/[^A-Za-z0-9_]/g, '_')

async function record<T>(scenario: string, system: SystemName, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn()
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    failures.push({ scenario, system, error: message })
    log(`  FAILED ${scenario} ${system}: ${message.split('\n')[0] ?? ''}`)
    // An agent in an unknown state is replaced before the next scenario.
    for (const agent of pool) {
      await agent.call({ t: 'stop' }).catch(() => agent.close())
    }
    return undefined
  }
}

/**
 * Start the consumers of `agents` at once and wait until they processed `n` messages in all (or
 * until `maxMs` has passed, when given: the stats then count fewer); returns the start time and
 * each agent's stats.
 */
async function drain(
  agents: Agent[],
  n: number,
  onProgress?: (total: number, progress: Progress) => void,
  maxMs?: number,
): Promise<{ t0: number; stats: SessionStats[] }> {
  const started = Date.now()
  const counts = agents.map(() => 0)
  let lastChange = Date.now()
  let settle: (error?: Error) => void = () => undefined
  const done = new Promise<void>((resolve, reject) => (settle = (error) => (error ? reject(error) : resolve())))
  agents.forEach((agent, i) => {
    agent.onProgress = (progress) => {
      if (progress.count !== counts[i]) {
        counts[i] = progress.count
        lastChange = Date.now()
      }
      const total = counts.reduce((a, b) => a + b, 0)
      onProgress?.(total, progress)
      if (total >= n) settle()
    }
  })
  const watchdog = setInterval(() => {
    if (maxMs !== undefined && Date.now() - started > maxMs) settle()
    else if (Date.now() - lastChange > STALL_MS) {
      settle(new Error(`no progress for ${STALL_MS / 1000} s at ${counts.reduce((a, b) => a + b, 0)} of ${n}`))
    }
  }, 500)
  try {
    const t0 = now()
    await Promise.all(agents.map((agent) => agent.call({ t: 'go' })))
    await done
    const stats = await Promise.all(agents.map((agent) => agent.call<SessionStats>({ t: 'stop' })))
    return { t0, stats }
  } finally {
    clearInterval(watchdog)
    for (const agent of agents) agent.onProgress = undefined
  }
}

const endToEnd: EndToEndResult[] = []
const fills = new Map<SystemName, number[]>()

/** `round` -1 is a warm-up: run, but keep nothing. */
async function runEndToEnd(system: SystemName, concurrency: number, processes: number, round: number): Promise<void> {
  const warmup = round < 0
  const n = warmup
    ? Math.min(system === 'tq-sqs' ? settings.nSqs : N, quick ? 200 : 5000)
    : system === 'tq-sqs'
      ? settings.nSqs
      : concurrency === 1
        ? settings.nConcurrency1
        : N
  const label = `${system} c=${concurrency} ×${processes}${warmup ? ' warm-up' : settings.rounds > 1 ? ` #${round + 1}` : ''}`
  await record(`end-to-end c=${concurrency} ×${processes}`, system, async () => {
    const phases: Array<[string, number]> = [['begin', performance.now()]]
    const phase = (name: string): void => void phases.push([name, performance.now()])
    const agents = await ensurePool(processes)
    const producer = agents[0] as Agent
    await resetFor(producer, system)
    const queue = queueName('e2e', system, concurrency, processes)
    await Promise.all(
      agents.map((agent, i) => agent.call({ t: 'open', system, ctx, queue, producer: i === 0, concurrency })),
    )
    phase('open')
    const fillMs = await producer.call<number>({ t: 'fill', count: n, start: 0, batch: settings.batch })
    phase('fill')
    const { t0, stats } = await drain(agents, n)
    phase('drain+stop')
    const processed = stats.reduce((a, s) => a + s.count, 0)
    if (processed !== n) throw new Error(`processed ${processed} messages, expected ${n}`)
    const ms = Math.max(...stats.filter((s) => s.count > 0).map((s) => s.lastAt)) - t0
    await cleanup(producer, system, queue)
    phase('cleanup')
    if (debug)
      log(
        `    ${phases
          .slice(1)
          .map(([name, t], i) => `${name} ${(t - (phases[i] as [string, number])[1]).toFixed(0)} ms`)
          .join(', ')}`,
      )
    const result: EndToEndResult = {
      system,
      concurrency,
      processes,
      n,
      ms,
      rate: (n / ms) * 1000,
      fillMs,
      peakRssMb: Math.max(...stats.map((s) => s.peakRss)) / 2 ** 20,
      rounds: [],
    }
    if (warmup) {
      if (debug) log(`  ${label.padEnd(26)} ${fmt(result.rate).padStart(9)} msgs/s (not kept)`)
      return
    }
    // Keep the best round (the one least disturbed by other work), and every round's rate.
    const previous = endToEnd.findIndex(
      (r) => r.system === system && r.concurrency === concurrency && r.processes === processes,
    )
    if (previous < 0) {
      result.rounds = [result.rate]
      endToEnd.push(result)
    } else {
      const old = endToEnd[previous] as EndToEndResult
      result.rounds = [...old.rounds, result.rate]
      endToEnd[previous] = result.rate > old.rate ? result : { ...old, rounds: result.rounds }
    }
    fills.set(system, [...(fills.get(system) ?? []), (n / fillMs) * 1000])
    log(`  ${label.padEnd(26)} ${fmt(result.rate).padStart(9)} msgs/s   (enqueue ${fmt((n / fillMs) * 1000)} msgs/s)`)
  })
}

/** Which systems run in which cell: ceilings only at the highest concurrency, in-memory ones in one process. */
function cellSystems(concurrency: number, processes: number): SystemName[] {
  const top = Math.max(...settings.concurrencies)
  return settings.systems.filter((system) => {
    if (system === 'raw-redis' || system === 'raw-amqp') return concurrency === top
    if (system === 'tq-stub' || system === 'tq-sqs') return processes === 1
    return true
  })
}

async function endToEndSection(): Promise<void> {
  log(
    `\nend to end: ${fmt(N)} no-op messages (${fmt(settings.nConcurrency1)} at concurrency 1) queued first, then drained ` +
      `(worker start → last message processed); ${settings.rounds} round(s), best kept`,
  )
  // Warm every system up in every agent first (JIT, connections, scripts loaded), unmeasured:
  // otherwise whichever system runs first pays for it.
  const agents = Math.max(...settings.processes)
  for (const system of settings.systems) {
    await runEndToEnd(system, 8, system === 'tq-stub' || system === 'tq-sqs' ? 1 : agents, -1)
  }
  let cell = 0
  for (let round = 0; round < settings.rounds; round++) {
    for (const processes of settings.processes) {
      for (const concurrency of settings.concurrencies) {
        const systems = cellSystems(concurrency, processes)
        // Rotate the order from cell to cell so no system always runs first (or right after another).
        const shift = cell++ % Math.max(1, systems.length)
        for (const system of [...systems.slice(shift), ...systems.slice(0, shift)]) {
          await runEndToEnd(system, concurrency, processes, round)
        }
      }
    }
  }
}

const singles = new Map<SystemName, number>()
const inFlight = new Map<SystemName, number>()

async function enqueueSection(): Promise<void> {
  log(`\nenqueue one at a time, each awaited (${fmt(settings.nSingle)} messages)`)
  for (const system of settings.systems) {
    await record('enqueue one at a time', system, async () => {
      const [agent] = (await ensurePool(1)) as [Agent]
      await resetFor(agent, system)
      const queue = queueName('single', system)
      await agent.call({ t: 'open', system, ctx, queue, producer: true })
      const count = system === 'tq-sqs' ? settings.nSingleSqs : settings.nSingle
      const ms = await agent.call<number>({ t: 'single', count })
      await agent.call({ t: 'stop' })
      await cleanup(agent, system, queue)
      singles.set(system, (count / ms) * 1000)
      log(`  ${system.padEnd(26)} ${fmt((count / ms) * 1000).padStart(9)} msgs/s (${fmt(count)})`)
    })
  }
  log(`\nenqueue, ${IN_FLIGHT.window} sends in flight (${fmt(IN_FLIGHT.n)} messages)`)
  for (const system of settings.systems) {
    await record(`enqueue ${IN_FLIGHT.window} in flight`, system, async () => {
      const [agent] = (await ensurePool(1)) as [Agent]
      await resetFor(agent, system)
      const queue = queueName('inflight', system)
      await agent.call({ t: 'open', system, ctx, queue, producer: true })
      const count = system === 'tq-sqs' ? IN_FLIGHT.nSqs : IN_FLIGHT.n
      const ms = await agent.call<number>({ t: 'inFlight', count, window: IN_FLIGHT.window })
      await agent.call({ t: 'stop' })
      await cleanup(agent, system, queue)
      inFlight.set(system, (count / ms) * 1000)
      log(`  ${system.padEnd(26)} ${fmt((count / ms) * 1000).padStart(9)} msgs/s (${fmt(count)})`)
    })
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN
}

const latency: LatencyResult[] = []

async function latencySection(): Promise<void> {
  log(
    `\nidle latency: enqueue → handler start, ${settings.latencyCount} messages at ${settings.latencyRate}/s, producer and consumer in one process`,
  )
  for (const system of settings.systems) {
    // raw amqplib's consumer is pushed to like tq's: its latency is RabbitMQ's floor. The raw
    // Redis consumer polls, so it has no idle latency worth reporting.
    if (system === 'raw-redis') continue
    await record('idle latency', system, async () => {
      const [agent] = (await ensurePool(1)) as [Agent]
      await resetFor(agent, system)
      const queue = queueName('latency', system)
      const samples = await agent.call<number[]>({
        t: 'latency',
        system,
        ctx,
        queue,
        count: settings.latencyCount,
        rate: settings.latencyRate,
        concurrency: settings.latencyConcurrency,
      })
      await cleanup(agent, system, queue)
      const sorted = [...samples].sort((a, b) => a - b)
      const result: LatencyResult = {
        system,
        n: samples.length,
        rate: settings.latencyRate,
        p50: percentile(sorted, 50),
        p90: percentile(sorted, 90),
        p99: percentile(sorted, 99),
        max: sorted[sorted.length - 1] ?? NaN,
      }
      latency.push(result)
      log(
        `  ${system.padEnd(26)} p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, max ${result.max.toFixed(2)} ms`,
      )
    })
  }
}

// ---- memory -------------------------------------------------------------------------------

/** Bundle the agent (workspace sources included, npm packages left external) for plain `node`. */
async function bundleAgent(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true })
  const { build } = await import('esbuild')
  await build({
    entryPoints: [agentScript],
    outdir: dir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outExtension: { '.js': '.mjs' },
    conditions: ['@tq/source'],
    logLevel: 'warning',
    plugins: [
      {
        name: 'external-npm-packages',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (args) =>
            args.path.startsWith('@tq/') ? undefined : { path: args.path, external: true },
          )
        },
      },
    ],
  })
  // @tq/redis reads its Lua scripts from ./lua/ next to its module: put them next to the chunks.
  const redisPackage = createRequire(import.meta.url).resolve('@tq/redis/package.json')
  cpSync(join(dirname(redisPackage), 'src', 'lua'), join(dir, 'lua'), { recursive: true })
  return join(dir, 'agent.mjs')
}

const memory: MemoryResult[] = []

async function memoryRun(bundle: string, system: SystemName, queued: number, processed: number): Promise<void> {
  await record('memory', system, async () => {
    const [producer] = (await ensurePool(1)) as [Agent]
    await resetFor(producer, system)
    const queue = queueName('memory', system)
    await producer.call({ t: 'open', system, ctx, queue, producer: true })
    const t = performance.now()
    const mark = (what: string): void => {
      if (debug) log(`    ${what} at ${(performance.now() - t).toFixed(0)} ms`)
    }
    const consumer = new Agent(`memory-${system}`, bundle, [])
    try {
      await consumer.ready
      mark('consumer ready')
      await producer.call({ t: 'fill', count: queued, start: 0, batch: settings.batch })
      mark('filled')
      let enqueued = queued
      await consumer.call({ t: 'open', system, ctx, queue, producer: false, concurrency: settings.memoryConcurrency })
      await sleep(quick ? 200 : 1000) // connected and idle
      const idle = await consumer.call<MemorySample>({ t: 'memory' })
      mark('opened')
      const series: MemoryPoint[] = []
      let done = 0
      const topUp = Math.max(settings.batch, Math.round(queued / 10))
      let topping = false
      const started = now()
      const drained = drain([consumer], processed, (total, progress) => {
        done = total
        series.push({ processed: total, rssMb: progress.rss / 2 ** 20, heapMb: progress.heapUsed / 2 ** 20 })
        // Keep the backlog near `queued` until `processed` messages have been enqueued in all.
        if (!topping && enqueued < processed && enqueued - done <= queued - topUp) {
          topping = true
          const count = Math.min(topUp, processed - enqueued)
          producer
            .call({ t: 'fill', count, start: enqueued, batch: settings.batch })
            .then(() => (enqueued += count))
            .catch((error: unknown) => log(`  top-up failed: ${String(error)}`))
            .finally(() => (topping = false))
        }
      })
      const { stats } = await drained
      mark('drained')
      const [stat] = stats as [SessionStats]
      const ms = stat.lastAt - started
      await producer.call({ t: 'stop' })
      await cleanup(producer, system, queue)
      mark('cleaned up')
      const mb = (bytes: number): number => bytes / 2 ** 20
      const firstFifth = series.filter((p) => p.processed <= queued / 5)
      const tenth = series.find((p) => p.processed >= processed / 10) ?? series[0]
      const last = series[series.length - 1]
      const result: MemoryResult = {
        system,
        concurrency: settings.memoryConcurrency,
        queued,
        processed,
        idleMb: mb(idle.rss),
        queuedMb: Math.max(mb(idle.rss), ...firstFifth.map((p) => p.rssMb)),
        tenthMb: tenth?.rssMb ?? NaN,
        endMb: mb(stat.rss),
        peakMb: mb(stat.peakRss),
        heapTenthMb: tenth?.heapMb ?? NaN,
        heapEndMb: last?.heapMb ?? NaN,
        rate: (processed / ms) * 1000,
        series: downsample(series, processed),
      }
      memory.push(result)
      log(
        `  ${system.padEnd(14)} ${fmt(queued)} queued, ${fmt(processed)} processed: idle ${result.idleMb.toFixed(0)} MB, ` +
          `queued ${result.queuedMb.toFixed(0)} MB, at 10 % ${result.tenthMb.toFixed(0)} MB, end ${result.endMb.toFixed(0)} MB, ` +
          `peak ${result.peakMb.toFixed(0)} MB (heap ${result.heapTenthMb.toFixed(0)} → ${result.heapEndMb.toFixed(0)} MB)`,
      )
    } finally {
      await consumer.close()
      mark('closed')
    }
  })
}

/** About twenty points: the sample closest after each 5 % of `total`. */
function downsample(series: MemoryPoint[], total: number): MemoryPoint[] {
  const out: MemoryPoint[] = []
  for (let step = 1; step <= 20; step++) {
    const point = series.find((p) => p.processed >= (total * step) / 20)
    if (point && out[out.length - 1] !== point) out.push(point)
  }
  return out
}

async function memorySection(): Promise<void> {
  log(
    `\nworker memory (RSS of a fresh worker process under plain node, concurrency ${settings.memoryConcurrency}; ` +
      `the producer keeps the backlog near ${fmt(settings.memoryQueued)})`,
  )
  {
    agentBundle ??= bundleAgent(bundleDir)
    const bundle = await agentBundle
    // The quick mode checks the harness: tq on Redis only (the peers' runs cost seconds each).
    const runs: Array<[SystemName, number]> = [
      ['tq-redis', settings.memoryProcessed],
      ...(quick
        ? []
        : ([
            ['bullmq', settings.memoryPeerProcessed],
            ['bee-queue', settings.memoryPeerProcessed],
            ['tq-rabbitmq', settings.memoryPeerProcessed],
          ] as Array<[SystemName, number]>)),
    ]
    for (const [system, processed] of runs) {
      if (enabled(system)) await memoryRun(bundle, system, settings.memoryQueued, processed)
    }
  }
}

// ---- main ---------------------------------------------------------------------------------

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

async function main(): Promise<number> {
  const startedAt = new Date()
  const t0 = performance.now()
  const delayed: DelayedBacklogResult[] = []
  const transactions: TransactionCostResult[] = []
  const cold: ColdResult[] = []
  await redis.connect()
  const machine = await machineFacts(ctx.redisUrl, ctx.amqpUrl, ctx.pgUrl)
  log(`tq benchmark${quick ? ' (--quick)' : ''}: ${fmt(N)} messages per run, tq middleware: ${settings.tqMiddleware}`)
  log(
    `${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, node ${machine.node}, ` +
      `Redis ${machine.redis} (${ctx.redisUrl}), RabbitMQ ${machine.rabbitmq}, PostgreSQL ${machine.postgres ?? '?'}, ` +
      `load ${machine.loadStart.toFixed(1)}`,
  )
  if (machine.postgres === 'unreachable' && settings.systems.some(isPostgres)) {
    settings.systems = settings.systems.filter((s) => !isPostgres(s))
    failures.push({ scenario: 'setup', system: 'tq-postgres', error: `PostgreSQL unreachable at ${ctx.pgUrl}` })
  }
  if (machine.rabbitmq === 'unreachable') {
    settings.systems = settings.systems.filter((s) => s !== 'tq-rabbitmq' && s !== 'raw-amqp')
    failures.push({ scenario: 'setup', system: 'tq-rabbitmq', error: `RabbitMQ unreachable at ${ctx.amqpUrl}` })
  }
  if (enabled('tq-sqs')) {
    try {
      await startFauxqs()
    } catch (error) {
      settings.systems = settings.systems.filter((s) => s !== 'tq-sqs')
      failures.push({ scenario: 'setup', system: 'tq-sqs', error: `fauxqs did not start: ${String(error)}` })
    }
  }
  if (opts.profile) mkdirSync(opts.profile, { recursive: true })

  try {
    const spawnStarted = performance.now()
    await ensurePool(Math.max(...settings.processes))
    if (debug) log(`  (agents ready: ${((performance.now() - spawnStarted) / 1000).toFixed(1)} s)`)
    const timed = async (section: Section, fn: () => Promise<void>): Promise<void> => {
      if (!opts.sections.includes(section)) return
      const started = performance.now()
      await fn()
      if (debug) log(`  (${section}: ${((performance.now() - started) / 1000).toFixed(1)} s)`)
    }
    await timed('enqueue', enqueueSection)
    await timed('e2e', endToEndSection)
    await timed('latency', latencySection)
    await timed('memory', memorySection)
    const harness: Harness<Agent> = {
      settings,
      ctx,
      ensurePool,
      drain: (agents, n, maxMs) => drain(agents, n, undefined, maxMs),
      record,
      reset: resetFor,
      log,
    }
    await timed('delayed', async () => void delayed.push(...(await delayedBacklogSection(harness))))
    await timed('transactions', async () => void transactions.push(...(await transactionSection(harness))))
    await timed('cold', async () => void cold.push(...(await coldSection(harness, settings.coldN ?? N))))
  } finally {
    await Promise.all(pool.map((agent) => agent.close()))
    rmSync(bundleDir, { recursive: true, force: true })
    await resetRedis().catch(() => undefined)
    if (settings.systems.some(isPostgres)) await dropBenchSchemas(ctx.pgUrl).catch(() => undefined)
    redis.disconnect()
    await stopFauxqs?.()
  }

  const enqueue: EnqueueResult[] = settings.systems
    .filter((system) => fills.has(system) || singles.has(system))
    .map((system) => ({
      system,
      bulkRate: median(fills.get(system) ?? [NaN]),
      fills: fills.get(system)?.length ?? 0,
      singleN: system === 'tq-sqs' ? settings.nSingleSqs : settings.nSingle,
      singleRate: singles.get(system) ?? NaN,
      inFlightN: system === 'tq-sqs' ? IN_FLIGHT.nSqs : IN_FLIGHT.n,
      inFlightRate: inFlight.get(system) ?? NaN,
    }))
  machine.loadEnd = loadavg()[0] ?? 0
  const report: BenchReport = {
    version: 1,
    mode: quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    durationS: Math.round((performance.now() - t0) / 100) / 10,
    settings,
    machine,
    endToEnd,
    enqueue,
    latency,
    memory,
    delayed,
    transactions,
    cold,
    failures,
  }
  mkdirSync(dirname(outFile), { recursive: true })
  writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`)
  log(`\nraw results: ${outFile}`)
  if (writeDocsToo) {
    const written = writeDocs(report, join(repoRoot, 'docs'), basename(outFile))
    log(`report: ${written.join(', ')}`)
  }
  log(`done in ${report.durationS} s${failures.length ? `, ${failures.length} failure(s)` : ''}`)
  return failures.length ? 1 : 0
}

if (opts.render) {
  // Re-render the parts of docs/benchmarks.md (and the charts) the saved report has; measure nothing.
  const report = JSON.parse(readFileSync(opts.render, 'utf8')) as BenchReport
  log(`report: ${writeDocs(report, join(repoRoot, 'docs'), basename(opts.render)).join(', ')}`)
} else {
  process.exitCode = await main()
}
