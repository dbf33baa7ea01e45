import { describe, expect, it } from 'vitest'
import { Retries, Retry, SkipMessage, actor, computeBackoff, type Middleware, type WireMessage } from '../src/index.ts'
import { drain, fastStack, setup } from './middleware-helpers.ts'

describe('computeBackoff', () => {
  it('stays within [minBackoff, maxBackoff] whatever the jitter', () => {
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      const random = () => r
      for (let attempts = 0; attempts < 40; attempts++) {
        const delay = computeBackoff(attempts, { factor: 100, maxBackoff: 5000, random })
        expect(delay).toBeGreaterThanOrEqual(100)
        expect(delay).toBeLessThanOrEqual(5000)
        expect(Number.isInteger(delay)).toBe(true)
      }
    }
  })

  it('never waits less than minBackoff on the first retry, even when the jittered value passes maxBackoff', () => {
    for (let i = 0; i < 500; i++) {
      const delay = computeBackoff(0, { factor: 15, maxBackoff: 20 })
      expect(delay).toBeGreaterThanOrEqual(15)
      expect(delay).toBeLessThanOrEqual(20)
    }
    // The first retry with defaults-like values: between factor and 2 * factor.
    expect(computeBackoff(0, { factor: 15_000, maxBackoff: 604_800_000, random: () => 0 })).toBe(15_000)
    expect(computeBackoff(0, { factor: 15_000, maxBackoff: 604_800_000, random: () => 0.5 })).toBe(22_500)
  })

  it('doubles per attempt without jitter, caps the exponent and the delay', () => {
    expect([0, 1, 2, 3].map((a) => computeBackoff(a, { factor: 15_000, jitter: false, maxBackoff: 1e12 }))).toEqual([
      15_000, 30_000, 60_000, 120_000,
    ])
    expect(computeBackoff(100, { factor: 1, jitter: false, maxBackoff: Number.MAX_SAFE_INTEGER })).toBe(2 ** 32)
    expect(computeBackoff(10, { factor: 100, jitter: false, maxBackoff: 500 })).toBe(500)
    // Above the maximum, jitter lands in [max/2, max].
    expect(computeBackoff(10, { factor: 100, maxBackoff: 1000, random: () => 0 })).toBe(500)
  })

  it('returns 0 for a zero factor or a zero maximum', () => {
    expect(computeBackoff(3, { factor: 0, maxBackoff: 1000 })).toBe(0)
    expect(computeBackoff(0, { factor: 15_000, maxBackoff: 0 })).toBe(0)
  })
})

