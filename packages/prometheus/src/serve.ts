import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { errorMessage } from '@tq/core'
import { AggregatorRegistry, register as globalRegistry, type Registry } from 'prom-client'

export interface MetricsServerOptions {
  /** TCP port; 0 picks a free one (read it from `MetricsServer.port`). */
  port: number
  /** Interface to listen on (default `127.0.0.1`; `0.0.0.0` to let other hosts scrape). */
  host?: string
  /** Path the metrics are served at (default `/metrics`). */
  path?: string
}

export interface ServeMetricsOptions extends MetricsServerOptions {
  /** The registry to serve (default: prom-client's global `register`). */
  registry?: Registry
}

export interface ServeAggregatedMetricsOptions extends MetricsServerOptions {
  /**
   * Called on every scrape: each process's `registry.getMetricsAsJSON()`. The lists are merged
   * with prom-client's `AggregatorRegistry.aggregate` (counters and histograms add up, gauges
   * follow their `aggregator`, `sum` by default).
   */
  collect: () => Promise<readonly (readonly object[])[]>
}

export interface MetricsServer {
  readonly server: Server
  readonly host: string
  /** The port listened on (the one picked when `port` was 0). */
  readonly port: number
  /** `http://host:port/metrics`. */
  readonly url: string
  /** Stop listening and drop open connections. */
  close(): Promise<void>
}

interface Exposition {
  contentType: string
  body: string
}

/**
 * Serve `registry`'s metrics over HTTP at `/metrics` (Prometheus text format).
 *
 * ```ts
 * const server = await serveMetrics({ port: 9191, registry })
 * // … on shutdown
 * await server.close()
 * ```
 */
export function serveMetrics(options: ServeMetricsOptions): Promise<MetricsServer> {
  const registry = options.registry ?? globalRegistry
  return listen(options, async () => ({ contentType: registry.contentType, body: await registry.metrics() }))
}

/** Merge several processes' `getMetricsAsJSON()` lists into one registry. */
export function aggregateMetrics(perProcess: readonly (readonly object[])[]): Registry {
  return AggregatorRegistry.aggregate(perProcess.map((list) => [...list]))
}

/**
 * Serve the merged metrics of several processes at `/metrics`: every scrape calls `collect()`
 * for each process's `getMetricsAsJSON()` and merges them (`aggregateMetrics`). `tq worker
 * --metrics-port` runs this in the supervisor.
 */
export function serveAggregatedMetrics(options: ServeAggregatedMetricsOptions): Promise<MetricsServer> {
  return listen(options, async () => {
    const registry = aggregateMetrics(await options.collect())
    return { contentType: registry.contentType, body: await registry.metrics() }
  })
}

function listen(options: MetricsServerOptions, expose: () => Promise<Exposition>): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1'
  const path = options.path ?? '/metrics'
  const server = createServer((req, res) => void handle(req, res, path, expose))
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, host, () => {
      server.off('error', reject)
      const { port } = server.address() as AddressInfo
      const shown = host.includes(':') ? `[${host}]` : host
      resolve({
        server,
        host,
        port,
        url: `http://${shown}:${port}${path}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            server.closeAllConnections()
          }),
      })
    })
  })
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  expose: () => Promise<Exposition>,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost')
  if (url.pathname !== path) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`Not found: metrics are at ${path}\n`)
    return
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end()
    return
  }
  try {
    const { contentType, body } = await expose()
    res.writeHead(200, { 'content-type': contentType })
    res.end(req.method === 'HEAD' ? undefined : body)
  } catch (error) {
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${errorMessage(error)}\n`)
  }
}
