import { createServer } from 'node:http'
import express from 'express'
import { toNodeListener } from '../src/node.ts'
import { dashboardContract } from './contract.ts'
import { listen } from './listen.ts'

// Express strips the mount path from req.url; the listener reads req.originalUrl. A body parser
// that runs first (as in most apps) has read the form: the listener re-encodes req.body.
dashboardContract('Express (app.use, after express.urlencoded)', {
  basePath: '/ops/tq',
  mount: (handler) => {
    const app = express()
    app.use(express.urlencoded({ extended: false }))
    app.use('/ops/tq', toNodeListener(handler))
    app.get('/', (_req, res) => {
      res.send('the app')
    })
    return listen(createServer(app), '/ops/tq')
  },
})

dashboardContract('Express (app.use, no body parser)', {
  basePath: '/tq',
  mount: (handler) => {
    const app = express()
    app.use('/tq', toNodeListener(handler))
    return listen(createServer(app), '/tq')
  },
})
