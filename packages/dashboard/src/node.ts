import type { IncomingMessage, ServerResponse } from 'node:http'
import { getRequestListener } from '@hono/node-server'
import type { DashboardHandler } from './dashboard.ts'

/** A `node:http` request listener, as `createServer()`, Express's `app.use()` and Fastify's raw objects take. */
export type NodeListener = (req: IncomingMessage, res: ServerResponse) => void

/** What Express (and connect-style frameworks) add to the request. */
interface FrameworkRequest extends IncomingMessage {
  /** Express: the URL before the mount path was stripped. */
  originalUrl?: unknown
  /** A body parser's result (the stream is then already read). */
  body?: unknown
  /** The raw body, where a framework kept it: @hono/node-server reads it instead of the stream. */
  rawBody?: unknown
}

/**
 * The dashboard as a `node:http` request listener.
 *
 * - `node:http`: `createServer(toNodeListener(dashboard)).listen(3000)`.
 * - Express: `app.use('/tq', toNodeListener(createDashboard({ admin, basePath: '/tq' })))`.
 *   Express strips the mount path from `req.url`; the listener reads `req.originalUrl`, so
 *   `basePath` is the full path the dashboard is seen at. Mount it before `express.urlencoded()`
 *   if you can; a form body that a parser already read is re-encoded from `req.body`.
 * - Fastify: use `fastifyDashboard` from `@tq/dashboard/fastify`, which hands the raw objects over.
 *
 * Requests and responses are converted by `@hono/node-server` (the process's global `Request`
 * and `Response` are left alone).
 */
export function toNodeListener(handler: DashboardHandler): NodeListener {
  const listener = getRequestListener((request) => handler(request), { overrideGlobalObjects: false })
  return (req, res) => {
    const incoming = req as FrameworkRequest
    if (typeof incoming.originalUrl === 'string' && incoming.originalUrl.startsWith('/')) req.url = incoming.originalUrl
    if (req.readableEnded && incoming.rawBody === undefined) {
      const form = reencodedForm(incoming.body, req.headers['content-type'])
      if (form !== undefined) incoming.rawBody = form
    }
    void listener(req, res)
  }
}

/** A urlencoded body a parser turned into `{ field: 'value' }`, encoded again. */
function reencodedForm(body: unknown, contentType: string | undefined): Buffer | undefined {
  if (typeof body !== 'object' || body === null || !contentType?.startsWith('application/x-www-form-urlencoded')) {
    return undefined
  }
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(body)) if (typeof value === 'string') params.append(key, value)
  return Buffer.from(params.toString())
}
