import type { Broker } from '../broker.ts'
import { StubBroker } from '../brokers/stub-broker.ts'
import { BrokerConnectionError, ConfigurationError, errorMessage } from '../errors.ts'
import { getBroker } from '../global.ts'
import { errorMeta } from '../logger.ts'
import { isDelayQueue } from '../queue-names.ts'
import { Worker } from '../worker.ts'
import { isMessage, type ChildMessage, type SupervisorMessage, type WorkerProcessConfig } from './config.ts'
import { ExitCode } from './exit-codes.ts'
import { createCliLogger } from './log.ts'
import { RetryCounter, findMetricsSource } from './metrics.ts'
import { resolveModule } from './modules.ts'

/** How long to wait for the supervisor to take a message before exiting anyway. */
const SEND_TIMEOUT = 1000

class BootFailure extends Error {
  readonly exitCode: number
  readonly error: unknown
  constructor(exitCode: number, message: string, error: unknown) {
    super(message)
    this.exitCode = exitCode
    this.error = error
  }
}

/** Exit code for an error thrown while booting: a broker that cannot connect is 3, the rest 2. */
function bootExitCode(error: unknown): number {
  return error instanceof BrokerConnectionError ? ExitCode.BROKER_CONNECTION : ExitCode.USAGE
}

/** What to do when Node cannot load a TypeScript module: it needs a loader or a build. */
function loaderHint(error: unknown): string {
  if ((error as { code?: unknown } | null)?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') return ''
  return (
    " (Node runs TypeScript only through a loader: NODE_OPTIONS='--import tsx' npx tq worker …, " +
    'or compile first and give tq worker the .js files)'
  )
}

export interface WorkerProcessIo {
  /** Where log lines go (default stderr). */
  write?: (line: string) => void
  /** Replaces `process.exit` (tests). */
  exit?: (code: number) => void
}

/**
 * The body of one worker process: import the user's modules, find the broker, emit
 * `afterProcessBoot`, run a `Worker` until told to stop, then stop it gracefully, emit
 * `beforeProcessShutdown`, close the broker and exit.
 *
 * Stop requests: SIGTERM or a `stop` message from the supervisor start a graceful stop; a
 * second SIGTERM or a `kill` message exits at once with code 1. SIGINT and SIGHUP are ignored
 * (the supervisor handles them for the whole group). If the supervisor goes away, the process
 * stops gracefully.
 */
export async function runWorkerProcess(config: WorkerProcessConfig, io: WorkerProcessIo = {}): Promise<void> {
  const write = io.write ?? ((line: string) => void process.stderr.write(line))
  const exit = io.exit ?? ((code: number) => process.exit(code))
  const logger = createCliLogger({
    format: config.logFormat,
    verbose: config.verbose,
    write,
    bindings: { process: `worker-${config.index}`, pid: process.pid },
  })

  let broker: Broker | undefined
  let worker: Worker | undefined
  let booted = false
  let stopReason: string | undefined
  let stopping = false
  let sigterms = 0
  let statsTimer: NodeJS.Timeout | undefined
  const retries = new RetryCounter()

  /** The counters of the stats lines (and of the stop line). */
  const stats = (): Record<string, number> => {
    const s = worker?.stats
    return {
      processed: s?.processed ?? 0,
      failed: s?.failed ?? 0,
      retried: retries.count,
      skipped: s?.skipped ?? 0,
      inFlight: s?.inFlight ?? 0,
    }
  }
  const logStats = (): void => logger.info('Worker process stats', stats())

  const send = (message: ChildMessage): Promise<void> =>
    new Promise((resolve) => {
      if (!process.send || !process.connected) return resolve()
      const timer = setTimeout(resolve, SEND_TIMEOUT)
      process.send(message, undefined, {}, () => {
        clearTimeout(timer)
        resolve()
      })
    })

  const shutdown = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    if (statsTimer) clearInterval(statsTimer)
    logger.debug('Stopping', { reason: stopReason })
    let code: number = ExitCode.OK
    // Schedulers first: they give their lease up, so another process leads at once.
    for (const scheduler of broker?.schedulers ?? []) {
      try {
        await scheduler.stop()
      } catch (error) {
        logger.error('Failed to stop a scheduler', errorMeta(error))
      }
    }
    try {
      if (worker) await worker.stop({ timeout: config.workerShutdownTimeout })
    } catch (error) {
      logger.error('Failed to stop the worker', errorMeta(error))
      code = ExitCode.UNCLEAN
    }
    if (broker) {
      await broker.emitBefore('beforeProcessShutdown')
      try {
        await broker.close()
      } catch (error) {
        logger.error('Failed to close the broker', errorMeta(error))
        code = ExitCode.UNCLEAN
      }
    }
    const { inFlight: _inFlight, ...counters } = stats()
    logger.info('Worker process stopped', { reason: stopReason, ...counters })
    exit(code)
  }

  const requestStop = (reason: string): void => {
    if (stopReason !== undefined) return
    stopReason = reason
    // During boot the stop waits for the current step; boot checks `stopReason` between steps.
    if (booted) void shutdown()
  }

  process.on('SIGINT', () => {})
  process.on('SIGHUP', () => {})
  process.on('SIGTERM', () => {
    sigterms++
    if (sigterms >= 2) {
      logger.warn('Second SIGTERM: exiting without waiting for running messages')
      exit(ExitCode.UNCLEAN)
      return
    }
    requestStop('SIGTERM')
  })
  process.on('message', (message: unknown) => {
    if (!isMessage<SupervisorMessage>(message)) return
    if (message.type === 'stop') requestStop('supervisor')
    else if (message.type === 'kill') {
      logger.warn('Told to exit now: not waiting for running messages')
      exit(ExitCode.UNCLEAN)
    } else if (message.type === 'stats') {
      logStats()
    } else if (message.type === 'metrics') {
      void reportMetrics(message.id)
    }
  })

  /** Answer the supervisor's metrics request with the Prometheus middleware's JSON (empty without one). */
  const reportMetrics = async (id: number): Promise<void> => {
    let metrics: object[] = []
    const source = broker ? findMetricsSource(broker) : undefined
    if (source) {
      try {
        const json: unknown = await source.getMetricsAsJSON()
        if (Array.isArray(json)) metrics = json as object[]
      } catch (error) {
        logger.warn('Could not collect the metrics', errorMeta(error))
      }
    }
    await send({ type: 'metrics', id, metrics })
  }
  process.on('disconnect', () => requestStop('supervisor exited'))
  process.on('uncaughtException', (error) => {
    logger.error('Uncaught exception; exiting', errorMeta(error))
    exit(ExitCode.UNCLEAN)
  })
  process.on('unhandledRejection', (reason) => {
    logger.error('Unhandled promise rejection; exiting', errorMeta(reason))
    exit(ExitCode.UNCLEAN)
  })
  await send({ type: 'hello' })

  try {
    for (const spec of config.modules) {
      let url: string
      try {
        const resolved = resolveModule(spec, config.paths)
        url = resolved.url
        logger.debug('Importing module', { module: resolved.display })
      } catch (error) {
        throw new BootFailure(ExitCode.USAGE, errorMessage(error), undefined)
      }
      try {
        await import(url)
      } catch (error) {
        throw new BootFailure(bootExitCode(error), `Failed to import ${spec}${loaderHint(error)}`, error)
      }
    }

    try {
      broker = getBroker()
    } catch (error) {
      if (error instanceof ConfigurationError) {
        const hint =
          'If a module does call setBroker(), it imports another copy of @tq/core than this tq binary: run the tq of your project (npx tq).'
        throw new BootFailure(ExitCode.USAGE, `${errorMessage(error)} ${hint}`, undefined)
      }
      throw new BootFailure(bootExitCode(error), 'Could not create the broker', error)
    }
    if (config.scheduler && broker.schedulers.size === 0) {
      throw new BootFailure(
        ExitCode.USAGE,
        `--scheduler: the modules (${config.modules.join(', ')}) made no Scheduler for the broker (new Scheduler({ broker, backend }), then scheduler.add(…))`,
        undefined,
      )
    }
    if (broker.actors.size === 0) {
      // Nothing to run: a worker that boots anyway would sit idle on a broker nobody sends to.
      throw new BootFailure(
        ExitCode.USAGE,
        `The modules (${config.modules.join(', ')}) declared no actors on the broker (${broker.constructor.name}). ` +
          'Declare them with actor() in the modules given to tq worker, or in modules those import.',
        undefined,
      )
    }
    // A broker without a logger of its own logs through the CLI's.
    const ownLogger = !broker.hasLogger
    if (ownLogger) broker.logger = logger.child({ component: 'broker' })
    broker.addMiddleware(retries)

    await broker.emitAfter('afterProcessBoot')
    if (stopReason !== undefined) return await shutdown()

    worker = new Worker(broker, {
      concurrency: config.concurrency,
      workerTimeout: config.workerTimeout,
      ...(ownLogger ? { logger } : {}),
      ...(config.queues ? { queues: config.queues } : {}),
    })
    try {
      await broker.connect()
      await worker.start()
      if (config.scheduler) for (const scheduler of broker.schedulers) await scheduler.start()
    } catch (error) {
      if (error instanceof BrokerConnectionError)
        throw new BootFailure(ExitCode.BROKER_CONNECTION, 'Could not connect to the broker', error)
      // A setting no retry can fix (a Redis database index the server does not have): no restarts.
      if (error instanceof ConfigurationError)
        throw new BootFailure(ExitCode.USAGE, 'The broker is misconfigured', error)
      throw error
    }
  } catch (error) {
    if (!(error instanceof BootFailure)) {
      // Not a configuration problem: a crash, which the supervisor retries with backoff.
      logger.error('Worker process failed to start', errorMeta(error))
      exit(ExitCode.UNCLEAN)
      return
    }
    const cause = error.error
    logger.error(error.message, cause === undefined ? {} : errorMeta(cause))
    const message = cause === undefined ? error.message : `${error.message}: ${errorMessage(cause)}`
    await send({ type: 'bootError', code: error.exitCode, message })
    exit(error.exitCode)
    return
  }

  if (broker instanceof StubBroker && config.processes > 1 && config.index === 1) {
    logger.warn('StubBroker keeps messages in memory: each worker process has its own queues')
  }
  if (config.metricsPort !== undefined && config.index === 1 && !findMetricsSource(broker)) {
    logger.warn(
      'The broker has no Prometheus middleware: /metrics has nothing from the worker processes; add new Prometheus() from @tq/prometheus to its middleware',
    )
  }
  const declared = broker.getDeclaredQueues()
  for (const queue of config.queues ?? []) {
    if (!declared.has(queue))
      logger.warn(`Queue ${queue} is not declared by any actor yet; it is consumed once it is`, { queue })
  }
  const queues = worker.consumedQueues.filter((q) => !isDelayQueue(q))
  if (queues.length === 0)
    logger.warn('No queues to consume: --queues names none of the declared queues', { declared: [...declared] })
  logger.info('Worker process booted', {
    broker: broker.constructor.name,
    ...broker.describe(),
    queues,
    concurrency: worker.concurrency,
  })
  booted = true
  if (config.statsInterval > 0) {
    statsTimer = setInterval(logStats, config.statsInterval)
    statsTimer.unref()
  }
  await send({ type: 'ready', queues })
  if (stopReason !== undefined) await shutdown()
}
