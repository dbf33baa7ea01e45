// Found by the reliability suites (reliability/): under `tq worker` the broker gets its logger
// after construction, and the CLI calls connect() at boot to fail fast (exit code 3).
import { BrokerConnectionError, ConnectionFailedError, createLogger, type LogEntry } from '@tq/core'
import { rejection } from '@tq/core/testing'
import { describe, expect, it } from 'vitest'
import { RabbitmqBroker } from '../src/index.ts'
import { AMQP_URL } from './helpers.ts'

describe('RabbitmqBroker.connect() and late loggers', () => {
  it('connect() resolves against the server', async () => {
    const broker = new RabbitmqBroker({ url: AMQP_URL, middleware: [] })
    try {
      await broker.connect()
    } finally {
      await broker.close()
    }
  })

  it('connect() rejects with a BrokerConnectionError for a wrong password, without the password', async () => {
    const secret = 'wr0ng-s3cret'
    const broker = new RabbitmqBroker({ url: `amqp://guest:${secret}@127.0.0.1:5672`, middleware: [] })
    const entries: LogEntry[] = []
    // Set after construction, as `tq worker` does.
    broker.logger = createLogger((e) => entries.push(e))
    try {
      const error = await rejection(broker.connect())
      expect(error).toBeInstanceOf(BrokerConnectionError)
      expect((error as Error).message).toMatch(/ACCESS.REFUSED/)
      expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain(secret)
      // The failed attempt was logged through the logger given after construction, redacted.
      const warning = entries.find((e) => e.msg.startsWith('Could not open the RabbitMQ publish connection'))
      expect(warning?.msg).toContain('guest:***@127.0.0.1')
      expect(JSON.stringify(entries)).not.toContain(secret)
    } finally {
      await broker.close()
    }
  })

  it('connect() rejects with ConnectionFailedError when nothing listens', async () => {
    const broker = new RabbitmqBroker({ url: 'amqp://guest:guest@127.0.0.1:1', middleware: [] })
    try {
      expect(await rejection(broker.connect())).toBeInstanceOf(ConnectionFailedError)
    } finally {
      await broker.close()
    }
  })
})
