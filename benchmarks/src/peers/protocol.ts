// Messages between the orchestrator (src/bench.ts) and its agent processes (src/peers/agent.ts),
// sent over the Node IPC channel of a forked child.
import type { BenchContext, SystemName } from './types.ts'

export type AgentRequest =
  /** Create a producer and/or a consumer of one system on one queue (the agent's current session). */
  | {
      t: 'open'
      system: SystemName
      ctx: BenchContext
      queue: string
      producer: boolean
      concurrency?: number
      /** Measure the consumer's garbage collection from `go` to `stop` (`SessionStats.gc`). */
      measureGc?: boolean
    }
  /** Enqueue `count` messages (values `start…`) with bulk calls of `batch`; replies with the time taken (ms). */
  | { t: 'fill'; count: number; start: number; batch: number }
  /** Enqueue `count` messages one at a time, each awaited; replies with the time taken (ms). */
  | { t: 'single'; count: number }
  /** Enqueue `count` messages with `window` sends outstanding at once; replies with the time taken (ms). */
  | { t: 'inFlight'; count: number; window: number }
  /** Start the consumer; progress events follow. */
  | { t: 'go' }
  /** Stop the consumer and close the session; replies with its `SessionStats`. */
  | { t: 'stop' }
  /** Idle latency: enqueue `count` messages at `rate` per second to an idle consumer in this process. */
  | {
      t: 'latency'
      system: SystemName
      ctx: BenchContext
      queue: string
      count: number
      rate: number
      concurrency: number
    }
  /** Remove a scenario's queues from the server. */
  | { t: 'cleanup'; system: SystemName; ctx: BenchContext; queue: string }
  /** Memory now. */
  | { t: 'memory' }
  /** Reset a system's server-side state and migrate it (before a scenario's clock starts). */
  | { t: 'prepare'; system: SystemName; ctx: BenchContext }
  /** Enqueue `count` messages due in `delayMs` on `queue`; replies with the time taken (ms). */
  | { t: 'seed'; system: SystemName; ctx: BenchContext; queue: string; count: number; delayMs: number }
  /** Time `count` transactions with and without one enqueue inside each; replies with a `TransactionSample`. */
  | { t: 'transactions'; system: SystemName; ctx: BenchContext; queue: string; count: number }

export type AgentEnvelope = AgentRequest & { id: number }

export interface SessionStats {
  /** Messages the consumer processed. */
  count: number
  /** When the last one was processed: `performance.timeOrigin + performance.now()` (ms, sub-ms precision). */
  lastAt: number
  /** Highest RSS sampled while the consumer ran (bytes). */
  peakRss: number
  rss: number
  /** With `measureGc`: collections, their time and the bytes allocated from `go` to `stop`. */
  gc?: GcStats
}

/** What a consumer's garbage collector did while it ran (from `v8.GCProfiler`). */
export interface GcStats {
  collections: number
  /** Time spent in collections (ms). */
  ms: number
  /** Bytes allocated on the JS heap: the growth between collections, summed. */
  allocated: number
}

/** What the transaction scenario measured in an agent (times per transaction, ms). */
export interface TransactionSample {
  count: number
  /** BEGIN, the application's INSERT, COMMIT. */
  baselineMedianMs: number
  baselineMeanMs: number
  /** The same with one enqueue before COMMIT. */
  withSendMedianMs: number
  withSendMeanMs: number
  /** Statements sent on the application's connection per transaction, without and with the enqueue. */
  baselineStatements: number
  withSendStatements: number
  /** Statements the system ran on connections of its own per send (undefined: it cannot tell). */
  outsideStatements: number | undefined
}

export interface MemorySample {
  rss: number
  heapUsed: number
}

export type AgentMessage =
  | { t: 'reply'; id: number; ok: true; value: unknown }
  | { t: 'reply'; id: number; ok: false; error: string }
  /** Sent every `PROGRESS_INTERVAL` ms while a consumer runs. */
  | { t: 'progress'; count: number; lastAt: number; rss: number; heapUsed: number }
  | { t: 'ready' }

export const PROGRESS_INTERVAL = 50

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export const now = (): number => performance.timeOrigin + performance.now()
