import { fileURLToPath } from 'node:url'
import type { Broker } from '../broker.ts'
import { ConfigurationError, errorMessage } from '../errors.ts'
import type { Message } from '../message.ts'
import type { MessageProxy } from '../message-proxy.ts'
import type { Middleware } from '../middleware/middleware.ts'
import { resolveModule } from './modules.ts'

/**
 * Metrics and stats plumbing of `tq worker`. @tq/core does not depend on prom-client: with
 * `--metrics-port`, the supervisor loads `@tq/prometheus` (from the app's directories, then
 * from next to @tq/core) and serves the merge of what every worker process's Prometheus
 * middleware reports over the IPC channel.
 */

/** The package `--metrics-port` needs. */
export const METRICS_PACKAGE = '@tq/prometheus'

/** The HTTP server `serveAggregatedMetrics` returns (the part the supervisor uses). */
export interface AggregatedMetricsServer {
  readonly port: number
  readonly url: string
  close(): Promise<void>
}

/** What the supervisor needs from `@tq/prometheus`. */
export interface MetricsModule {
  serveAggregatedMetrics(options: {
    port: number
    host: string
    collect: () => Promise<readonly (readonly object[])[]>
  }): Promise<AggregatedMetricsServer>
}

/** A middleware that can report its metrics as prom-client JSON (the `Prometheus` middleware). */
export interface MetricsSource {
  getMetricsAsJSON(): unknown
}

/**
 * Import `@tq/prometheus` as the app would: resolved from `dirs` (the app's directories), then
 * from this package's location. Throws `ConfigurationError` saying how to install it.
 */
export async function loadMetricsModule(dirs: readonly string[]): Promise<MetricsModule> {
  const here = fileURLToPath(new URL('.', import.meta.url))
  let url: string
  try {
    url = resolveModule(METRICS_PACKAGE, [...new Set([...dirs, here])]).url
  } catch {
    throw new ConfigurationError(
      `--metrics-port needs ${METRICS_PACKAGE}, which is not installed (looked from ${dirs.join(', ')} and from @tq/core): ` +
        `install it with its peer (npm install ${METRICS_PACKAGE} prom-client) and add its Prometheus middleware to the broker`,
    )
  }
  let loaded: unknown
  try {
    loaded = await import(url)
  } catch (error) {
    throw new ConfigurationError(`Could not load ${METRICS_PACKAGE}: ${errorMessage(error)}`, { cause: error })
  }
  const serve = (loaded as { serveAggregatedMetrics?: unknown } | null)?.serveAggregatedMetrics
  if (typeof serve !== 'function') {
    throw new ConfigurationError(`${METRICS_PACKAGE} at ${url} has no serveAggregatedMetrics(): upgrade it`)
  }
  return loaded as MetricsModule
}

/** The broker's first middleware with a `getMetricsAsJSON()` method (duck-typed: `Prometheus`). */
export function findMetricsSource(broker: Broker): MetricsSource | undefined {
  for (const m of broker.middleware) {
    if (typeof (m as Partial<MetricsSource>).getMetricsAsJSON === 'function') return m as Middleware & MetricsSource
  }
  return undefined
}

/**
 * Counts the retries this process enqueues (a message enqueued with a `retries` option), for
 * the worker process's stats lines. A delayed message moving from the delay queue to its queue
 * is not a new retry.
 */
export class RetryCounter implements Middleware {
  readonly actorOptions: readonly string[] = []
  count = 0
  /** Delayed messages held by this process, by id. */
  readonly #held = new Set<string>()

  beforeDelayMessage(_broker: Broker, message: MessageProxy): void {
    this.#held.add(message.messageId)
  }

  // No beforeProcessMessage cleanup: on RabbitMQ the moved copy can be delivered and started
  // before its publish is confirmed and afterEnqueue runs, and the move must still be recognised.

  afterEnqueue(_broker: Broker, message: Message): void {
    if (this.#held.has(message.messageId) && message.options['eta'] === undefined) {
      this.#held.delete(message.messageId)
      return
    }
    if ('retries' in message.options) this.count++
  }

  afterWorkerShutdown(): void {
    this.#held.clear()
  }
}
