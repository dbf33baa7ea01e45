// The shape of benchmarks/results/*.json: raw results of one `pnpm bench` run.
import type { SystemName } from '../peers/types.ts'

export interface MachineFacts {
  cpuModel: string
  cores: number
  memoryGiB: number
  os: string
  node: string
  redis: string
  rabbitmq: string
  /** PostgreSQL server version (absent in reports from before the PostgreSQL systems). */
  postgres?: string
  /** Installed versions of the peer libraries and clients (absent in older reports). */
  versions?: Record<string, string>
  /** 1-minute load average when the run started and when it ended (other work on the machine). */
  loadStart: number
  loadEnd: number
}

export interface Settings {
  /** Messages per end-to-end run. */
  n: number
  /** Messages per end-to-end run at concurrency 1 (slow everywhere; fewer in the full run). */
  nConcurrency1: number
  /** End-to-end runs per cell, interleaved; the report keeps the best (the least disturbed). */
  rounds: number
  /** Messages per end-to-end run on SQS (fauxqs is slow; fewer). */
  nSqs: number
  /** Messages enqueued one at a time (awaited) per system, and on SQS. */
  nSingle: number
  nSingleSqs: number
  /** Sends in flight at once, and messages so sent (absent in reports before it was measured). */
  inFlightWindow?: number
  nInFlight?: number
  nInFlightSqs?: number
  /** Bulk enqueue batch size. */
  batch: number
  concurrencies: number[]
  processes: number[]
  /** Ceiling consumers: RPOP pipeline depth / AMQP prefetch (tq's prefetch at the highest concurrency). */
  ceilingBatch: number
  latencyCount: number
  latencyRate: number
  latencyConcurrency: number
  /** Memory scenario: backlog kept queued, messages processed by tq, and by the peers. */
  memoryQueued: number
  memoryProcessed: number
  memoryPeerProcessed: number
  memoryConcurrency: number
  tqMiddleware: 'default' | 'none'
  systems: SystemName[]
  /** PostgreSQL: delayed messages present during the backlog scenario, its due messages and concurrency. */
  delayedBacklog?: number
  delayedN?: number
  delayedConcurrency?: number
  /** PostgreSQL: transactions timed per kind (with and without an enqueue). */
  txCount?: number
  /** Messages a fresh worker drains in the cold scenario. */
  coldN?: number
}

export interface EndToEndResult {
  system: SystemName
  concurrency: number
  processes: number
  n: number
  /** Worker start → last message processed (ms). */
  ms: number
  rate: number
  /** The bulk fill before the run (ms), for the enqueue rate. */
  fillMs: number
  peakRssMb: number
  /** The rate of every round (the row is the best one). */
  rounds: number[]
}

export interface EnqueueResult {
  system: SystemName
  /** Median over the bulk fills of the end-to-end runs (messages per second). */
  bulkRate: number
  fills: number
  singleN: number
  singleRate: number
  /** Sends with `inFlightWindow` outstanding at once (absent in reports before it was measured). */
  inFlightN?: number
  inFlightRate?: number
}

export interface LatencyResult {
  system: SystemName
  n: number
  rate: number
  p50: number
  p90: number
  p99: number
  max: number
}

export interface MemoryPoint {
  processed: number
  rssMb: number
  heapMb: number
}

export interface MemoryResult {
  system: SystemName
  concurrency: number
  queued: number
  processed: number
  /** RSS after connecting, before processing. */
  idleMb: number
  /** Highest RSS while the first fifth of the backlog was processed (the backlog still ≥ 80 % full). */
  queuedMb: number
  /** RSS when a tenth of `processed` was done, and at the end (before stopping). */
  tenthMb: number
  endMb: number
  peakMb: number
  heapTenthMb: number
  heapEndMb: number
  rate: number
  series: MemoryPoint[]
}

export interface DelayedBacklogResult {
  system: SystemName
  /** Delayed messages (due in a day) in the table during the drain. */
  backlog: number
  /** Due messages drained per round, at `concurrency`. */
  n: number
  concurrency: number
  seedMs: number
  /** Median of `rounds` (messages / s, worker start → last message processed). */
  rate: number
  rounds: number[]
  /** A round hit the time limit: its rate counts the messages that ran in it. */
  partial?: boolean
}

export interface TransactionCostResult {
  system: SystemName
  count: number
  baselineMedianMs: number
  baselineMeanMs: number
  withSendMedianMs: number
  withSendMeanMs: number
  baselineStatements: number
  withSendStatements: number
  outsideStatements: number | undefined
  /** withSend − baseline, medians (ms). */
  extraMs: number
  /** Statements the enqueue added to the transaction. */
  extraStatements: number
}

export interface Failure {
  scenario: string
  system: SystemName
  error: string
}

export interface BenchReport {
  version: 1
  mode: 'quick' | 'full'
  startedAt: string
  durationS: number
  settings: Settings
  machine: MachineFacts
  endToEnd: EndToEndResult[]
  enqueue: EnqueueResult[]
  latency: LatencyResult[]
  memory: MemoryResult[]
  /** PostgreSQL scenarios (absent in reports from before them). */
  delayed?: DelayedBacklogResult[]
  transactions?: TransactionCostResult[]
  /** Fresh worker processes, no warm-up (absent in reports from before it). */
  cold?: ColdResult[]
  failures: Failure[]
}

/** One system at one concurrency, drained by a worker process that had run nothing before. */
export interface ColdResult {
  system: SystemName
  concurrency: number
  n: number
  /** Median of the rounds (messages / s). */
  rate: number
  rounds: number[]
  /** Garbage collection time per message (ms), median of the rounds. */
  gcMsPerMessage: number
  /** JS heap bytes allocated per message, median of the rounds. */
  bytesPerMessage: number
  collections: number
}
