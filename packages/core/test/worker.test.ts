import { describe, expect, it } from 'vitest'
import {
  ConnectionClosedError,
  Message,
  ShutdownError,
  StubBroker,
  Worker,
  actor,
  type Consumer,
  type ConsumeOptions,
  type Middleware,
} from '../src/index.ts'
import { Ledger, createCapturingLogger, deferred, waitFor } from '../src/testing/index.ts'

const failToDeadLetter: Middleware = {
  afterProcessMessage: (_b, m, { exception }) => {
    if (exception !== undefined) m.fail()
  },
}

describe('Worker', () => {
  it('runs higher priority (lower number) first, FIFO within a priority', async () => {
    const broker = new StubBroker({ middleware: [] })
    const ledger = new Ledger<string>()
    const lo = actor('lo', (i: number) => ledger.record(`lo${i}`), { broker, priority: 10 })
    const hi = actor('hi', (i: number) => ledger.record(`hi${i}`), { broker, priority: 0 })
    for (let i = 0; i < 4; i++) {
      await lo.send(i)
      await hi.send(i)
    }
    const worker = new Worker(broker, { concurrency: 1, queuePrefetch: 20, workerTimeout: 20 })
    await worker.start()
    await ledger.waitForTotal(8)
    await worker.stop()
    expect(ledger.order).toEqual(['hi0', 'hi1', 'hi2', 'hi3', 'lo0', 'lo1', 'lo2', 'lo3'])
  })

  it('never runs more than `concurrency` actors at once', async () => {
    const broker = new StubBroker({ middleware: [] })
    let active = 0
    let peak = 0
    const work = actor(
      'work',
      async () => {
        active++
        peak = Math.max(peak, active)
        await new Promise((r) => setTimeout(r, 5))
        active--
      },
      { broker },
    )
    for (let i = 0; i < 30; i++) await work.send()
    const worker = new Worker(broker, { concurrency: 3, workerTimeout: 20 })
    await worker.start()
    await broker.join('default')
    await worker.stop()
    expect(peak).toBe(3)
    expect(worker.stats.processed).toBe(30)
  })

  it('pause() holds messages and resume() releases them', async () => {
    const broker = new StubBroker({ middleware: [] })
    const ledger = new Ledger<number>()
    const work = actor('work', (i: number) => ledger.record(i), { broker })
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    worker.pause()
    expect(worker.paused).toBe(true)
    await work.send(1)
    await new Promise((r) => setTimeout(r, 60))
    expect(ledger.total).toBe(0)
    worker.resume()
    await ledger.waitForTotal(1)
    await worker.stop()
  })

  it('consumes only the whitelisted queues (and their delay queues)', async () => {
    const broker = new StubBroker({ middleware: [] })
    actor('a', () => 1, { broker, queueName: 'a' })
    actor('b', () => 1, { broker, queueName: 'b' })
    const worker = new Worker(broker, { queues: ['a'], workerTimeout: 20 })
    await worker.start()
    actor('c', () => 1, { broker, queueName: 'c' })
    expect(worker.consumedQueues.sort()).toEqual(['a', 'a.DQ'])
    await worker.stop()
  })

  it('follows queues declared after it started', async () => {
    const broker = new StubBroker({ middleware: [] })
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    const ran = deferred<string>()
    const late = actor('late', (x: string) => ran.resolve(x), { broker, queueName: 'late' })
    await late.send('hello')
    expect(await ran.promise).toBe('hello')
    await worker.stop()
  })

  it('acks a failed message when no middleware fails it (Dramatiq without Retries)', async () => {
    const broker = new StubBroker({ middleware: [] })
    const boom = actor(
      'boom',
      () => {
        throw new Error('boom')
      },
      { broker },
    )
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await boom.send()
    await broker.join('default')
    await worker.stop()
    expect(broker.deadLetters).toEqual([])
    expect(worker.stats.failed).toBe(1)
  })

  it('stop() gives up on an actor after the timeout and aborts its signal', async () => {
    const logger = createCapturingLogger()
    const broker = new StubBroker({ middleware: [], logger })
    const reason = deferred<unknown>()
    let signal: AbortSignal | undefined
    const started = deferred()
    const capture: Middleware = {
      beforeProcessMessage: (_b, m) => {
        signal = m.signal
        m.signal.addEventListener('abort', () => reason.resolve(m.signal.reason))
        started.resolve()
      },
    }
    broker.addMiddleware(capture)
    const hang = actor('hang', () => new Promise(() => undefined), { broker })
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await hang.send()
    await started.promise
    await worker.stop({ timeout: 50 })
    expect(await reason.promise).toBeInstanceOf(ShutdownError)
    expect(signal?.aborted).toBe(true)
    expect(logger.entries.some((e) => e.msg.includes('still running'))).toBe(true)
  })

  it('restarts a consumer whose receive() failed', async () => {
    class FlakyBroker extends StubBroker {
      failures = 1
      override consume(queueName: string, options?: ConsumeOptions): Consumer {
        const inner = super.consume(queueName, options)
        const receive = inner.receive.bind(inner)
        inner.receive = async (o) => {
          if (!queueName.endsWith('.DQ') && this.failures > 0) {
            this.failures--
            throw new ConnectionClosedError('connection reset')
          }
          return receive(o)
        }
        return inner
      }
    }
    const logger = createCapturingLogger()
    const broker = new FlakyBroker({ middleware: [], logger })
    const ran = deferred<number>()
    const work = actor('work', (x: number) => ran.resolve(x), { broker })
    const worker = new Worker(broker, { workerTimeout: 20, consumerRestartDelay: 10 })
    await worker.start()
    await work.send(5)
    expect(await ran.promise).toBe(5)
    await worker.stop()
    expect(logger.entries.some((e) => e.level === 'error' && e.msg.includes('restarting'))).toBe(true)
  })

  it('retries an ack that hit a connection error until it goes through', async () => {
    let failAcks = 2
    class FlakyAckBroker extends StubBroker {
      override consume(queueName: string, options?: ConsumeOptions): Consumer {
        const inner = super.consume(queueName, options)
        const ack = inner.ack.bind(inner)
        inner.ack = async (m) => {
          if (failAcks > 0) {
            failAcks--
            throw new ConnectionClosedError('gone')
          }
          return ack(m)
        }
        return inner
      }
    }
    const broker = new FlakyAckBroker({ middleware: [] })
    const work = actor('work', () => undefined, { broker })
    const worker = new Worker(broker, { workerTimeout: 20, ackRetryDelay: 5 })
    await worker.start()
    await work.send()
    await broker.join('default', { timeout: 2000 })
    expect(failAcks).toBe(0)
    await worker.stop()
  })

  it('runs a message with a non-numeric eta now and ignores a null eta', async () => {
    const broker = new StubBroker({ middleware: [] })
    const ledger = new Ledger<string>()
    const work = actor('work', (x: string) => ledger.record(x), { broker })
    // As a foreign producer would send them: `eta` is not a message option tq code may set.
    const withEta = (arg: string, eta: unknown) => Message.fromWire({ ...work.message(arg).toWire(), options: { eta } })
    await broker.enqueue(withEta('bad-eta', 'soon'))
    await broker.enqueue(withEta('null-eta', null))
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await ledger.waitForTotal(2)
    await broker.join('default')
    await worker.stop()
    expect(ledger.order.sort()).toEqual(['bad-eta', 'null-eta'])
  })

  it('join() waits for held delayed messages too', async () => {
    const broker = new StubBroker({ middleware: [] })
    const ledger = new Ledger<string>()
    const work = actor('work', (x: string) => ledger.record(x), { broker })
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await work.sendWithOptions({ args: ['d'], delay: 100 })
    await waitFor(() => worker.stats.delayed === 1)
    await worker.join({ timeout: 2000 })
    expect(ledger.order).toEqual(['d'])
    await worker.stop()
  })
})

