import type { LogFormat } from './log.ts'

/** Everything `tq worker` was asked to do, after parsing and defaults. */
export interface WorkerCommandConfig {
  /** Modules to import, as given (files or package names). */
  modules: string[]
  processes: number
  concurrency: number
  /** Canonical queue names to consume; `undefined` for every declared queue. */
  queues: string[] | undefined
  /** Absolute directories modules are looked up in, in order. */
  paths: string[]
  /** Absolute directory to watch for reloads. */
  watch: string | undefined
  workerShutdownTimeout: number
  workerTimeout: number
  logFormat: LogFormat
  verbose: boolean
  /** Serve every worker process's Prometheus metrics, merged, on this port (`--metrics-port`); `undefined`: off. */
  metricsPort: number | undefined
  /** Interface the metrics endpoint listens on (`--metrics-host`, default `127.0.0.1`). */
  metricsHost: string
  /** Milliseconds between two stats lines of each worker process (`--stats-interval`); 0: off. */
  statsInterval: number
  /** Run the Schedulers the modules make in every worker process too (`--scheduler`; one leads). */
  scheduler: boolean
}

/** What a worker process gets from the supervisor (in the `TQ_CLI_CHILD` environment variable). */
export interface WorkerProcessConfig extends WorkerCommandConfig {
  /** 1-based slot number, stable across restarts. */
  index: number
}

/** The environment variable that turns `bin.js` into a worker process. */
export const CHILD_ENV = 'TQ_CLI_CHILD'

/** Messages a worker process sends its supervisor over the IPC channel. */
export type ChildMessage =
  | { type: 'hello' }
  | { type: 'ready'; queues: string[] }
  | { type: 'bootError'; code: number; message: string }
  /** The answer to a `metrics` request: prom-client JSON (empty without a Prometheus middleware). */
  | { type: 'metrics'; id: number; metrics: object[] }

/**
 * Messages the supervisor sends a worker process: stop, exit now, report metrics (answered
 * with a `metrics` message of the same `id`), log a stats line.
 */
export type SupervisorMessage =
  { type: 'stop' } | { type: 'kill' } | { type: 'metrics'; id: number } | { type: 'stats' }

export function isMessage<T extends { type: string }>(value: unknown): value is T {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
}
