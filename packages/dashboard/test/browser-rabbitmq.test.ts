import { randomBytes } from 'node:crypto'
import { StubTrackingBackend, Tracking, defaultMiddleware, dqName, xqName } from '@tq/core'
import { RabbitmqBroker } from '@tq/rabbitmq'
import { connect } from 'amqplib'
import { browserSuite } from './browser.ts'

const AMQP_URL = process.env['TQ_AMQP_TEST_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672'

// RabbitMQ for the broker (it counts no running messages); tracking in the in-memory backend.
// The dashboard's broker and the worker's are two brokers, each with its Tracking on the one
// backend, as a producer process and a worker process would be.
browserSuite({
  name: 'rabbitmq',
  tracksRedrive: false,
  setup: async () => {
    const backend = new StubTrackingBackend()
    const tracking = new Tracking({ backend, heartbeatInterval: 200, flushInterval: 1, maxArgsBytes: 16 * 1024 * 1024 })
    const broker = new RabbitmqBroker({
      url: AMQP_URL,
      middleware: [...defaultMiddleware(), tracking],
      connectionName: 'tq-test-dashboard',
      reconnectDelay: 20,
    })
    const workerBroker = new RabbitmqBroker({
      url: AMQP_URL,
      middleware: [
        ...defaultMiddleware(),
        new Tracking({ backend, heartbeatInterval: 200, maxArgsBytes: 16 * 1024 * 1024 }),
      ],
      connectionName: 'tq-test-dashboard-worker',
      reconnectDelay: 20,
    })
    return {
      broker,
      workerBroker,
      tracking,
      // Queues are server-wide on RabbitMQ: names of this run only.
      prefix: `dash_${process.pid}_${randomBytes(3).toString('hex')}_`,
      cleanup: async () => {
        const queues = [...broker.getDeclaredQueues()]
        await broker.close()
        await workerBroker.close()
        const connection = await connect(AMQP_URL)
        const channel = await connection.createChannel()
        for (const queue of queues)
          for (const name of [queue, dqName(queue), xqName(queue)]) await channel.deleteQueue(name)
        await connection.close()
      },
    }
  },
})