describe('StubBroker', () => {
  it('raises QueueNotFoundError for undeclared queues', async () => {
    const broker = new StubBroker({ middleware: [] })
    const { Message, QueueNotFoundError } = await import('../src/index.ts')
    await expect(broker.enqueue(new Message({ queueName: 'nope', actorName: 'a' }))).rejects.toBeInstanceOf(
      QueueNotFoundError,
    )
    expect(() => broker.consume('nope')).toThrow(QueueNotFoundError)
    await expect(broker.join('nope')).rejects.toBeInstanceOf(QueueNotFoundError)
  })

  it('join() times out with QueueJoinTimeoutError', async () => {
    const broker = new StubBroker({ middleware: [] })
    const { QueueJoinTimeoutError } = await import('../src/index.ts')
    const work = actor('work', () => undefined, { broker })
    await work.send()
    await expect(broker.join('default', { timeout: 30 })).rejects.toBeInstanceOf(QueueJoinTimeoutError)
  })

  it('join() rethrows the actor error of a dead-lettered message (failFast), unless disabled', async () => {
    const broker = new StubBroker({ middleware: [failToDeadLetter] })
    class ValueError extends Error {
      override name = 'ValueError'
    }
    const boom = actor(
      'boom',
      () => {
        throw new ValueError('boom')
      },
      { broker },
    )
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await boom.send()
    await expect(broker.join('default')).rejects.toThrow(ValueError)
    await expect(broker.join('default', { failFast: false })).resolves.toBeUndefined()
    await worker.stop()
    expect(broker.deadLetters).toHaveLength(1)
  })

  it('flushAll() clears dead letters in place', async () => {
    const broker = new StubBroker({ middleware: [failToDeadLetter] })
    const boom = actor(
      'boom',
      () => {
        throw new Error('x')
      },
      { broker },
    )
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    await boom.send()
    await broker.join('default', { failFast: false })
    const list = broker.deadLettersByQueue.get('default')
    expect(list).toHaveLength(1)
    await broker.flushAll()
    expect(broker.deadLettersByQueue.get('default')).toBe(list)
    expect(list).toHaveLength(0)
    await worker.stop()
  })

  it('refuses a message that cannot be encoded at send time', async () => {
    const broker = new StubBroker({ middleware: [] })
    const work = actor('work', (x: unknown) => x, { broker })
    const { InvalidArgumentError } = await import('../src/index.ts')
    await expect(work.send(10n)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(work.send(10n)).rejects.toThrow(/cannot be encoded as JSON.*BigInt/)
    expect(broker.size('default')).toBe(0)
  })
})
