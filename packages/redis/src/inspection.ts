import { dqName, qName, xqName, type Notifier, type QueueCounts } from '@tq/core'
import { pollUntilEmpty } from '@tq/core/adapter'
import type { Redis } from 'ioredis'
import { classifyRedisError } from './classify-error.ts'
import type { RedisKeys } from './keys.ts'
import type { RunScript } from './scripts.ts'

/** A dead-lettered message as stored in `<ns>:<queue>.XQ` and `<ns>:<queue>.XQ.msgs`. */
export interface RedisDeadLetter {
  /** The Redis message id (the `.XQ` member). */
  redisMessageId: string
  /** The payload exactly as it was last written to Redis. */
  body: Uint8Array
  /** Unix ms at which it was dead-lettered (the `.XQ` score). */
  deadLetteredAt: number
}

export interface InspectionOptions {
  readonly keys: RedisKeys
  readonly run: RunScript
  readonly client: Redis
  /** Wait for the connection to be ready (see `RedisConnection.ready`). */
  readonly ready: () => Promise<void> | undefined
  /** Notified when a consumer of this broker settles something: `join()` looks again. */
  readonly settled: Notifier
}

/** What is in a queue, waiting for it to drain, and emptying it: the broker's operations side. */
export class Inspection {
  readonly #options: InspectionOptions

  constructor(options: InspectionOptions) {
    this.#options = options
  }

  /** Dramatiq's `qsize`: payloads of the queue and its delay queue plus this broker's ack sets for both. */
  async qsize(queueName: string): Promise<number> {
    const { keys, run } = this.#options
    const q = qName(queueName)
    const dq = dqName(q)
    return Number(await run('qsize', [keys.msgs(q), keys.acks(q), keys.msgs(dq), keys.acks(dq)], []))
  }

  /** Ready, delayed and dead messages of a canonical queue, and those delivered to any worker; one script call. */
  async queueCounts(queueName: string): Promise<QueueCounts> {
    const { keys, run } = this.#options
    const q = qName(queueName)
    const reply = (await run(
      'queueCounts',
      [keys.key(q), keys.key(dqName(q)), keys.key(xqName(q))],
      [keys.namespace, q],
    )) as [number, number, number, number]
    const [ready, delayed, dead, running] = reply
    return { ready, delayed, running, dead }
  }

  /** Wait until `qsize(queueName)` is 0, looking again every `interval` ms or when a local consumer settles. */
  join(queueName: string, options: { timeout?: number | undefined; interval?: number | undefined }): Promise<void> {
    const canonical = qName(queueName)
    return pollUntilEmpty(canonical, async () => (await this.qsize(canonical)) === 0, {
      timeout: options.timeout,
      interval: options.interval,
      wake: this.#options.settled,
    })
  }

  /** Drop a queue, its delay queue, their dead letters and this broker's ack sets for them. */
  async flush(queueName: string): Promise<void> {
    const { keys, run } = this.#options
    const q = qName(queueName)
    const xq = xqName(q)
    await Promise.all(
      [q, dqName(q)].map((name) =>
        run('purge', [keys.key(name), keys.acks(name), keys.msgs(name), keys.key(xq), keys.msgs(xq)], []),
      ),
    )
  }

  /** The dead letters of a canonical queue (from it and its delay queue), oldest first. */
  async deadLetters(queueName: string): Promise<RedisDeadLetter[]> {
    const { keys, client } = this.#options
    const xq = keys.key(xqName(queueName))
    await this.#options.ready()
    try {
      const entries = await client.zrangeBuffer(xq, '0', '-1', 'WITHSCORES')
      const out: RedisDeadLetter[] = []
      const ids: Buffer[] = []
      const scores: number[] = []
      for (let i = 0; i + 1 < entries.length; i += 2) {
        ids.push(entries[i] as Buffer)
        scores.push(Number((entries[i + 1] as Buffer).toString()))
      }
      if (ids.length === 0) return out
      const bodies = await client.hmgetBuffer(`${xq}.msgs`, ...ids)
      ids.forEach((id, i) => {
        const body = bodies[i]
        if (body) out.push({ redisMessageId: id.toString(), body, deadLetteredAt: scores[i] as number })
      })
      return out
    } catch (error) {
      throw classifyRedisError(error)
    }
  }
}
