// The Node half of the example, tested against a real Redis. The test plays the Python side:
// it writes a message exactly as Python Dramatiq 2.2 does (the bytes of
// fixtures/dramatiq-wire/redis-enqueue.json, with this test's values), reads results the way
// Python's RedisBackend does, and reads what tq enqueued the way a Python worker does.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..')
const url = process.env['TQ_EXAMPLE_REDIS_URL'] ?? 'redis://127.0.0.1:6379/13'
const namespace = `tq-example-python-${process.pid}-${randomBytes(3).toString('hex')}`
const resultsNamespace = `${namespace}-results`
process.env['REDIS_URL'] = url
process.env['REDIS_NAMESPACE'] = namespace
process.env['RESULTS_NAMESPACE'] = resultsNamespace

const { onReport, requestReport, startService } = await import('../src/service.ts')

const redis = new Redis(url)
const resultKeys: string[] = []
let service: { stop(): Promise<void> }

beforeAll(async () => {
  service = await startService()
})

afterAll(async () => {
  await service.stop()
  const keys = [...(await redis.keys(`${namespace}:*`)), ...resultKeys]
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
})

/** Python's enqueue, from the fixture: the payload bytes, with this test's fields put in. */
function pythonPayload(fields: {
  queueName: string
  actorName: string
  args: string
  kwargs: string
  redisMessageId: string
  messageId: string
  timestamp: number
}): string {
  const fixture = JSON.parse(readFileSync(join(root, 'fixtures/dramatiq-wire/redis-enqueue.json'), 'utf8')) as {
    returned_message: {
      encoded: string
      parsed: { message_id: string; message_timestamp: number; options: { redis_message_id: string } }
    }
  }
  const { encoded, parsed } = fixture.returned_message
  const replacements: Array<[string, string]> = [
    ['"queue_name":"default"', `"queue_name":"${fields.queueName}"`],
    ['"actor_name":"add"', `"actor_name":"${fields.actorName}"`],
    ['"args":[1,2]', `"args":${fields.args}`],
    ['"kwargs":{}', `"kwargs":${fields.kwargs}`],
    [parsed.options.redis_message_id, fields.redisMessageId],
    [parsed.message_id, fields.messageId],
    [String(parsed.message_timestamp), String(fields.timestamp)],
  ]
  let payload = encoded
  for (const [from, to] of replacements) {
    expect(payload).toContain(from)
    payload = payload.replace(from, to)
  }
  return payload
}

it('runs make_thumbnail sent by Python: kwargs arrive as a trailing object, the result is stored for Python', async () => {
  const ran = new Promise<string>((resolve) => onReport(resolve))
  const redisMessageId = randomUUID()
  const messageId = randomUUID()
  const payload = pythonPayload({
    queueName: 'thumbnails',
    actorName: 'make_thumbnail',
    args: '["/img/cat.png"]',
    kwargs: '{"width":320}',
    redisMessageId,
    messageId,
    timestamp: Date.now(),
  })
  expect(payload).toMatch(
    /^\{"queue_name":"thumbnails","actor_name":"make_thumbnail","args":\["\/img\/cat.png"\],"kwargs":\{"width":320\},"options":\{"redis_message_id":"[-0-9a-f]{36}"\},"message_id":"[-0-9a-f]{36}","message_timestamp":\d+\}$/,
  )

  // What Python's `make_thumbnail.send("/img/cat.png", width=320)` does to Redis (its enqueue
  // script also refreshes its heartbeat; the consumer does not need that).
  await redis
    .multi()
    .hset(`${namespace}:thumbnails.msgs`, redisMessageId, payload)
    .rpush(`${namespace}:thumbnails`, redisMessageId)
    .exec()

  expect(await ran).toBe('make_thumbnail(/img/cat.png, width=320) -> /img/cat.320.png')

  // Python's `message.get_result(block=True)`: MD5 of namespace:queue:actor:message id, then
  // BRPOPLPUSH key key <seconds> (the value stays in the list).
  const key = createHash('md5').update(`${resultsNamespace}:thumbnails:make_thumbnail:${messageId}`).digest('hex')
  resultKeys.push(key)
  const stored = await redis.brpoplpush(key, key, 5)
  expect(stored).toBe('{"path":"/img/cat.png","width":320,"thumbnail":"/img/cat.320.png"}')
  expect(await redis.pttl(key)).toBeGreaterThan(590_000) // Dramatiq's default result_ttl, 10 minutes
})

it('enqueues build_report the way a Python worker reads it: keys, option names, JSON bytes', async () => {
  const sent = await requestReport(42, 'pdf')

  // A Python worker on `reports` pops ids from the list and reads payloads from the hash.
  const ids = await redis.lrange(`${namespace}:reports`, 0, -1)
  expect(ids).toHaveLength(1)
  const id = ids[0] as string
  const payload = await redis.hget(`${namespace}:reports.msgs`, id)
  expect(payload).toBe(
    `{"queue_name":"reports","actor_name":"build_report","args":[42],"kwargs":{"format":"pdf"},` +
      `"options":{"time_limit":60000,"redis_message_id":"${id}"},` +
      `"message_id":"${sent.messageId}","message_timestamp":${sent.messageTimestamp}}`,
  )
  // Nothing tq-specific on the Python side's keys: the id is a UUID, the list and hash are plain.
  expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  expect(await redis.type(`${namespace}:reports`)).toBe('list')
  expect(await redis.type(`${namespace}:reports.msgs`)).toBe('hash')
})
