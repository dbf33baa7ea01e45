// A RabbitMQ server that cannot be reached: the errors name the cause and the (redacted) server.
import { ConnectionFailedError, BrokerConnectionError, actor } from '@tq/core'
import { freePort, rejection } from '@tq/core/testing'
import { describe, expect, it } from 'vitest'
import { RabbitmqBroker } from '../src/index.ts'

describe('RabbitmqBroker with the server unreachable', () => {
  it('connect() and send() reject naming ECONNREFUSED and the redacted server', async () => {
    const port = await freePort()
    const secret = 's3cretPW'
    const broker = new RabbitmqBroker({
      url: `amqp://guest:${secret}@127.0.0.1:${port}`,
      middleware: [],
      publishAttempts: 2,
    })
    try {
      const connectError = await rejection(broker.connect())
      expect(connectError).toBeInstanceOf(ConnectionFailedError)
      expect((connectError as Error).message).toContain('ECONNREFUSED')
      expect((connectError as Error).message).toContain(`amqp://guest:***@127.0.0.1:${port}`)
      expect(JSON.stringify(connectError, Object.getOwnPropertyNames(connectError))).not.toContain(secret)

      const job = actor('job', () => undefined, { broker, queueName: 'tq-connect-errors' })
      const sendError = await rejection(job.send())
      expect(sendError).toBeInstanceOf(BrokerConnectionError)
      expect((sendError as Error).message).toContain('ECONNREFUSED')
      expect((sendError as Error).message).toContain(`127.0.0.1:${port}`)
      expect((sendError as Error).message).not.toContain(secret)
    } finally {
      await broker.close()
    }
  }, 30_000)
})

describe('RabbitmqBroker.describe()', () => {
  it('names every server with its password redacted (the tq worker boot line shows it)', () => {
    const broker = new RabbitmqBroker({ urls: ['amqp://tq:s3cretPW@127.0.0.1:5672/%2F', 'amqp://127.0.0.1:5673'] })
    expect(broker.describe()).toEqual({ url: 'amqp://tq:***@127.0.0.1:5672/%2F;amqp://127.0.0.1:5673' })
  })
})
