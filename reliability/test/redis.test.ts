// Redis: real `tq worker` processes against Redis 127.0.0.1:6379 DB 14, a namespace per run,
// heartbeatTimeout 2 s (so a killed worker's messages come back within seconds: once its
// heartbeat is 2 s old, at the next timed maintenance run of a live worker, at most 2 s later),
// and a ledger of every run in the same DB under keys of its own.
import { brokerSuite } from '../src/suite.ts'
import { RedisTarget } from '../src/targets/redis.ts'

brokerSuite({
  name: 'redis',
  makeTarget: (ledger) => new RedisTarget(ledger),
  cutLabel: 'connection cut (CLIENT KILL of the tq connections)',
})
