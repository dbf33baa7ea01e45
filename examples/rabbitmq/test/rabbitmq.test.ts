import { randomBytes } from 'node:crypto'
import { connect } from 'amqplib'
import { afterAll, expect, it } from 'vitest'

const url = process.env['TQ_EXAMPLE_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672'
const queueName = `tq-example-rabbitmq-${process.pid}-${randomBytes(3).toString('hex')}`
process.env['AMQP_URL'] = url
process.env['ORDERS_QUEUE'] = queueName

afterAll(async () => {
  const connection = await connect(url)
  const channel = await connection.createChannel()
  for (const name of [queueName, `${queueName}.DQ`, `${queueName}.XQ`]) await channel.deleteQueue(name)
  await connection.close()
})

it('runs the RabbitMQ example end to end: retries, a delayed message, a dead letter', async () => {
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
  expect(lines).toContain(`${queueName}.XQ holds 1 dead letter(s)`)
  expect(lines.at(-1)).toBe('done')
})
