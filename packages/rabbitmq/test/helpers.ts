import { execFile } from 'node:child_process'
import { accessSync, constants, readFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { connect, type Channel, type ChannelModel, type GetMessage, type Options } from 'amqplib'
import { dqName, xqName } from '@tq/core'

export const AMQP_URL = process.env['TQ_RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672'

const here = dirname(fileURLToPath(import.meta.url))
const execFileAsync = promisify(execFile)

/** rabbitmqctl, also where a non-root PATH does not look (sbin folders). */
const RABBITMQCTL =
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

/** A fixture captured from Python Dramatiq 2.2 (fixtures/dramatiq-wire/ at the repo root). */
export function fixture<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(join(here, '../../../fixtures/dramatiq-wire', `${name}.json`), 'utf8')) as T
}

/**
 * A raw amqplib connection for tests: what a foreign producer or an operator would do. Each
 * operation gets a fresh channel so a channel error (404, 406) does not leak into the next.
 */
export class RawAmqp {
  #model: ChannelModel | undefined

  async #connection(): Promise<ChannelModel> {
    if (!this.#model) {
      this.#model = await connect(AMQP_URL, { clientProperties: { connection_name: 'tq-test-raw' } })
      this.#model.on('error', () => undefined)
    }
    return this.#model
  }

  async withChannel<T>(fn: (channel: Channel) => Promise<T>): Promise<T> {
    const channel = await (await this.#connection()).createConfirmChannel()
    channel.on('error', () => undefined)
    try {
      return await fn(channel)
    } finally {
      await channel.close().catch(() => undefined)
    }
  }

  /** Publish raw bytes to a queue through the default exchange (persistent), waiting for the confirm. */
  async publish(queue: string, body: Uint8Array, options: Options.Publish = {}): Promise<void> {
    await this.withChannel(async (channel) => {
      channel.publish('', queue, Buffer.from(body), { deliveryMode: 2, ...options })
      await (channel as unknown as { waitForConfirms(): Promise<void> }).waitForConfirms()
    })
  }

  /** Every message in a queue, read with basic.get and returned to it (the channel closes unacked). */
  async peek(queue: string): Promise<GetMessage[]> {
    return this.withChannel(async (channel) => {
      const out: GetMessage[] = []
      for (;;) {
        const message = await channel.get(queue, { noAck: false })
        if (message === false) return out
        out.push(message)
      }
    })
  }

  async messageCount(queue: string): Promise<number> {
    return this.withChannel(async (channel) => (await channel.checkQueue(queue)).messageCount)
  }

  async deleteQueues(...names: string[]): Promise<void> {
    for (const name of names) await this.withChannel((channel) => channel.deleteQueue(name))
  }

  /** Delete a canonical queue's `q`, `q.DQ` and `q.XQ`. */
  async deleteTopology(...canonical: string[]): Promise<void> {
    for (const q of canonical) await this.deleteQueues(q, dqName(q), xqName(q))
  }

  async close(): Promise<void> {
    await this.#model?.close().catch(() => undefined)
    this.#model = undefined
  }
}

/** The raw bodies in `q.XQ`. */
export async function deadLetterBodies(raw: RawAmqp, queueName: string): Promise<Uint8Array[]> {
  return (await raw.peek(xqName(queueName))).map((m) => m.content)
}

/** Server-side ids of the connections whose `connection_name` starts with `prefix`. */
export async function findConnections(prefix: string): Promise<string[]> {
  const { stdout } = await execFileAsync(RABBITMQCTL, ['list_connections', 'pid', 'client_properties', '-q'])
  const pids: string[] = []
  for (const line of stdout.split('\n')) {
    const name = /\{"connection_name","([^"]*)"\}/.exec(line)?.[1]
    const pid = line.split('\t')[0]
    if (name?.startsWith(prefix) && pid) pids.push(pid)
  }
  return pids
}

/**
 * Close connections server side, as an operator would (`rabbitmqctl close_connection`). Only
 * this test's connections, found by name: the server may be shared with other test runs.
 */
export async function closeConnections(pids: readonly string[]): Promise<void> {
  await Promise.all(pids.map((pid) => execFileAsync(RABBITMQCTL, ['close_connection', pid, 'tq fault-injection test'])))
}

/** The server's view of queues (arguments with their AMQP types), via rabbitmqctl. */
export async function listQueues(): Promise<
  Array<{
    name: string
    arguments: Array<[string, string, unknown]>
    durable: boolean
    auto_delete: boolean
    exclusive: boolean
    type: string
  }>
> {
  const { stdout } = await execFileAsync(RABBITMQCTL, [
    'list_queues',
    'name',
    'arguments',
    'durable',
    'auto_delete',
    'exclusive',
    'type',
    '--formatter',
    'json',
    '-q',
  ])
  return JSON.parse(stdout) as Awaited<ReturnType<typeof listQueues>>
}
