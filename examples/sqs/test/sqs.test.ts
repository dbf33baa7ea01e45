import { randomBytes } from 'node:crypto'
import { afterAll, expect, it } from 'vitest'

// Without TQ_SQS_ENDPOINT, main() starts fauxqs on 127.0.0.1 and stops it at the end, and the
// queues go with it. With an endpoint (LocalStack, real SQS), the queues are deleted afterwards.
const external = process.env['TQ_SQS_ENDPOINT']
process.env['SQS_QUEUE_PREFIX'] = `tq-example-sqs-${process.pid}-${randomBytes(3).toString('hex')}-`

afterAll(async () => {
  if (!external) return
  const { SqsBroker } = await import('@tq/sqs')
  const cleaner = new SqsBroker({
    region: process.env['AWS_REGION'] ?? 'us-east-1',
    endpoint: external,
    queuePrefix: process.env['SQS_QUEUE_PREFIX'] as string,
    middleware: [],
  })
  cleaner.declareQueue('orders')
  await cleaner.getQueueUrl('orders')
  await cleaner.deleteQueue('orders')
  await cleaner.close()
})

it('runs the SQS example end to end: retries, a delayed message, a dead letter', async () => {
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
  expect(lines).toContain('orders.XQ holds 1 dead letter(s)')
  expect(lines.at(-1)).toBe('done')
})
