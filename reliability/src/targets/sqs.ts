// SQS under test: fauxqs started from code on 127.0.0.1 (as packages/sqs's test setup does),
// with its stores kept across a stop/start so a "server outage" loses nothing a real SQS would
// keep. Queues are prefixed per run and deleted afterwards.
import { randomBytes } from 'node:crypto'
import {
  DeleteQueueCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SQSClient,
  SendMessageCommand,
} from '@aws-sdk/client-sqs'
import { actor, dqName, xqName } from '@tq/core'
import { SqsBroker, fromSqsBody, isQueueMissing, toSqsBody } from '@tq/sqs'
import type { RawPut, Target } from './target.ts'

const BATCH = 1000
const REGION = 'us-east-1'
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' }

interface FauxqsApp {
  listen(options: { host: string; port: number }): Promise<string>
  close(): Promise<void>
}

type Stores = Record<'sqsStore' | 'snsStore' | 's3Store', unknown>

/**
 * fauxqs on 127.0.0.1, stoppable and restartable on the same port with the same in-memory
 * state (its `stores` option): from the clients' side, a server that went away and came back.
 */
export class FauxqsServer {
  #app: FauxqsApp | undefined
  #stores: Stores | undefined
  #buildApp: ((options: object) => FauxqsApp) | undefined
  port = 0

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get running(): boolean {
    return this.#app !== undefined
  }

  async start(): Promise<void> {
    if (this.#app) return
    if (!this.#buildApp || !this.#stores) {
      // The store classes are not in fauxqs's exports map: load them next to its entry point.
      const entry = import.meta.resolve('fauxqs')
      const mod = (await import('fauxqs')) as unknown as { buildApp: (options: object) => FauxqsApp }
      const load = async (path: string, name: string): Promise<unknown> => {
        const m = (await import(new URL(path, entry).href)) as Record<string, new () => unknown>
        const Store = m[name]
        if (!Store) throw new Error(`fauxqs: no ${name} in ${path}`)
        return new Store()
      }
      this.#buildApp = mod.buildApp
      this.#stores = {
        sqsStore: await load('./sqs/sqsStore.js', 'SqsStore'),
        snsStore: await load('./sns/snsStore.js', 'SnsStore'),
        s3Store: await load('./s3/s3Store.js', 'S3Store'),
      }
    }
    const app = this.#buildApp({ logger: false, defaultRegion: REGION, stores: this.#stores })
    const address = await app.listen({ host: '127.0.0.1', port: this.port })
    this.port = Number(new URL(address).port)
    this.#app = app
  }

  /** Close the listener and every open connection (fauxqs sets forceCloseConnections). */
  async stop(): Promise<void> {
    const app = this.#app
    this.#app = undefined
    await app?.close()
  }
}

export class SqsTarget implements Target {
  readonly name = 'sqs' as const
  readonly namespace = `tqrel-sqs-${process.pid}-${randomBytes(3).toString('hex')}-`
  readonly queue = 'rel_sqs'
  readonly producer: SqsBroker
  readonly raw: SQSClient
  readonly server: FauxqsServer
  readonly #record
  readonly #probe
  /** Outage length of a cut, ms. */
  readonly outage: number

  constructor(server: FauxqsServer, options: { outage?: number } = {}) {
    this.server = server
    this.outage = options.outage ?? 1000
    const client = { endpoint: server.endpoint, region: REGION, credentials: CREDENTIALS }
    this.producer = new SqsBroker({ ...client, queuePrefix: this.namespace, waitTimeSeconds: 1, closeTimeout: 0 })
    this.raw = new SQSClient(client)
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
      TQ_REL_BROKER: 'sqs',
      TQ_REL_URL: this.server.endpoint,
      TQ_REL_NAMESPACE: this.namespace,
      TQ_REL_QUEUE: this.queue,
      TQ_REL_VISIBILITY_S: '2',
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

  /** Stop fauxqs (every connection drops), wait `outage` ms, start it again on the same port. */
  async cut(): Promise<number> {
    await this.server.stop()
    await new Promise((r) => setTimeout(r, this.outage))
    await this.server.start()
    return 1
  }

  async putRaw(bytes: Uint8Array): Promise<RawPut> {
    // What a foreign producer does: SendMessage to the queue's URL (tq creates the queues).
    const url = await this.producer.getQueueUrl(this.queue)
    const body = toSqsBody(bytes)
    const out = await this.raw.send(
      new SendMessageCommand({
        QueueUrl: url,
        MessageBody: body.body,
        ...(body.attributes ? { MessageAttributes: body.attributes } : {}),
      }),
    )
    return { id: out.MessageId ?? '', bytes }
  }

  async deadLetters(): Promise<Uint8Array[]> {
    // Receive with a visibility timeout so one read sees each message once; they come back after.
    const url = await this.producer.getQueueUrl(xqName(this.queue))
    const seen: Uint8Array[] = []
    for (;;) {
      const out = await this.raw.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          VisibilityTimeout: 1,
          MessageAttributeNames: ['All'],
        }),
      )
      const messages = out.Messages ?? []
      if (messages.length === 0) return seen
      for (const m of messages) seen.push(fromSqsBody(m))
    }
  }

  async drained(timeout: number): Promise<void> {
    const deadline = Date.now() + timeout
    for (;;) {
      let left = 0
      for (const q of [this.queue, dqName(this.queue)]) {
        const counts = await this.producer.messageCounts(q)
        left += counts.visible + counts.notVisible + counts.delayed
      }
      if (left === 0) return
      if (Date.now() > deadline) throw new Error(`sqs ${this.namespace}: ${left} messages left after ${timeout} ms`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  async cleanup(): Promise<void> {
    await this.producer.close()
    for (const q of [this.queue, `${this.queue}_probe`]) {
      for (const name of [q, dqName(q), xqName(q)]) {
        try {
          const { QueueUrl } = await this.raw.send(
            new GetQueueUrlCommand({ QueueName: this.producer.sqsQueueName(name) }),
          )
          await this.raw.send(new DeleteQueueCommand({ QueueUrl }))
        } catch (error) {
          if (!isQueueMissing(error)) throw error
        }
      }
    }
    this.raw.destroy()
  }
}
