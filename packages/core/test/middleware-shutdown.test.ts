import { describe, expect, it, vi } from 'vitest'
import {
  CurrentMessage,
  MessageProxy,
  ShutdownError,
  ShutdownNotifications,
  StubBroker,
  Worker,
  actor,
  currentMessage,
  type Middleware,
} from '../src/index.ts'
import { deferred, fastStack, setup } from './middleware-helpers.ts'

describe('ShutdownNotifications', () => {
  it('worker.stop() aborts opted-in running actors only, not completed or non-opted ones', async () => {
    const acked: string[] = []
    const ackRecorder: Middleware = {
      afterAck: (_b, proxy) => void acked.push(proxy.actorName),
    }
    const { broker, worker, enqueued } = await setup(fastStack(undefined, new CurrentMessage(), ackRecorder))
    const signals = new Map<string, AbortSignal>()
    const aStarted = deferred()
    const aReason = deferred<unknown>()
    const bStarted = deferred()
    const bRelease = deferred()

    const watcher = actor(
      'watcher',
      async () => {
        const signal = currentMessage()!.signal
        signals.set('watcher', signal)
        signal.addEventListener('abort', () => aReason.resolve(signal.reason), { once: true })
        aStarted.resolve()
        await aReason.promise
      },
      { broker, notifyShutdown: true },
    )
    const plain = actor(
      'plain',
      async () => {
        signals.set('plain', currentMessage()!.signal)
        bStarted.resolve()
        await bRelease.promise
      },
      { broker },
    )
    const quick = actor('quick', () => void signals.set('quick', currentMessage()!.signal), {
      broker,
      notifyShutdown: true,
    })

    await quick.send()
    await broker.join('default', { timeout: 5000 })
    expect(acked).toEqual(['quick'])

    await watcher.send()
    await plain.send()
    await Promise.all([aStarted.promise, bStarted.promise])

    const stopping = worker.stop({ timeout: 5000 })
    expect(await aReason.promise).toBeInstanceOf(ShutdownError)
    expect(signals.get('plain')?.aborted).toBe(false)
    expect(signals.get('quick')?.aborted).toBe(false)
    // The notified actor failed with ShutdownError: Retries enqueues a retry and the delivery is
    // acked without waiting for the stop. The plain actor is still running.
    await vi.waitFor(() => expect(acked).toEqual(['quick', 'watcher']))
    bRelease.resolve()
    await stopping
    expect(acked).toEqual(['quick', 'watcher', 'plain'])
    const retry = enqueued.find((e) => e.wire.actor_name === 'watcher' && e.wire.queue_name === 'default.DQ')
    expect(retry?.wire.options['retries']).toBe(1)
    expect(retry?.wire.options['traceback']).toMatch(/^ShutdownError/)
    expect(broker.deadLetters).toHaveLength(0)
  })

  it('applies message > actor > middleware precedence, honouring an explicit false', async () => {
    const cases: Array<{ middleware: boolean; actor?: boolean; message?: boolean; expected: boolean }> = [
      { middleware: false, expected: false },
      { middleware: true, expected: true },
      { middleware: false, actor: true, expected: true },
      { middleware: true, actor: false, expected: false },
      { middleware: false, actor: false, message: true, expected: true },
      { middleware: true, actor: true, message: false, expected: false },
      { middleware: false, actor: true, message: false, expected: false },
    ]
    for (const [i, c] of cases.entries()) {
      const mw = new ShutdownNotifications({ notifyShutdown: c.middleware })
      const broker = new StubBroker({ middleware: [mw] })
      const job = actor(`job${i}`, () => undefined, {
        broker,
        ...(c.actor === undefined ? {} : { notifyShutdown: c.actor }),
      })
      const proxy = new MessageProxy(
        job.messageWithOptions(c.message === undefined ? {} : { notifyShutdown: c.message }),
      )
      mw.beforeProcessMessage(broker, proxy)
      expect({ case: i, pending: mw.pending }).toEqual({ case: i, pending: c.expected ? 1 : 0 })
      mw.beforeWorkerShutdown(broker, new Worker(broker))
      expect({ case: i, aborted: proxy.signal.aborted }).toEqual({ case: i, aborted: c.expected })
      if (c.expected) expect(proxy.signal.reason).toBeInstanceOf(ShutdownError)
      expect(mw.pending).toBe(0)
    }
  })

  it('forgets messages once they are processed or skipped', async () => {
    const mw = new ShutdownNotifications({ notifyShutdown: true })
    const broker = new StubBroker({ middleware: [mw] })
    const job = actor('job', () => undefined, { broker })
    const done = new MessageProxy(job.message())
    const skipped = new MessageProxy(job.message())
    mw.beforeProcessMessage(broker, done)
    mw.beforeProcessMessage(broker, skipped)
    expect(mw.pending).toBe(2)
    mw.afterProcessMessage(broker, done)
    mw.afterSkipMessage(broker, skipped)
    expect(mw.pending).toBe(0)
    mw.beforeWorkerShutdown(broker, new Worker(broker))
    expect(done.signal.aborted).toBe(false)
    expect(skipped.signal.aborted).toBe(false)
  })
})
