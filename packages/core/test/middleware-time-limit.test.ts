import { describe, expect, it } from 'vitest'
import {
  CurrentMessage,
  Retries,
  SkipMessage,
  TimeLimit,
  TimeLimitExceededError,
  actor,
  currentMessage,
  type Middleware,
} from '../src/index.ts'
import { deferred, drain, fastStack, setup } from './middleware-helpers.ts'

/** Resolves with the signal's reason once it aborts. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }))
}

describe('TimeLimit', () => {
  it('fails an actor that runs past its time limit with TimeLimitExceededError; the actor signal fires', async () => {
    const { broker, worker, logs } = await setup(fastStack(undefined, new CurrentMessage()))
    const reasons: unknown[] = []
    const slow = actor(
      'slow',
      async () => {
        const signal = currentMessage()!.signal
        // Stands in for work that honours the signal (fetch, timers, streams…).
        reasons.push(await aborted(signal))
      },
      { broker, timeLimit: 30, maxRetries: 0 },
    )
    const started = Date.now()
    await slow.send()
    await expect(broker.join('default', { timeout: 5000 })).rejects.toBeInstanceOf(TimeLimitExceededError)
    await worker.join({ timeout: 5000 })
    expect(Date.now() - started).toBeGreaterThanOrEqual(30)
    expect(reasons).toHaveLength(1)
    expect(reasons[0]).toBeInstanceOf(TimeLimitExceededError)
    expect(broker.deadLetters[0]?.exception).toBe(reasons[0])
    expect(logs.some((e) => e.level === 'warn' && e.meta['component'] === 'time-limit')).toBe(true)
  })

  it('retries a message that timed out, like any failure', async () => {
    const { broker, worker } = await setup(
      fastStack(new Retries({ minBackoff: 1, maxBackoff: 2 }), new CurrentMessage()),
    )
    let runs = 0
    const sometimesSlow = actor(
      'sometimesSlow',
      async () => {
        if (++runs === 1) await aborted(currentMessage()!.signal)
        return runs
      },
      { broker, timeLimit: 20 },
    )
    await sometimesSlow.send()
    await drain(broker, worker)
    expect(runs).toBe(2)
    expect(broker.deadLetters).toHaveLength(0)
  })

  it('reads timeLimit from the message first, then the actor, then the middleware', async () => {
    const stack = fastStack()
    stack[1] = new TimeLimit({ timeLimit: 20 })
    const { broker, worker } = await setup([...stack, new CurrentMessage()])
    const outcomes: string[] = []
    const wait = actor(
      'wait',
      async (tag: string, ms: number) => {
        const signal = currentMessage()!.signal
        await Promise.race([aborted(signal), new Promise((r) => setTimeout(r, ms))])
        outcomes.push(`${tag}:${signal.aborted ? 'aborted' : 'done'}`)
      },
      { broker, maxRetries: 0 },
    )
    const generous = actor(
      'generous',
      async (tag: string, ms: number) => {
        const signal = currentMessage()!.signal
        await Promise.race([aborted(signal), new Promise((r) => setTimeout(r, ms))])
        outcomes.push(`${tag}:${signal.aborted ? 'aborted' : 'done'}`)
      },
      { broker, maxRetries: 0, timeLimit: 5000 },
    )
    await wait.send('middleware', 200)
    await drain(broker, worker)
    await generous.send('actor', 60)
    await drain(broker, worker)
    await generous.sendWithOptions({ args: ['message', 200], timeLimit: 20 })
    await drain(broker, worker)
    // A message-level 0 falls through to the actor's limit.
    await generous.sendWithOptions({ args: ['zero', 30], timeLimit: 0 })
    await drain(broker, worker)
    expect(outcomes).toEqual(['middleware:aborted', 'actor:done', 'message:aborted', 'zero:done'])
    expect(broker.deadLetters.map((p) => p.args[0])).toEqual(['middleware', 'message'])
  })

  it('sets no timer for an Infinity limit, and clears timers after processing and after a skip', async () => {
    const timeLimit = new TimeLimit()
    const skipper: Middleware = {
      beforeProcessMessage: (_b, proxy) => {
        if (proxy.args[0] === 'skip') {
          proxy.fail()
          throw new SkipMessage()
        }
      },
    }
    const stack = fastStack()
    stack[1] = timeLimit
    const { broker, worker } = await setup([...stack, skipper])
    const pendingDuringRun: number[] = []
    const entered = deferred()
    const release = deferred()
    const job = actor(
      'job',
      async (tag: string) => {
        pendingDuringRun.push(timeLimit.pending)
        if (tag === 'hold') {
          entered.resolve()
          await release.promise
        }
      },
      { broker, maxRetries: 0 },
    )
    // Infinity does not survive JSON, so "no limit" is an actor (or middleware) setting.
    const unbounded = actor('unbounded', async () => void pendingDuringRun.push(timeLimit.pending), {
      broker,
      timeLimit: Infinity,
    })
    await unbounded.send()
    await drain(broker, worker)
    await job.send('normal')
    await drain(broker, worker)
    expect(pendingDuringRun).toEqual([0, 1])
    expect(timeLimit.pending).toBe(0)

    await job.send('skip')
    await drain(broker, worker)
    expect(timeLimit.pending).toBe(0)
    expect(broker.deadLetters).toHaveLength(1)

    await job.send('hold')
    await entered.promise
    expect(timeLimit.pending).toBe(1)
    release.resolve()
    await drain(broker, worker)
    expect(timeLimit.pending).toBe(0)
  })
})
