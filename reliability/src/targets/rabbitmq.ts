// RabbitMQ under test: 127.0.0.1:5672, queues named per run (deleted afterwards), connections
// named `<namespace>-…` so a cut closes only this run's (the server is shared).
import { execFile } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import { actor, dqName, xqName } from '@tq/core'
import { RabbitmqBroker } from '@tq/rabbitmq'
import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib'
import type { RawPut, Target } from './target.ts'

export const AMQP_URL = process.env['TQ_RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672'
const BATCH = 1000
const run = promisify(execFile)

/** rabbitmqctl, also where a non-root PATH does not look (sbin folders). */
export const RABBITMQCTL =
  [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin']
    .filter(Boolean)
    .map((dir) => join(dir, 'rabbitmqctl'))
    .find((path) => {
      try {
        accessSync(path, constants.X_OK)
        return true
      } catch {
        return false
      }
    }) ?? 'rabbitmqctl'

export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run(RABBITMQCTL, args, { timeout: 120_000 })
  return stdout
}

export class RabbitmqTarget implements Target {
  readonly name = 'rabbitmq' as const
  /** Prefix of every connection name of this run (worker processes and producer). */
  readonly namespace = `tqrel-rmq-${process.pid}-${randomBytes(3).toString('hex')}`
  readonly queue = `tqrel_rmq_${process.pid}_${randomBytes(3).toString('hex')}`
  readonly producer: RabbitmqBroker
  readonly #record
  readonly #probe
  #raw: ChannelModel | undefined

  constructor() {
    this.producer = new RabbitmqBroker({ url: AMQP_URL, connectionName: `${this.namespace}-producer` })
    this.#record = actor('record', (_id: number, _padding?: string) => undefined, {
      broker: this.producer,
      queueName: this.queue,
    })
    this.#probe = actor('probe', (_name: string) => undefined, {
      broker: this.producer,
      queueName: `${this.queue}_probe`,
    })
  }

  workerEnv(): Record<string, string> {
    return {
      TQ_REL_BROKER: 'rabbitmq',
      TQ_REL_URL: AMQP_URL,
      TQ_REL_NAMESPACE: this.namespace,
      TQ_REL_QUEUE: this.queue,
    }
  }

  async send(ids: readonly number[]): Promise<void> {
    for (let i = 0; i < ids.length; i += BATCH) {
      await this.producer.enqueueMany(ids.slice(i, i + BATCH).map((id) => this.#record.message(id)))
    }
  }

  async sendProbe(name: string): Promise<void> {
    await this.#probe.send(name)
  }

  /** Server-side pids of this run's connections (by `connection_name`). */
  async connectionPids(): Promise<string[]> {
    const out = await rabbitmqctl('list_connections', 'pid', 'client_properties', '-q')
    const pids: string[] = []
    for (const line of out.split('\n')) {
      const name = /\{"connection_name","([^"]*)"\}/.exec(line)?.[1]
      const pid = line.split('\t')[0]
      if (name?.startsWith(`${this.namespace}-`) && pid) pids.push(pid)
    }
    return pids
  }

  async cut(): Promise<number> {
    const pids = await this.connectionPids()
    await Promise.all(pids.map((pid) => rabbitmqctl('close_connection', pid, 'tq reliability: connection cut')))
    return pids.length
  }

  async #channel(): Promise<ConfirmChannel> {
    if (!this.#raw) {
      this.#raw = await connect(AMQP_URL, { clientProperties: { connection_name: 'tq-rel-raw' } })
      this.#raw.on('error', () => undefined)
    }
    const channel = await this.#raw.createConfirmChannel()
    channel.on('error', () => undefined)
    return channel
  }

  async putRaw(bytes: Uint8Array): Promise<RawPut> {
    // Declare the topology first (as a tq producer would have), then publish like a foreign producer.
    await this.producer.assertQueue(this.queue)
    const id = randomUUID()
    const channel = await this.#channel()
    try {
      channel.publish('', this.queue, Buffer.from(bytes), { deliveryMode: 2, messageId: id })
      await channel.waitForConfirms()
    } finally {
      await channel.close().catch(() => undefined)
    }
    return { id, bytes }
  }

  async deadLetters(): Promise<Uint8Array[]> {
    // basic.get every message and close the channel without acking: they go back to the queue.
    const channel = await this.#channel()
    try {
      const out: Uint8Array[] = []
      for (;;) {
        const message = await channel.get(xqName(this.queue), { noAck: false })
        if (message === false) return out
        out.push(message.content)
      }
    } finally {
      await channel.close().catch(() => undefined)
    }
  }

  /** Messages (ready + unacknowledged) in the run's queues, per queue, from rabbitmqctl. */
  async queueDepths(): Promise<Map<string, number>> {
    const out = await rabbitmqctl('list_queues', 'name', 'messages', '--formatter', 'json', '-q')
    const rows = JSON.parse(out) as Array<{ name: string; messages: number }>
    return new Map(rows.filter((r) => r.name.startsWith(this.queue)).map((r) => [r.name, r.messages]))
  }

  async drained(timeout: number): Promise<void> {
    const deadline = Date.now() + timeout
    const watched = [this.queue, dqName(this.queue)]
    for (;;) {
      const depths = await this.queueDepths()
      const left = watched.reduce((sum, q) => sum + (depths.get(q) ?? 0), 0)
      if (left === 0) return
      if (Date.now() > deadline) {
        throw new Error(`rabbitmq ${this.queue}: not drained within ${timeout} ms (${JSON.stringify([...depths])})`)
      }
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  async cleanup(): Promise<void> {
    await this.producer.close()
    const channel = await this.#channel()
    try {
      for (const q of [this.queue, `${this.queue}_probe`]) {
        for (const name of [q, dqName(q), xqName(q)]) await channel.deleteQueue(name)
      }
    } finally {
      await channel.close().catch(() => undefined)
      await this.#raw?.close().catch(() => undefined)
      this.#raw = undefined
    }
  }
}
