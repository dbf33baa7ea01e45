import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'

const url = process.env['TQ_EXAMPLE_REDIS_URL'] ?? 'redis://127.0.0.1:6379/13'
const namespace = `tq-example-redis-${process.pid}-${randomBytes(3).toString('hex')}`
process.env['REDIS_URL'] = url
process.env['REDIS_NAMESPACE'] = namespace

afterAll(async () => {
  const redis = new Redis(url)
  const keys = await redis.keys(`${namespace}:*`)
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
})

it('runs the Redis example end to end: retries, a delayed message, a dead letter', async () => {
  const { main } = await import('../src/main.ts')
  const lines: string[] = []
  await main((line) => lines.push(line))

  expect(lines).toContain('chargeCard(order-1): attempt 1 failed, will be retried')
  expect(lines).toContain('chargeCard(order-1): attempt 2 failed, will be retried')
  expect(lines).toContain('chargeCard(order-1): charged 4200 cents on attempt 3')
  const receipt = lines.find((line) => line.startsWith('sendReceipt(order-1): ran '))
  expect(Number(/ran (\d+) ms/.exec(receipt ?? '')?.[1])).toBeGreaterThanOrEqual(500)
  expect(lines).toContain('syncStock(sku-7): attempt 1 failed')
  expect(lines).toContain('syncStock(sku-7): attempt 2 failed')
  expect(lines).toContain('alertOps: syncStock(sku-7) gave up after 1 retry')
  expect(lines).toContain('syncStock(sku-7) is in the dead-letter queue orders.XQ')
  expect(lines.at(-1)).toBe('done')
})
