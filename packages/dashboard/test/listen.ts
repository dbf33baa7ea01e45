import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Mounted } from './contract.ts'

/** Listen on a free loopback port; `path` is where the dashboard is mounted. */
export async function listen(server: Server, path: string): Promise<Mounted> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return mounted(server, path)
}

/** The `Mounted` of a server that already listens. */
export function mounted(server: Server, path: string): Mounted {
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}${path === '/' ? '' : path}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
