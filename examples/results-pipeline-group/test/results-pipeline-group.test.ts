import { randomBytes } from 'node:crypto'
import type { Message } from '@tq/core'
import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'

const url = process.env['TQ_EXAMPLE_REDIS_URL'] ?? 'redis://127.0.0.1:6379/13'
const namespace = `tq-example-results-${process.pid}-${randomBytes(3).toString('hex')}`
process.env['REDIS_URL'] = url
process.env['REDIS_NAMESPACE'] = namespace

/** Every message enqueued, to find the result keys and barrier keys to delete afterwards. */
const enqueued: Message[] = []

afterAll(async () => {
  const { resultBackend } = await import('../src/tasks.ts')
  const redis = new Redis(url)
  const keys = await redis.keys(`${namespace}:*`)
  for (const message of enqueued) {
    keys.push(resultBackend.buildMessageKey(message))
    const barrier = message.options.groupCompletionUuid
    if (typeof barrier === 'string') keys.push(barrier, `${barrier}@events`)
  }
  await redis.del(...keys)
  await redis.quit()
})

it('runs the results, pipeline and group example end to end on Redis', async () => {
  const { broker } = await import('../src/tasks.ts')
  broker.addMiddleware({ afterEnqueue: (_broker, message) => void enqueued.push(message) })
  const { main } = await import('../src/main.ts')
  const lines: string[] = []
  await main((line) => lines.push(line))

  // The callback runs on the worker when the last child succeeds, so its line may come at any
  // point after the group was started; before main() returns in any case.
  const callback = 'siteCounted(docs): all 3 pages are counted'
  expect(lines.filter((line) => line === callback)).toHaveLength(1)
  expect(lines.filter((line) => line !== callback)).toEqual([
    "countWords('hello from tq') = 3",
    'pipeline: /about: 7 words',
    'group: /: 6 words, /about: 7 words, /contact: 4 words',
    "fetchPage('/missing') failed: actor raised PageNotFound: no page at /missing",
    'done',
  ])

  // The results are in Redis under Dramatiq's keys (MD5 of namespace:queue:actor:message id).
  const { resultBackend } = await import('../src/tasks.ts')
  const first = enqueued[0] as Message
  expect(first.actorName).toBe('countWords')
  const redis = new Redis(url)
  const stored = await redis.lrange(resultBackend.buildMessageKey(first), 0, -1)
  await redis.quit()
  expect(stored).toEqual(['3'])
})
