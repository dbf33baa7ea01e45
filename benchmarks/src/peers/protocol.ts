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
    }
  /** Enqueue `count` messages (values `start…`) with bulk calls of `batch`; replies with the time taken (ms). */
  | { t: 'fill'; count: number; start: number; batch: number }
  /** Enqueue `count` messages one at a time, each awaited; replies with the time taken (ms). */
  | { t: 'single'; count: number }
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

export type AgentEnvelope = AgentRequest & { id: number }

export interface SessionStats {
  /** Messages the consumer processed. */
  count: number
  /** When the last one was processed: `performance.timeOrigin + performance.now()` (ms, sub-ms precision). */
  lastAt: number
  /** Highest RSS sampled while the consumer ran (bytes). */
  peakRss: number
  rss: number
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
