// A small deployment for the dashboard tests: actors on four queues, a worker with Tracking, and
// helpers that produce succeeded, dead, running and waiting messages. The same scenario runs on
// the StubBroker (HTTP contract suites) and on Redis and RabbitMQ (browser tests).
import {
  Admin,
  type Broker,
  type MessageState,
  type Tracking,
  type TrackingUpdate,
  Worker,
  actor,
  currentMessage,
  setProgress,
} from '@tq/core'

/** Markup that must only ever appear escaped; each would set `window.__xss` if it ran. */
export const XSS = {
  script: '<script>window.__xss=1</script>',
  img: '<img src=x onerror="window.__xss=1">',
  attr: '" onfocus="window.__xss=1" autofocus x="',
  single: "' onmouseover='window.__xss=1' x='",
  svg: '<svg onload="window.__xss=1"></svg>',
} as const

export const XSS_VALUES: readonly string[] = Object.values(XSS)

export interface Scenario {
  broker: Broker
  admin: Admin
  tracking: Tracking
  worker: Worker
  /** Queue names (unique per scenario on a shared server). */
  queues: { work: string; billing: string; slow: string; reports: string }
  /** While true, `charge` throws (and its messages die: no retries). */
  failing: { value: boolean }
  /** Actor names, the hostile one included. */
  actors: { greet: string; charge: string; hold: string; report: string; hostile: string }
  greet(name: string, kwargs?: Record<string, unknown>): Promise<string>
  charge(order: string): Promise<string>
  hold(): Promise<string>
  report(count: number): Promise<string[]>
  hostile(): Promise<string>
  /** A greeting due in 10 minutes. */
  later(): Promise<string>
  big(bytes: number): Promise<string>
  /** Resolves once tracking records `state` for the message (or throws after `timeout` ms). */
  waitState(messageId: string, states: MessageState | readonly MessageState[], timeout?: number): Promise<void>
  /** Resolves once `check` returns true (polled every 20 ms). */
  until(check: () => boolean | Promise<boolean>, what: string, timeout?: number): Promise<void>
  /** Write a record straight into the tracking backend (fields a real producer cannot send). */
  writeRecord(updates: TrackingUpdate[]): Promise<void>
  stop(): Promise<void>
}

export interface ScenarioOptions {
  broker: Broker
  tracking: Tracking
  /** Prefix of the queue names (default `dash_`). */
  prefix?: string
  /**
   * A second broker (with a Tracking of its own on the same backend) for the worker, as in a
   * deployment where producers and workers are separate processes. Default: `broker`.
   */
  workerBroker?: Broker
}

/** Declare the actors, start a worker (not on the reports queue: its messages stay ready). */
export async function startScenario(options: ScenarioOptions): Promise<Scenario> {
  const { broker, tracking } = options
  const prefix = options.prefix ?? 'dash_'
  const queues = {
    work: `${prefix}work`,
    billing: `${prefix}billing`,
    slow: `${prefix}slow`,
    reports: `${prefix}reports`,
  }
  const failing = { value: true }

  const hostileName = `hostile${XSS.img}${XSS.attr}`
  const declare = (on: Broker) => ({
    greet: actor(
      'greet',
      (name: string) => {
        setProgress(1)
        return `hello ${name}`
      },
      { broker: on, queueName: queues.work },
    ),
    charge: actor(
      'charge',
      (order: string) => {
        if (failing.value) throw new Error(`card declined for ${order} ${XSS.img} ${XSS.script}`)
        return order
      },
      { broker: on, queueName: queues.billing, maxRetries: 0 },
    ),
    hold: actor(
      'hold',
      async () => {
        const signal = currentMessage()?.signal
        setProgress({ step: 'waiting', note: XSS.script })
        await new Promise<void>((resolve, reject) => {
          if (!signal) return resolve()
          if (signal.aborted) return reject(signal.reason as Error)
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true })
        })
      },
      { broker: on, queueName: queues.slow, timeLimit: 120_000 },
    ),
    report: actor('report', (_n: number) => undefined, { broker: on, queueName: queues.reports }),
    hostile: actor(
      hostileName,
      (_a: string) => {
        throw new TypeError(`${XSS.script}${XSS.attr}${XSS.single}`)
      },
      { broker: on, queueName: queues.work, maxRetries: 0 },
    ),
    big: actor('big', (_blob: string) => undefined, { broker: on, queueName: queues.work }),
  })
  const { greet, charge, hold, report, hostile, big } = declare(broker)
  const workerBroker = options.workerBroker ?? broker
  if (workerBroker !== broker) declare(workerBroker)

  const admin = new Admin({ broker })
  const worker = new Worker(workerBroker, {
    workerTimeout: 20,
    concurrency: 4,
    queues: [queues.work, queues.billing, queues.slow],
  })
  await worker.start()

  const until = async (check: () => boolean | Promise<boolean>, what: string, timeout = 10_000): Promise<void> => {
    const deadline = Date.now() + timeout
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  return {
    broker,
    admin,
    tracking,
    worker,
    queues,
    failing,
    actors: { greet: 'greet', charge: 'charge', hold: 'hold', report: 'report', hostile: hostileName },
    greet: async (name, kwargs) =>
      (await greet.sendWithOptions({ args: [name], ...(kwargs ? { kwargs } : {}) })).messageId,
    charge: async (order) => (await charge.send(order)).messageId,
    hold: async () => (await hold.send()).messageId,
    report: async (count) => {
      const ids: string[] = []
      for (let i = 0; i < count; i++) ids.push((await report.send(i)).messageId)
      return ids
    },
    hostile: async () =>
      (await hostile.sendWithOptions({ args: [XSS.script], kwargs: { [XSS.img]: XSS.attr, note: XSS.svg } })).messageId,
    later: async () => (await greet.sendWithOptions({ args: ['later'], delay: 600_000 })).messageId,
    big: async (bytes) => (await big.send('x'.repeat(bytes))).messageId,
    waitState: (messageId, states, timeout) => {
      const wanted = typeof states === 'string' ? [states] : states
      return until(
        async () => wanted.includes((await admin.message(messageId))?.state as MessageState),
        `message ${messageId} to be ${wanted.join(' or ')}`,
        timeout,
      )
    },
    until,
    writeRecord: (updates) => tracking.backend.write(updates, 3_600_000),
    stop: async () => {
      await worker.stop({ timeout: 2000 })
      await tracking.flush()
      if (workerBroker !== broker) await workerBroker.close()
    },
  }
}

/** A record no real producer could make: every field a string that must be escaped. */
export function hostileRecord(messageId: string): TrackingUpdate[] {
  const now = Date.now()
  return [
    {
      kind: 'enqueued',
      at: now,
      messageId,
      actorName: `actor${XSS.script}`,
      queueName: `queue${XSS.img}`,
      state: 'queued',
      args: [XSS.attr],
      kwargs: { k: XSS.single },
      argsTruncated: false,
      options: { note: XSS.svg, [XSS.script]: 1 },
      eta: undefined,
      body: new Uint8Array(),
    },
    {
      kind: 'attempt',
      at: now + 1,
      messageId,
      attempt: {
        number: 1,
        workerId: `worker${XSS.attr}`,
        startedAt: now + 1,
        finishedAt: now + 2,
        error: {
          type: `Type${XSS.img}`,
          message: `message${XSS.script}`,
          stack: `stack${XSS.svg}\n  at ${XSS.single}`,
        },
      },
      state: 'failed',
    },
    { kind: 'progress', at: now + 3, messageId, progress: { note: XSS.script } },
  ]
}
