import { describe, expect, it } from 'vitest'
import { AgeLimit, SkipMessage, actor, type MessageProxy, type Middleware } from '../src/index.ts'
import { drain, fastStack, setup } from './middleware-helpers.ts'

/** Records the messages skipped, and which ones reached the actor. */
function skipRecorder(): Middleware & { skipped: MessageProxy[] } {
  const skipped: MessageProxy[] = []
  return {
    skipped,
    afterSkipMessage: (_b, proxy) => {
      skipped.push(proxy)
    },
  }
}

describe('AgeLimit', () => {
  it('dead-letters a message older than the actor maxAge without running it, and emits afterSkipMessage', async () => {
    const recorder = skipRecorder()
    const { broker, worker, logs } = await setup(fastStack(undefined, recorder))
    const ran: string[] = []
    const job = actor('job', (tag: string) => void ran.push(tag), { broker, maxAge: 1000 })
    const old = job.message('old').copy({ messageTimestamp: Date.now() - 5000 })
    await broker.enqueue(old)
    await job.send('fresh')
    await drain(broker, worker)

    expect(ran).toEqual(['fresh'])
    expect(broker.deadLetters.map((p) => p.messageId)).toEqual([old.messageId])
    expect(broker.deadLetters[0]?.exception).toBeInstanceOf(SkipMessage)
    expect(recorder.skipped.map((p) => p.messageId)).toEqual([old.messageId])
    expect(
      logs.some(
        (e) => e.level === 'warn' && e.meta['component'] === 'age-limit' && e.meta['messageId'] === old.messageId,
      ),
    ).toBe(true)
    // join's failFast reports why.
    await expect(broker.join('default')).rejects.toThrow(/age limit/)
  })

  it('reads maxAge from the message first', async () => {
    const { broker, worker } = await setup(fastStack())
    const ran: string[] = []
    const job = actor('job', (tag: string) => void ran.push(tag), { broker })
    const old = job.messageWithOptions({ args: ['old'], maxAge: 100 }).copy({ messageTimestamp: Date.now() - 200 })
    await broker.enqueue(old)
    // The same age with a larger message-level limit runs.
    await broker.enqueue(
      job.messageWithOptions({ args: ['allowed'], maxAge: 10_000 }).copy({ messageTimestamp: Date.now() - 200 }),
    )
    await drain(broker, worker)
    expect(ran).toEqual(['allowed'])
    expect(broker.deadLetters.map((p) => p.messageId)).toEqual([old.messageId])
  })

  it('treats a message maxAge of 0 as unset (falls through to the actor), and an actor maxAge of 0 as no limit', async () => {
    const { broker, worker } = await setup(fastStack(undefined))
    const ran: string[] = []
    const limited = actor('limited', (tag: string) => void ran.push(tag), { broker, maxAge: 100 })
    const unlimited = actor('unlimited', (tag: string) => void ran.push(tag), { broker, maxAge: 0 })
    const past = Date.now() - 60_000
    await broker.enqueue(limited.messageWithOptions({ args: ['limited'], maxAge: 0 }).copy({ messageTimestamp: past }))
    await broker.enqueue(unlimited.message('unlimited').copy({ messageTimestamp: past }))
    await drain(broker, worker)
    expect(ran).toEqual(['unlimited'])
    expect(broker.deadLetters).toHaveLength(1)
  })

  it('uses the middleware default for actors without maxAge', async () => {
    const stack = fastStack()
    stack[0] = new AgeLimit({ maxAge: 1000 })
    const { broker, worker } = await setup(stack)
    const ran: string[] = []
    const job = actor('job', (tag: string) => void ran.push(tag), { broker })
    await broker.enqueue(job.message('old').copy({ messageTimestamp: Date.now() - 2000 }))
    await job.send('new')
    await drain(broker, worker)
    expect(ran).toEqual(['new'])
    expect(broker.deadLetters).toHaveLength(1)
  })

  it('has no limit by default', async () => {
    const { broker, worker } = await setup()
    const ran: string[] = []
    const job = actor('job', (tag: string) => void ran.push(tag), { broker })
    await broker.enqueue(job.message('ancient').copy({ messageTimestamp: 0 }))
    await drain(broker, worker)
    expect(ran).toEqual(['ancient'])
  })
})
