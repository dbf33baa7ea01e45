// A CommonJS app (its package.json has no "type": "module"), as npm init makes it.
import { Results, actor, setBroker } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { RedisResultBackend } from '@tq/results-redis'

const url = process.env['APP_REDIS_URL'] ?? 'redis://127.0.0.1:6379/11'
export const backend = new RedisResultBackend({ url })
export const broker = new RedisBroker({ url })
broker.addMiddleware(new Results({ backend }))
setBroker(broker)

export const add = actor('add', (x: number, y: number) => x + y, {
  queueName: process.env['APP_QUEUE'] ?? 'default',
  storeResults: true,
})
