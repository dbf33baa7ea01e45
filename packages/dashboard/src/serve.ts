import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type DashboardOptions, createDashboard, normalizeBasePath } from './dashboard.ts'
import { toNodeListener } from './node.ts'

export interface ServeDashboardOptions extends DashboardOptions {
  /** TCP port; 0 picks a free one (read it from the `url`). */
  port: number
  /** Interface to listen on (default `127.0.0.1`; `0.0.0.0` to serve other hosts: add `authorize` then). */
  host?: string | undefined
}

export interface DashboardServer {
  readonly server: Server
  /** `http://host:port/<basePath>/`. */
  readonly url: string
  /** Stop listening and drop open connections. */
  close(): Promise<void>
}

/**
 * Serve the dashboard on its own `node:http` server (what `tq dashboard` runs).
 *
 * ```ts
 * const { url, close } = await serveDashboard({ admin, port: 8080 })
 * ```
 */
export function serveDashboard(options: ServeDashboardOptions): Promise<DashboardServer> {
  const { port, host = '127.0.0.1', ...dashboard } = options
  const base = normalizeBasePath(options.basePath)
  const server = createServer(toNodeListener(createDashboard(dashboard)))
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const address = server.address() as AddressInfo
      const shown = host.includes(':') ? `[${host}]` : host
      resolve({
        server,
        url: `http://${shown}:${address.port}${base}/`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            server.closeAllConnections()
          }),
      })
    })
  })
}
