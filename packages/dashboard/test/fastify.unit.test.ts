import Fastify from 'fastify'
import { fastifyDashboard } from '../src/fastify.ts'
import { dashboardContract } from './contract.ts'
import { mounted } from './listen.ts'

dashboardContract('Fastify (fastifyDashboard plugin)', {
  basePath: '/tq',
  mount: async (handler) => {
    const app = Fastify()
    app.get('/', async () => 'the app')
    await app.register(fastifyDashboard, { prefix: '/tq', handler })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const served = mounted(app.server, '/tq')
    return { baseUrl: served.baseUrl, close: () => app.close() }
  },
})
