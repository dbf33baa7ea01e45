import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { DashboardHandler } from './dashboard.ts'
import { toNodeListener } from './node.ts'

export interface FastifyDashboardOptions {
  /** The dashboard, created with `basePath` equal to the plugin's `prefix`. */
  handler: DashboardHandler
}

/**
 * The dashboard as a Fastify plugin: every method under the plugin's `prefix` is handed, raw,
 * to the dashboard (`reply.hijack()`; Fastify sends nothing itself). Inside the plugin's scope
 * Fastify parses no body, so the dashboard reads its forms from the stream.
 *
 * ```ts
 * await app.register(fastifyDashboard, { prefix: '/tq', handler: createDashboard({ admin, basePath: '/tq' }) })
 * ```
 */
export const fastifyDashboard: FastifyPluginAsync<FastifyDashboardOptions> = async (app, options) => {
  const listener = toNodeListener(options.handler)
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => done(null))
  const route = (request: FastifyRequest, reply: FastifyReply): void => {
    reply.hijack()
    listener(request.raw, reply.raw)
  }
  app.all('/', route)
  app.all('/*', route)
}