describe('Retries', () => {
  it('makes exactly maxRetries + 1 attempts, then dead-letters; join rethrows the actor error', async () => {
    const { broker, worker, logs } = await setup(fastStack())
    let attempts = 0
    const fails = actor(
      'fails',
      () => {
        attempts++
        throw new TypeError('boom')
      },
      { broker, maxRetries: 3 },
    )
    await fails.send()
    await expect(broker.join('default', { timeout: 5000 })).rejects.toThrow(TypeError)
    await worker.join({ timeout: 5000 })
    expect(attempts).toBe(4)
    expect(broker.deadLetters).toHaveLength(1)
    const dead = broker.deadLetters[0]!
    expect(dead.options.retries).toBe(4)
    expect((dead.exception as Error).message).toBe('boom')
    expect(
      logs.some(
        (e) => e.level === 'warn' && e.msg.startsWith('Retries exceeded') && e.meta['messageId'] === dead.messageId,
      ),
    ).toBe(true)
  })

  it('re-enqueues the same message (id, timestamp) with retries, traceback, requeueTimestamp, in wire order', async () => {
    const { broker, worker, enqueued } = await setup()
    const seen: Array<{ retries: unknown; id: string }> = []
    const recorder: Middleware = {
      beforeProcessMessage: (_b, proxy) => {
        seen.push({ retries: proxy.options.retries, id: proxy.messageId })
      },
    }
    broker.addMiddleware(recorder)
    let runs = 0
    const flaky = actor(
      'flaky',
      (n: number) => {
        if (++runs < 3) throw new Error(`failure ${runs - 1}`)
        return n
      },
      { broker, minBackoff: 10, maxBackoff: 20 },
    )
    const sent = await flaky.sendWithOptions({ args: [7], brokerPriority: 3 })
    await drain(broker, worker)

    expect(seen.map((s) => s.retries)).toEqual([undefined, 1, 2])
    expect(new Set(seen.map((s) => s.id))).toEqual(new Set([sent.messageId]))
    expect(broker.deadLetters).toHaveLength(0)

    const retries = enqueued.filter((e) => e.wire.queue_name === 'default.DQ')
    expect(retries).toHaveLength(2)
    for (const [i, retry] of retries.entries()) {
      const { wire } = retry
      expect(wire.message_id).toBe(sent.messageId)
      expect(wire.message_timestamp).toBe(sent.messageTimestamp)
      expect(Object.keys(wire)).toEqual([
        'queue_name',
        'actor_name',
        'args',
        'kwargs',
        'options',
        'message_id',
        'message_timestamp',
      ])
      expect(Object.keys(wire.options)).toEqual(['broker_priority', 'retries', 'traceback', 'requeue_timestamp', 'eta'])
      expect(wire.options['retries']).toBe(i + 1)
      expect(wire.options['traceback']).toMatch(new RegExp(`^Error: failure ${i}\\n\\s+at `))
      expect(Number.isInteger(wire.options['requeue_timestamp'])).toBe(true)
      // eta - requeue_timestamp is the backoff: within [minBackoff, maxBackoff] (+ slack for a busy machine).
      const backoff = (wire.options['eta'] as number) - (wire.options['requeue_timestamp'] as number)
      expect(backoff).toBeGreaterThanOrEqual(10)
      expect(backoff).toBeLessThanOrEqual(120)
      expect(retry.delay).toBeGreaterThanOrEqual(10)
      expect(retry.delay).toBeLessThanOrEqual(20)
      expect(wire.args).toEqual([7])
    }
    // Promotion from the delay queue drops eta and keeps the rest in order.
    const promoted = enqueued.filter((e) => e.wire.queue_name === 'default' && e.wire.options['retries'] !== undefined)
    expect(promoted.map((p) => Object.keys(p.wire.options))).toEqual([
      ['broker_priority', 'retries', 'traceback', 'requeue_timestamp'],
      ['broker_priority', 'retries', 'traceback', 'requeue_timestamp'],
    ])
  })

  it('a Retry with delay re-runs the message after at least that delay, without logging an error', async () => {
    const { broker, worker, enqueued, logs } = await setup()
    const runs: number[] = []
    const again = actor(
      'again',
      () => {
        runs.push(Date.now())
        if (runs.length === 1) throw new Retry('not yet', { delay: 100 })
      },
      { broker },
    )
    await again.send()
    await drain(broker, worker)
    expect(runs).toHaveLength(2)
    expect(runs[1]! - runs[0]!).toBeGreaterThanOrEqual(100)
    expect(enqueued.find((e) => e.wire.queue_name === 'default.DQ')?.delay).toBe(100)
    expect(logs.filter((e) => e.level === 'error')).toEqual([])
  })

  it('a Retry without delay uses the computed backoff', async () => {
    const { broker, worker, enqueued } = await setup()
    let runs = 0
    const again = actor(
      'again',
      () => {
        if (++runs === 1) throw new Retry()
      },
      { broker, minBackoff: 5, maxBackoff: 8 },
    )
    await again.send()
    await drain(broker, worker)
    expect(runs).toBe(2)
    const delay = enqueued.find((e) => e.wire.queue_name === 'default.DQ')?.delay
    expect(delay).toBeGreaterThanOrEqual(5)
    expect(delay).toBeLessThanOrEqual(8)
  })

  it('honours zero minBackoff and maxBackoff at actor level', async () => {
    // The default stack: 15 s minimum backoff unless the actor says otherwise.
    const { broker, worker, enqueued } = await setup()
    let runs = 0
    const zeroMin = actor(
      'zeroMin',
      () => {
        if (++runs < 3) throw new Error('again')
      },
      { broker, minBackoff: 0 },
    )
    await zeroMin.send()
    await drain(broker, worker)
    expect(runs).toBe(3)

    runs = 0
    const zeroMax = actor(
      'zeroMax',
      () => {
        if (++runs < 3) throw new Error('again')
      },
      { broker, maxBackoff: 0 },
    )
    await zeroMax.send()
    await drain(broker, worker)
    expect(runs).toBe(3)
    expect(enqueued.filter((e) => e.wire.queue_name === 'default.DQ').map((e) => e.delay)).toEqual([0, 0, 0, 0])
  })

  it('honours zero minBackoff and maxBackoff at message level', async () => {
    const { broker, worker, enqueued } = await setup()
    let runs = 0
    const slow = actor(
      'slow',
      () => {
        if (++runs < 3) throw new Error('again')
      },
      { broker, minBackoff: 60_000 },
    )
    await slow.sendWithOptions({ minBackoff: 0 })
    await drain(broker, worker)
    expect(runs).toBe(3)

    runs = 0
    await slow.sendWithOptions({ maxBackoff: 0 })
    await drain(broker, worker)
    expect(runs).toBe(3)
    expect(enqueued.filter((e) => e.wire.queue_name === 'default.DQ').map((e) => e.delay)).toEqual([0, 0, 0, 0])
  })

  it('reads maxRetries from the message first (an explicit 0 included)', async () => {
    const { broker, worker } = await setup(fastStack())
    let runs = 0
    const fails = actor(
      'fails',
      () => {
        runs++
        throw new Error('boom')
      },
      { broker, maxRetries: 10 },
    )
    await fails.sendWithOptions({ maxRetries: 1 })
    await drain(broker, worker)
    expect(runs).toBe(2)

    runs = 0
    await fails.sendWithOptions({ maxRetries: 0 })
    await drain(broker, worker)
    expect(runs).toBe(1)
    expect(broker.deadLetters).toHaveLength(2)
  })

  it('treats maxRetries null as unlimited', async () => {
    const { broker, worker } = await setup(fastStack(new Retries({ maxRetries: 1, minBackoff: 1, maxBackoff: 2 })))
    let runs = 0
    const persistent = actor(
      'persistent',
      () => {
        if (++runs < 6) throw new Error('again')
      },
      { broker, maxRetries: null },
    )
    await persistent.send()
    await drain(broker, worker)
    expect(runs).toBe(6)
    expect(broker.deadLetters).toHaveLength(0)
  })

  it('uses the actor retryWhen predicate instead of maxRetries', async () => {
    const { broker, worker } = await setup(fastStack())
    const calls: Array<[number, string]> = []
    let runs = 0
    const picky = actor(
      'picky',
      () => {
        runs++
        throw new RangeError(`run ${runs}`)
      },
      {
        broker,
        maxRetries: 0,
        retryWhen: (retries, error) => {
          calls.push([retries, (error as Error).message])
          return retries < 2 && error instanceof RangeError
        },
      },
    )
    await picky.send()
    await drain(broker, worker)
    expect(runs).toBe(3)
    expect(calls).toEqual([
      [0, 'run 1'],
      [1, 'run 2'],
      [2, 'run 3'],
    ])
    expect(broker.deadLetters[0]?.options.retries).toBe(3)
  })

  it('uses the middleware retryWhen when the actor has none', async () => {
    const { broker, worker } = await setup(
      fastStack(
        new Retries({ minBackoff: 1, maxBackoff: 2, retryWhen: (_retries, error) => !(error instanceof TypeError) }),
      ),
    )
    let runs = 0
    const typed = actor(
      'typed',
      () => {
        runs++
        throw runs < 3 ? new Error('transient') : new TypeError('permanent')
      },
      { broker },
    )
    await typed.send()
    await drain(broker, worker)
    expect(runs).toBe(3)
    expect(broker.deadLetters).toHaveLength(1)
  })

  it('does not retry errors listed in throws: dead-letters at once and logs at info', async () => {
    const { broker, worker, logs } = await setup(fastStack())
    let runs = 0
    const strict = actor(
      'strict',
      () => {
        runs++
        throw new TypeError('bad input')
      },
      { broker, throws: [RangeError, TypeError] },
    )
    await strict.send()
    await drain(broker, worker)
    expect(runs).toBe(1)
    expect(broker.deadLetters).toHaveLength(1)
    expect(broker.deadLetters[0]?.options.retries).toBeUndefined()
    expect(logs.some((e) => e.level === 'info' && e.meta['component'] === 'retries' && e.msg.includes('throws'))).toBe(
      true,
    )
    expect(logs.filter((e) => e.level === 'error')).toEqual([])

    // Other errors are still retried.
    runs = 0
    const single = actor(
      'single',
      () => {
        if (++runs < 2) throw new Error('other')
      },
      { broker, throws: TypeError },
    )
    await single.send()
    await drain(broker, worker)
    expect(runs).toBe(2)
  })

  it('bounds retrying with maxAge: the message is dead-lettered once too old', async () => {
    const { broker, worker } = await setup(fastStack(new Retries({ minBackoff: 10, maxBackoff: 20 })))
    let runs = 0
    const forever = actor(
      'forever',
      () => {
        runs++
        throw new Error('always')
      },
      { broker, maxRetries: null, maxAge: 100 },
    )
    await forever.send()
    await drain(broker, worker)
    expect(runs).toBeGreaterThan(1)
    expect(broker.deadLetters).toHaveLength(1)
    expect(broker.deadLetters[0]?.exception).toBeInstanceOf(SkipMessage)
  })

  it('dead-letters instead of acking when the retry cannot be enqueued', async () => {
    const { broker, worker, logs } = await setup(fastStack())
    const enqueue = broker.enqueue.bind(broker)
    broker.enqueue = async (message, options) => {
      if (options?.delay !== undefined) throw new Error('broker down')
      return enqueue(message, options)
    }
    const fails = actor(
      'fails',
      () => {
        throw new Error('boom')
      },
      { broker },
    )
    await fails.send()
    await drain(broker, worker)
    expect(broker.deadLetters).toHaveLength(1)
    expect(logs.some((e) => e.level === 'error' && e.msg.startsWith('Could not enqueue the retry'))).toBe(true)
  })
})

