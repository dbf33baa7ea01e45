import { describe, expect, it } from 'vitest'
import {
  Admin,
  ConfigurationError,
  InvalidArgumentError,
  StubBroker,
  StubTrackingBackend,
  Tracking,
  Worker,
  actor,
  setProgress,
} from '../src/index.ts'
import { deferred } from '../src/testing/index.ts'

describe('setProgress', () => {
  it('stores the last progress an actor reports; admin.message() and message.getProgress() read it', async () => {
    const backend = new StubTrackingBackend()
    const tracking = new Tracking({ backend, flushInterval: 0 })
    const broker = new StubBroker({ middleware: [tracking] })
    const halfway = deferred()
    const release = deferred()
    const job = actor(
      'job',
      async () => {
        setProgress(0.25)
        setProgress({ done: 2, of: 4 })
        halfway.resolve()
        await release.promise
        setProgress(1)
      },
      { broker },
    )
    const message = await job.send()
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await halfway.promise
    await tracking.flush()
    expect(await message.getProgress({ backend })).toEqual({ done: 2, of: 4 })
    release.resolve()
    await broker.join('default')
    await worker.stop()
    expect((await new Admin({ broker }).message(message.messageId))?.progress).toBe(1)
  })

  it('refuses a call outside an actor and values that are not a 0–1 number or small JSON', async () => {
    expect(() => setProgress(0.5)).toThrow(InvalidArgumentError)
    const broker = new StubBroker({ middleware: [new Tracking({ backend: new StubTrackingBackend() })] })
    const errors: unknown[] = []
    const bad = actor(
      'bad',
      () => {
        for (const value of [Number.NaN, 1.5, -0.1, { big: 'x'.repeat(5000) }, { n: 1n }, 'half'] as never[]) {
          try {
            setProgress(value)
          } catch (error) {
            errors.push(error)
          }
        }
      },
      { broker },
    )
    await bad.send()
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await broker.join('default')
    await worker.stop()
    expect(errors).toHaveLength(6)
    expect(errors.every((e) => e instanceof InvalidArgumentError)).toBe(true)
  })

  it('getProgress() without a backend and without Tracking says what is missing', async () => {
    const { setBroker } = await import('../src/index.ts')
    const broker = new StubBroker({ middleware: [] })
    setBroker(broker)
    const job = actor('job', () => undefined, { broker })
    const message = await job.send()
    await expect(message.getProgress()).rejects.toBeInstanceOf(ConfigurationError)
  })
})
