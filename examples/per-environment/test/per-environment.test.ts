import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeEach, expect, it, vi } from 'vitest'

// The same modules, loaded afresh for each broker URL (each test gets its own global broker).
const redisUrl = process.env['TQ_EXAMPLE_REDIS_URL'] ?? 'redis://127.0.0.1:6379/13'
const queueName = `tq-example-per-env-${process.pid}-${randomBytes(3).toString('hex')}`

beforeEach(() => {
  vi.resetModules()
  vi.stubEnv('APP_QUEUE', queueName)
})
afterEach(() => {
  vi.unstubAllEnvs()
})

afterAll(async () => {
  // redis:// URLs use Dramatiq's namespace, "dramatiq"; the queue name is unique to this run.
  const redis = new Redis(redisUrl)
  const keys = await redis.keys(`dramatiq:*${queueName}*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
})

async function run(): Promise<string[]> {
  const { main } = await import('../src/main.ts')
  const lines: string[] = []
  await main((line) => lines.push(line))
  return lines
}

it('runs on the StubBroker when TQ_BROKER_URL is unset (stub:// is the default)', async () => {
  vi.stubEnv('TQ_BROKER_URL', undefined)
  const lines = await run()
  expect(lines[0]).toBe('broker: StubBroker')
  expect(lines.slice(1, -1).sort()).toEqual(['publish(cat.png) done on attempt 2', 'resize(cat.png, 320) done'])
  expect(lines.at(-1)).toBe('done')
})

it('runs the same actors on Redis with TQ_BROKER_URL=redis://…', async () => {
  vi.stubEnv('TQ_BROKER_URL', redisUrl)
  const lines = await run()
  expect(lines[0]).toBe('broker: RedisBroker')
  expect(lines.slice(1, -1).sort()).toEqual(['publish(cat.png) done on attempt 2', 'resize(cat.png, 320) done'])
  expect(lines.at(-1)).toBe('done')
})
