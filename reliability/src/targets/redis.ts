// Redis under test: DB 14 (the ledger's), a namespace of its own per run.
import { randomUUID } from 'node:crypto'
import { actor, xqName } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { Redis } from 'ioredis'
import { LEDGER_URL, uniqueName, type Ledger } from '../ledger.ts'
import type { RawPut, Target } from './target.ts'

const BATCH = 1000

export class RedisTarget implements Target {
  readonly name = 'redis' as const
  readonly namespace = uniqueName('redis')
  readonly queue = 'rel_redis'
  readonly producer: RedisBroker
  readonly raw: Redis
  readonly #ledger: Ledger
  readonly #record
  readonly #probe

  constructor(ledger: Ledger, options: { heartbeatTimeout?: number } = {}) {
    this.#ledger = ledger
    this.producer = new RedisBroker({
      url: LEDGER_URL,
      namespace: this.namespace,
      heartbeatTimeout: options.heartbeatTimeout ?? 2000,
    })
    this.#record = actor('record', (_id: number, _padding?: string) => undefined, {
      broker: this.producer,
      queueName: this.queue,
    })
    this.#probe = actor('probe', (_name: string) => undefined, {
      broker: this.producer,
      queueName: `${this.queue}_probe`,
    })
    this.raw = new Redis(LEDGER_URL, { connectionName: 'tq-rel-inspector', lazyConnect: true })
  }

  workerEnv(): Record<string, string> {
    return {
      TQ_REL_BROKER: 'redis',
      TQ_REL_URL: LEDGER_URL,
      TQ_REL_NAMESPACE: this.namespace,
      TQ_REL_QUEUE: this.queue,
      TQ_REL_HEARTBEAT_MS: '2000',
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

  /** The CLIENT LIST ids of connections named `tq:<broker id>:…` for the run's broker ids. */
  async connectionIds(): Promise<string[]> {
    const brokerIds = new Set([...(await this.#ledger.brokerIds()), this.producer.brokerId])
    const list = (await this.raw.client('LIST')) as string
    const ids: string[] = []
    for (const line of list.split('\n')) {
      const name = /(?:^|\s)name=tq:([0-9a-f-]{36}):\S*/.exec(line)?.[1]
      const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1]
      if (name && id && brokerIds.has(name)) ids.push(id)
    }
    return ids
  }

  async cut(): Promise<number> {
    let killed = 0
    for (const id of await this.connectionIds()) {
      // CLIENT KILL ID answers 0 when the connection is already gone.
      killed += Number(await this.raw.client('KILL', 'ID', id))
    }
    return killed
  }

  async putRaw(bytes: Uint8Array): Promise<RawPut> {
    // Dramatiq's documented recipe for foreign producers: HSET the payload, RPUSH the id.
    const id = randomUUID()
    await this.raw.hset(this.producer.key(`${this.queue}.msgs`), id, Buffer.from(bytes))
    await this.raw.rpush(this.producer.key(this.queue), id)
    return { id, bytes }
  }

  async deadLetters(): Promise<Uint8Array[]> {
    return (await this.producer.deadLetters(this.queue)).map((d) => d.body)
  }

  /** Ids still in flight in some worker's ack set (live or dead) for the queue. */
  async inFlight(): Promise<number> {
    let total = 0
    let cursor = '0'
    do {
      const [next, keys] = await this.raw.scan(cursor, 'MATCH', `${this.namespace}:__acks__.*`, 'COUNT', 1000)
      cursor = next
      for (const key of keys) total += await this.raw.scard(key)
    } while (cursor !== '0')
    return total
  }

  async heldBy(pid: number): Promise<number | undefined> {
    const brokerId = await this.#ledger.brokerIdOf(pid)
    if (!brokerId) return undefined
    const keys = [this.queue, `${this.queue}.DQ`].map((q) => `${this.namespace}:__acks__.${brokerId}.${q}`)
    let held = 0
    for (const key of keys) held += await this.raw.scard(key)
    return held
  }

  async drained(timeout: number): Promise<void> {
    const deadline = Date.now() + timeout
    for (;;) {
      const [ready, payloads, delayed, inFlight] = await Promise.all([
        this.raw.llen(this.producer.key(this.queue)),
        this.raw.hlen(this.producer.key(`${this.queue}.msgs`)),
        this.raw.hlen(this.producer.key(`${this.queue}.DQ.msgs`)),
        this.inFlight(),
      ])
      if (ready + payloads + delayed + inFlight === 0) return
      if (Date.now() > deadline) {
        throw new Error(
          `redis ${this.namespace}: not drained within ${timeout} ms (ready ${ready}, payloads ${payloads}, delayed ${delayed}, in flight ${inFlight})`,
        )
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  async cleanup(): Promise<void> {
    await this.producer.close()
    let cursor = '0'
    do {
      const [next, keys] = await this.raw.scan(cursor, 'MATCH', `${this.namespace}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await this.raw.del(...keys)
    } while (cursor !== '0')
    await this.raw.quit()
  }

  /** The dead-letter zset key (for the hostile-input checks). */
  get xqKey(): string {
    return this.producer.key(xqName(this.queue))
  }
}
