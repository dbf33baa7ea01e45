import { setBroker } from '@tq/core'
import { RedisBroker } from '@tq/redis'

// Sets a broker but declares no actors: `tq worker` must refuse to run.
setBroker(new RedisBroker({ url: process.env['APP_REDIS_URL'] ?? 'redis://127.0.0.1:6379/11' }))
