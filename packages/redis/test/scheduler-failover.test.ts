// Three scheduler processes on one Redis, the leader killed with SIGKILL twice while a schedule
// runs every 500 ms: each due time is enqueued exactly once and none is missed.
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { scheduledMessageId } from '@tq/core'
import { uniqueQueueName, waitFor } from '@tq/core/testing'
import { afterAll, describe, expect, it } from 'vitest'
import { REDIS_URL, deleteNamespace, rawClient, uniqueNamespace } from './helpers.ts'

const raw = rawClient()
const namespace = uniqueNamespace('sched')
const prefix = `tq-tracking-${namespace}`
const EVERY = 500
const LEASE = 1500

afterAll(async () => {
  await deleteNamespace(raw, namespace)
  await deleteNamespace(raw, prefix)
  await raw.quit()
})

interface Proc {
  child: ChildProcess
  owner?: string
  exited: Promise<void>
}

describe('Scheduler failover across processes', () => {
  it(
    'sends each due time exactly once, none missed, with the leader SIGKILLed twice',
    { timeout: 120_000 },
    async () => {
      const queueName = uniqueQueueName('sched')
      const script = fileURLToPath(new URL('./support/scheduler-process.ts', import.meta.url))
      const start = (): Proc => {
        const child = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            '--conditions=@tq/source',
            script,
            REDIS_URL,
            namespace,
            prefix,
            queueName,
            String(LEASE),
            String(EVERY),
          ],
          { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] },
        )
        const proc: Proc = { child, exited: new Promise((resolve) => child.once('exit', () => resolve())) }
        createInterface({ input: child.stdout }).on('line', (line) => {
          if (line.startsWith('ready ')) proc.owner = line.slice('ready '.length)
        })
        return proc
      }
      const leaseKey = `${prefix}:lease:scheduler:default`
      const procs = [start(), start(), start()]
      const failovers: number[] = []
      try {
        await waitFor(() => procs.every((p) => p.owner !== undefined), {
          timeout: 20_000,
          message: 'three schedulers up',
        })
        const began = Date.now()
        for (let kill = 0; kill < 2; kill++) {
          // Let it run a while, then kill the leader at a random point of a period.
          await new Promise((resolve) => setTimeout(resolve, 6000 + Math.random() * EVERY))
          const owner = await raw.get(leaseKey)
          const leader = procs.find((p) => p.owner === owner)
          expect(leader, `the lease holder ${owner} is one of ours`).toBeDefined()
          leader?.child.kill('SIGKILL')
          await leader?.exited
          const killedAt = Date.now()
          await waitFor(
            async () => {
              const next = await raw.get(leaseKey)
              return next !== null && next !== owner
            },
            { timeout: LEASE * 3, interval: 20, message: 'a new leader' },
          )
          failovers.push(Date.now() - killedAt)
        }
        // Run on until more than 60 due times have passed since the first.
        const untilDone = began + 61 * EVERY + 2000 - Date.now()
        if (untilDone > 0) await new Promise((resolve) => setTimeout(resolve, untilDone))
      } finally {
        for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM')
        await Promise.all(procs.map((p) => p.exited))
      }
      const mark = JSON.parse((await raw.hget(`${prefix}:schedules`, 'fast')) ?? '{}') as { lastDue?: number }
      const last = mark.lastDue ?? 0
      // The queue holds Redis ids (Dramatiq's layout); the messages, with their ids, are in `.msgs`.
      const bodies = await raw.hvals(`${namespace}:${queueName}.msgs`)
      expect(await raw.llen(`${namespace}:${queueName}`)).toBe(bodies.length)
      const ids = bodies.map((body) => (JSON.parse(body) as { message_id: string }).message_id)
      const counts = new Map<string, number>()
      for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1)
      const twice = [...counts].filter(([, n]) => n > 1)
      expect(twice, 'due times enqueued twice').toEqual([])
      // Every message is a due time of the chain back from the last one: none missed.
      let chain = 0
      while (counts.has(scheduledMessageId('fast', last - chain * EVERY))) chain++
      expect(chain).toBe(counts.size)
      expect(chain).toBeGreaterThan(60)
      for (const failover of failovers) expect(failover).toBeLessThan(LEASE + 1000)
      console.log(
        `scheduler failover: ${chain} due times, each enqueued once; new leader ${failovers.map((ms) => `${ms} ms`).join(', ')} after each SIGKILL (lease ${LEASE} ms)`,
      )
    },
  )
})
