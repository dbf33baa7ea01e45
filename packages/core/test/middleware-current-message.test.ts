import { describe, expect, it } from 'vitest'
import {
  CurrentMessage,
  TimeLimitExceededError,
  actor,
  currentMessage,
  defaultMiddleware,
  type MessageProxy,
} from '../src/index.ts'
import { deferred, drain, setup } from './middleware-helpers.ts'

describe('CurrentMessage', () => {
  it('exposes the message inside an async actor, across awaits, and nothing outside', async () => {
    const { broker, worker } = await setup([...defaultMiddleware(), new CurrentMessage()])
    const seen: Array<{
      before: string | undefined
      after: string | undefined
      nested: string | undefined
      same: boolean
    }> = []
    const helper = async (): Promise<string | undefined> => {
      await new Promise((r) => setTimeout(r, 5))
      return currentMessage()?.messageId
    }
    const job = actor(
      'job',
      async () => {
        const before = currentMessage()?.messageId
        await new Promise((r) => setTimeout(r, 5))
        const after = currentMessage()?.messageId
        seen.push({
          before,
          after,
          nested: await helper(),
          same: CurrentMessage.getCurrentMessage() === currentMessage(),
        })
      },
      { broker },
    )
    const sent = await job.send()
    await drain(broker, worker)
    expect(seen).toEqual([{ before: sent.messageId, after: sent.messageId, nested: sent.messageId, same: true }])
    expect(currentMessage()).toBeUndefined()
    expect(CurrentMessage.getCurrentMessage()).toBeUndefined()
  })

  it('keeps concurrent messages apart', async () => {
    const { broker, worker } = await setup([...defaultMiddleware(), new CurrentMessage()], { concurrency: 4 })
    const gate = deferred()
    const pairs: Array<[number, unknown]> = []
    let started = 0
    const allStarted = deferred()
    const job = actor(
      'job',
      async (n: number) => {
        if (++started === 3) allStarted.resolve()
        await gate.promise
        pairs.push([n, currentMessage()?.args[0]])
      },
      { broker },
    )
    await Promise.all([job.send(1), job.send(2), job.send(3)])
    await allStarted.promise
    gate.resolve()
    await drain(broker, worker)
    expect(pairs.sort()).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ])
  })

  it('gives the proxy: options (retries) and the abort signal', async () => {
    const { broker, worker } = await setup([...defaultMiddleware(), new CurrentMessage()])
    const seen: Array<{ retries: unknown; signal: boolean }> = []
    let runs = 0
    const job = actor(
      'job',
      () => {
        const message = currentMessage() as MessageProxy
        seen.push({
          retries: message.options.retries,
          signal: message.signal instanceof AbortSignal && !message.signal.aborted,
        })
        if (++runs < 2) throw new Error('again')
      },
      { broker, minBackoff: 1, maxBackoff: 2 },
    )
    await job.send()
    await drain(broker, worker)
    expect(seen).toEqual([
      { retries: undefined, signal: true },
      { retries: 1, signal: true },
    ])
  })

  it('is the message inside actors without the middleware too (the worker sets it)', async () => {
    const { broker, worker } = await setup()
    const seen: unknown[] = []
    const job = actor('job', () => void seen.push(currentMessage()?.messageId), { broker })
    const sent = await job.send()
    await drain(broker, worker)
    expect(seen).toEqual([sent.messageId])
  })
})

describe('the actor signal with the default stack (no CurrentMessage middleware)', () => {
  it('currentMessage() is set and its signal aborts with TimeLimitExceededError on the time limit', async () => {
    const { broker, worker } = await setup(defaultMiddleware())
    expect(broker.middleware.some((m) => m instanceof CurrentMessage)).toBe(false)
    const reasons: unknown[] = []
    let stoppedEarly = false
    const slow = actor(
      'slow',
      async () => {
        const signal = currentMessage()?.signal
        if (!signal) throw new Error('no signal')
        // A cooperative actor: stops when its signal fires, not after the full 10 s.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 10_000)
          signal.addEventListener('abort', () => {
            clearTimeout(timer)
            reasons.push(signal.reason)
            stoppedEarly = true
            resolve()
          })
        })
      },
      { broker, timeLimit: 50, maxRetries: 0 },
    )
    await slow.send()
    await drain(broker, worker)
    expect(stoppedEarly).toBe(true)
    expect(reasons).toHaveLength(1)
    expect((reasons[0] as { code?: string }).code).toBe(new TimeLimitExceededError('x').code)
  })
})
