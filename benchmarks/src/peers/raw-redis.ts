// The Redis ceiling: plain ioredis, a list per queue, LPUSH to enqueue and RPOP to fetch, both
// pipelined in batches, JSON bodies of the same shape and size as tq's, JSON.parse on receipt.
// No acks, no ack sets, no heartbeats: nothing a real queue needs for at-least-once delivery.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { SystemModule } from './types.ts'

/** RPOPs per pipeline: tq's prefetch at concurrency 100 (2 × concurrency). */
export const RAW_REDIS_BATCH = 200

const key = (queue: string): string => `rawbench:${queue}`

/** A body shaped like a tq/Dramatiq message on the wire. */
export function wireBody(queue: string, value: number): string {
  return JSON.stringify({
    queue_name: queue,
    actor_name: 'noop',
    args: [value],
    kwargs: {},
    options: { redis_message_id: randomUUID() },
    message_id: randomUUID(),
    message_timestamp: Date.now(),
  })
}

export const system: SystemModule = {
  name: 'raw-redis',
  label: 'raw Redis (LPUSH/RPOP)',
  backend: 'redis',
  kind: 'ceiling',
  async producer(ctx, queue) {
    const client = new Redis(ctx.redisUrl)
    return {
      async bulk(values) {
        const pipeline = client.pipeline()
        for (const value of values) pipeline.lpush(key(queue), wireBody(queue, value))
        await pipeline.exec()
      },
      async one(value) {
        await client.lpush(key(queue), wireBody(queue, value))
      },
      async close() {
        await client.quit()
      },
    }
  },
  async consumer(ctx, queue, _concurrency, onProcessed) {
    const client = new Redis(ctx.redisUrl)
    let running = false
    let loop: Promise<void> | undefined
    const run = async (): Promise<void> => {
      while (running) {
        const pipeline = client.pipeline()
        for (let i = 0; i < RAW_REDIS_BATCH; i++) pipeline.rpop(key(queue))
        const replies = (await pipeline.exec()) ?? []
        let got = 0
        for (const [error, body] of replies) {
          if (error || typeof body !== 'string') continue
          got++
          const parsed = JSON.parse(body) as { args: [number] }
          onProcessed(parsed.args[0])
        }
        if (got === 0) await sleep(1)
      }
    }
    return {
      async start() {
        running = true
        loop = run()
      },
      async stop() {
        running = false
        await loop
        await client.quit()
      },
    }
  },
}