describe('onRetryExhausted', () => {
  it('is sent (message, { retries, max_retries }) after exhaustion, before the final onFailure', async () => {
    const { broker, worker, enqueued } = await setup(fastStack())
    const exhausted: unknown[][] = []
    const failures: unknown[][] = []
    const onExhausted = actor('onExhausted', (...args: unknown[]) => void exhausted.push(args), { broker })
    const onErr = actor('onErr', (...args: unknown[]) => void failures.push(args), { broker })
    const failsRetry = actor(
      'failsRetry',
      (_x: number) => {
        throw new Error('missing')
      },
      { broker, maxRetries: 1, onFailure: onErr, onRetryExhausted: onExhausted },
    )
    const sent = await failsRetry.send(7)
    await drain(broker, worker)

    expect(enqueued.filter((e) => e.wire.actor_name !== 'failsRetry').map((e) => e.wire.actor_name)).toEqual([
      'onErr',
      'onExhausted',
      'onErr',
    ])
    expect(exhausted).toHaveLength(1)
    const [dict, info] = exhausted[0] as [WireMessage, unknown]
    expect(info).toEqual({ retries: 1, max_retries: 1 })
    expect(dict.message_id).toBe(sent.messageId)
    expect(dict.options['retries']).toBe(2)
    expect(dict.options['on_retry_exhausted']).toBeUndefined()
    expect(failures.map(([d]) => (d as WireMessage).options['retries'])).toEqual([1, 2])
  })

  it('is not sent on success or on eventual success', async () => {
    const { broker, worker } = await setup(fastStack())
    const exhausted: unknown[] = []
    const onExhausted = actor('onExhausted', (...args: unknown[]) => void exhausted.push(args), { broker })
    const ok = actor('ok', () => 1, { broker, onRetryExhausted: onExhausted })
    let runs = 0
    const eventually = actor(
      'eventually',
      () => {
        if (++runs < 3) throw new Error('not yet')
      },
      { broker, maxRetries: 3, onRetryExhausted: 'onExhausted' },
    )
    await ok.send()
    await eventually.send()
    await drain(broker, worker)
    expect(runs).toBe(3)
    expect(exhausted).toEqual([])
  })
})
