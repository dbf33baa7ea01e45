import { fork, type ChildProcess } from 'node:child_process'
import { relative } from 'node:path'
import { Backoff } from '../adapter/backoff.ts'
import { errorMeta, type Logger } from '../logger.ts'
import {
  CHILD_ENV,
  isMessage,
  type ChildMessage,
  type SupervisorMessage,
  type WorkerCommandConfig,
  type WorkerProcessConfig,
} from './config.ts'
import { childExecArgv } from './exec-argv.ts'
import { ExitCode, describeExitCode } from './exit-codes.ts'
import { loadMetricsModule, type AggregatedMetricsServer, type MetricsModule } from './metrics.ts'
import { watchTree, type TreeWatcher } from './watch.ts'

export interface RestartPolicy {
  /** Milliseconds before the first restart of a crashed process (default 1000). */
  minDelay?: number
  /** The delay doubles on each crash up to this (default 30 000). */
  maxDelay?: number
  /** A process that ran this long (ms) before crashing restarts after `minDelay` again (default 60 000). */
  stableAfter?: number
}

export interface SupervisorOptions {
  config: WorkerCommandConfig
  logger: Logger
  /** The script each worker process runs (the `tq` bin). */
  binPath: string
  /** Node flags for the worker processes (default: this process's, minus inspector flags). */
  execArgv?: readonly string[]
  env?: NodeJS.ProcessEnv
  restart?: RestartPolicy
  /** Milliseconds past `workerShutdownTimeout` before a process that has not exited is killed (default 5000). */
  shutdownGrace?: number
  /** Shown in the start line. */
  version?: string
  /** Milliseconds of quiet before a file change reloads (default 200). */
  watchDebounce?: number
  /** How long a worker process may take to answer a metrics request (ms, default 3000). */
  metricsTimeout?: number
  /** Replaces loading `@tq/prometheus` for `--metrics-port` (tests). */
  loadMetrics?: () => Promise<MetricsModule>
}

type SlotKind = 'boot' | 'restart'

interface Slot {
  readonly index: number
  child: ChildProcess | undefined
  /** The process installed its handlers and listens for supervisor messages. */
  hello: boolean
  ready: boolean
  kind: SlotKind
  startedAt: number
  /** The restart delay: `minDelay`, doubling on each crash up to `maxDelay`. */
  readonly backoff: Backoff
  timer: NodeJS.Timeout | undefined
  bootError: string | undefined
  /** The last metrics this process reported: used again when it is too busy to answer a scrape in time. */
  lastMetrics: object[] | undefined
}

interface PendingMetrics {
  child: ChildProcess
  done: (metrics: object[] | undefined) => void
}

type State = 'created' | 'running' | 'reloading' | 'stopping' | 'done'

/**
 * Runs `processes` worker processes and keeps them running: a process that exits unexpectedly
 * is restarted after a backoff (1 s doubling to 30 s, reset once a process has run for a
 * minute); `stop()` stops them all gracefully; `reload()` (SIGHUP, `--watch`) stops them all
 * gracefully and starts fresh ones. A process that fails to boot with exit code 2 (a module
 * failed to import) or 3 (no broker connection) stops everything with that code — except
 * under `--watch`, where the supervisor waits for the next file change instead.
 */
export class Supervisor {
  readonly config: WorkerCommandConfig
  readonly logger: Logger
  readonly #options: SupervisorOptions
  readonly #slots: Slot[]
  readonly #minDelay: number
  readonly #maxDelay: number
  readonly #stableAfter: number
  #state: State = 'created'
  #exitCode: number = ExitCode.OK
  #forced = false
  #watcher: TreeWatcher | undefined
  #killTimer: NodeJS.Timeout | undefined
  #resolve: ((code: number) => void) | undefined
  readonly #done: Promise<number>
  #metricsServer: AggregatedMetricsServer | undefined
  #requestId = 0
  readonly #pendingMetrics = new Map<number, PendingMetrics>()

  constructor(options: SupervisorOptions) {
    this.#options = options
    this.config = options.config
    this.logger = options.logger
    this.#minDelay = options.restart?.minDelay ?? 1000
    this.#maxDelay = options.restart?.maxDelay ?? 30_000
    this.#stableAfter = options.restart?.stableAfter ?? 60_000
    this.#slots = Array.from({ length: this.config.processes }, (_, i) => ({
      index: i + 1,
      child: undefined,
      hello: false,
      ready: false,
      kind: 'boot',
      startedAt: 0,
      backoff: new Backoff({ initial: this.#minDelay, max: this.#maxDelay }),
      timer: undefined,
      bootError: undefined,
      lastMetrics: undefined,
    }))
    this.#done = new Promise((resolve) => (this.#resolve = resolve))
  }

  /** Pids of the worker processes alive now. */
  get pids(): number[] {
    return this.#slots.flatMap((s) => (s.child?.pid === undefined ? [] : [s.child.pid]))
  }

  /** Start the worker processes; resolves with the exit code once everything has stopped. */
  run(): Promise<number> {
    if (this.#state !== 'created') return this.#done
    this.#state = 'running'
    const { config } = this
    this.logger.info(`Supervisor started${this.#options.version ? ` (tq ${this.#options.version})` : ''}`, {
      processes: config.processes,
      concurrency: config.concurrency,
      modules: config.modules,
      ...(config.queues ? { queues: config.queues } : {}),
      ...(config.watch ? { watch: config.watch } : {}),
      ...(config.metricsPort !== undefined ? { metricsPort: config.metricsPort } : {}),
    })
    if (config.metricsPort === undefined) this.#startWorkers()
    else void this.#startMetrics(config.metricsPort).then((ok) => ok && this.#startWorkers())
    return this.#done
  }

  #startWorkers(): void {
    if (this.#state !== 'running') return
    for (const slot of this.#slots) this.#spawn(slot, 'boot')
    if (this.config.watch) this.#startWatching(this.config.watch)
  }

  /** Serve the merged metrics (`--metrics-port`) before any process starts; a failure stops with code 2. */
  async #startMetrics(port: number): Promise<boolean> {
    const host = this.config.metricsHost
    let server: AggregatedMetricsServer
    try {
      const load = this.#options.loadMetrics ?? (() => loadMetricsModule([...this.config.paths, process.cwd()]))
      const metrics = await load()
      server = await metrics.serveAggregatedMetrics({ port, host, collect: () => this.collectMetrics() })
    } catch (error) {
      this.logger.error(`Cannot serve metrics on ${host}:${port}`, errorMeta(error))
      if (this.#state !== 'running') return false
      this.#exitCode = ExitCode.USAGE
      this.#beginStop()
      return false
    }
    if (this.#state !== 'running') {
      await server.close()
      return false
    }
    this.#metricsServer = server
    this.logger.info('Serving metrics', { url: server.url })
    return true
  }

  /**
   * Every running worker process's metrics (prom-client JSON, one list per process), asked for
   * over the IPC channel. A process that does not answer within `metricsTimeout` counts with the
   * last metrics it reported (so counters do not seem to go back), or not at all.
   */
  async collectMetrics(): Promise<object[][]> {
    const timeout = this.#options.metricsTimeout ?? 3000
    const answers = await Promise.all(
      this.#slots.map(async (slot) => {
        const child = slot.child
        if (!child || !slot.hello || !child.connected) return slot.lastMetrics
        const metrics = await this.#askMetrics(child, timeout)
        if (metrics === undefined) {
          this.logger.warn(`worker-${slot.index} did not report its metrics within ${timeout} ms`, {
            worker: slot.index,
            workerPid: child.pid,
          })
          return slot.lastMetrics
        }
        if (slot.child === child) slot.lastMetrics = metrics
        return metrics
      }),
    )
    return answers.filter((a): a is object[] => a !== undefined)
  }

  #askMetrics(child: ChildProcess, timeout: number): Promise<object[] | undefined> {
    const id = ++this.#requestId
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), timeout)
      const finish = (metrics: object[] | undefined): void => {
        clearTimeout(timer)
        this.#pendingMetrics.delete(id)
        resolve(metrics)
      }
      this.#pendingMetrics.set(id, { child, done: finish })
      this.#send(child, { type: 'metrics', id }, () => finish(undefined))
    })
  }

  /** SIGUSR1: every worker process logs its stats line. */
  requestStats(reason = 'stats requested'): void {
    if (this.#state !== 'running') return
    this.logger.debug(`${reason}: asking worker processes for their stats`)
    for (const slot of this.#slots) {
      const child = slot.child
      if (child && slot.hello && child.connected) this.#send(child, { type: 'stats' }, () => {})
    }
  }

  /** Stop gracefully (SIGTERM/SIGINT). Called a second time, tell every process to exit now (code 1). */
  stop(reason = 'stop requested'): void {
    if (this.#state === 'done') return
    if (this.#state === 'stopping') {
      if (this.#forced) return
      this.#forced = true
      this.#exitCode = ExitCode.UNCLEAN
      this.logger.warn(`${reason} again: telling worker processes to exit now`)
      for (const slot of this.#slots) this.#kill(slot)
      return
    }
    this.logger.info(`${reason}: stopping worker processes`, { timeout: this.config.workerShutdownTimeout })
    this.#beginStop()
  }

  /** Stop every process gracefully and start fresh ones (SIGHUP, `--watch`). */
  reload(reason = 'reload requested'): void {
    // While reloading, the processes about to start load the latest code anyway.
    if (this.#state !== 'running') return
    this.logger.info(`${reason}: restarting worker processes`)
    this.#state = 'reloading'
    for (const slot of this.#slots) {
      this.#clearTimer(slot)
      this.#requestStop(slot)
    }
    this.#armKillTimer()
    this.#afterExit()
  }

  #spawn(slot: Slot, kind: SlotKind): void {
    const childConfig: WorkerProcessConfig = { ...this.config, index: slot.index }
    const child = fork(this.#options.binPath, [], {
      execArgv: childExecArgv(this.#options.execArgv ?? process.execArgv),
      env: { ...(this.#options.env ?? process.env), [CHILD_ENV]: JSON.stringify(childConfig) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    slot.child = child
    slot.kind = kind
    slot.hello = false
    slot.ready = false
    slot.bootError = undefined
    slot.lastMetrics = undefined
    slot.startedAt = Date.now()
    child.on('message', (message: unknown) => {
      if (slot.child !== child || !isMessage<ChildMessage>(message)) return
      if (message.type === 'hello') {
        slot.hello = true
        // A stop requested before the process could hear it.
        if (this.#state === 'stopping' || this.#state === 'reloading') this.#requestStop(slot)
      } else if (message.type === 'ready') {
        slot.ready = true
        this.logger.debug(`worker-${slot.index} is ready`, {
          worker: slot.index,
          workerPid: child.pid,
          queues: message.queues,
        })
      } else if (message.type === 'bootError') {
        slot.bootError = message.message
      } else if (message.type === 'metrics') {
        const pending = this.#pendingMetrics.get(message.id)
        if (pending?.child === child) pending.done(Array.isArray(message.metrics) ? message.metrics : [])
      }
    })
    child.on('error', (error) => {
      this.logger.error(`worker-${slot.index}: process error`, { worker: slot.index, ...errorMeta(error) })
      // A process that could not be spawned never emits 'exit'.
      if (child.pid === undefined) this.#onExit(slot, child, null, null)
    })
    child.on('exit', (code, signal) => this.#onExit(slot, child, code, signal))
    this.logger.debug(`Started worker-${slot.index}`, { worker: slot.index, workerPid: child.pid, kind })
  }

  #onExit(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return
    const { hello, ready } = slot
    slot.child = undefined
    slot.lastMetrics = undefined
    for (const pending of [...this.#pendingMetrics.values()]) if (pending.child === child) pending.done(undefined)
    slot.hello = false
    slot.ready = false
    const how = signal ? `killed by ${signal}` : `exit code ${code}`
    const meta = { worker: slot.index, workerPid: child.pid, code, signal }

    if (this.#state === 'stopping' || this.#state === 'reloading') {
      // A process killed by SIGTERM (or a terminal's SIGINT) before it installed its handlers stopped as asked.
      const clean = code === 0 || (!hello && (signal === 'SIGTERM' || signal === 'SIGINT'))
      if (!clean && this.#state === 'stopping' && this.#exitCode === ExitCode.OK) this.#exitCode = ExitCode.UNCLEAN
      const log = clean ? this.logger.debug.bind(this.logger) : this.logger.warn.bind(this.logger)
      log(`worker-${slot.index} exited (${how})`, meta)
      this.#afterExit()
      return
    }
    if (this.#state !== 'running') return

    if (!ready && (code === ExitCode.USAGE || (code === ExitCode.BROKER_CONNECTION && slot.kind === 'boot'))) {
      const why = slot.bootError ?? describeExitCode(code)
      if (this.config.watch) {
        this.logger.error(`worker-${slot.index} failed to boot (${why}); waiting for a file change`, meta)
        return
      }
      this.logger.error(`worker-${slot.index} failed to boot (${why}); stopping`, meta)
      this.#exitCode = code
      this.#beginStop()
      return
    }

    if (Date.now() - slot.startedAt >= this.#stableAfter) slot.backoff.reset()
    const delay = slot.backoff.next()
    this.logger.warn(`worker-${slot.index} exited unexpectedly (${how}); restarting in ${delay} ms`, { ...meta, delay })
    slot.timer = setTimeout(() => {
      slot.timer = undefined
      if (this.#state === 'running') this.#spawn(slot, 'restart')
    }, delay)
  }

  #beginStop(): void {
    this.#state = 'stopping'
    this.#watcher?.close()
    this.#watcher = undefined
    for (const slot of this.#slots) {
      this.#clearTimer(slot)
      this.#requestStop(slot)
    }
    this.#armKillTimer()
    this.#afterExit()
  }

  /** Processes still alive `workerShutdownTimeout` + grace after a stop request are killed. */
  #armKillTimer(): void {
    if (this.#killTimer) clearTimeout(this.#killTimer)
    const after = this.config.workerShutdownTimeout + (this.#options.shutdownGrace ?? 5000)
    this.#killTimer = setTimeout(() => {
      this.#killTimer = undefined
      for (const slot of this.#slots) {
        if (!slot.child) continue
        this.logger.error(`worker-${slot.index} did not stop within ${after} ms; killing it`, {
          worker: slot.index,
          workerPid: slot.child.pid,
        })
        if (this.#state === 'stopping') this.#exitCode = ExitCode.UNCLEAN
        slot.child.kill('SIGKILL')
      }
    }, after)
  }

  /** After a process exits during a stop or reload: finish the stop, or start the fresh processes. */
  #afterExit(): void {
    if (this.#slots.some((s) => s.child)) return
    if (this.#killTimer) clearTimeout(this.#killTimer)
    this.#killTimer = undefined
    if (this.#state === 'reloading') {
      this.#state = 'running'
      for (const slot of this.#slots) {
        slot.backoff.reset()
        this.#spawn(slot, 'boot')
      }
    } else if (this.#state === 'stopping') {
      this.#state = 'done'
      const server = this.#metricsServer
      this.#metricsServer = undefined
      const finish = (): void => {
        this.logger.info(`Supervisor exiting: ${describeExitCode(this.#exitCode)}`, { code: this.#exitCode })
        this.#resolve?.(this.#exitCode)
      }
      if (!server) return finish()
      server.close().then(finish, (error: unknown) => {
        this.logger.warn('Could not close the metrics server', errorMeta(error))
        finish()
      })
    }
  }

  #requestStop(slot: Slot): void {
    const child = slot.child
    if (!child) return
    if (slot.hello && child.connected) {
      this.#send(child, { type: 'stop' }, () => child.kill('SIGTERM'))
    } else {
      // Not listening (yet): SIGTERM either kills it (no handler yet) or starts its graceful stop.
      child.kill('SIGTERM')
    }
  }

  #kill(slot: Slot): void {
    const child = slot.child
    if (!child) return
    if (slot.hello && child.connected) this.#send(child, { type: 'kill' }, () => child.kill('SIGKILL'))
    else child.kill('SIGKILL')
  }

  #send(child: ChildProcess, message: SupervisorMessage, onError: () => void): void {
    try {
      child.send(message, (error) => {
        if (error) onError()
      })
    } catch {
      onError()
    }
  }

  #clearTimer(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer)
    slot.timer = undefined
  }

  #startWatching(dir: string): void {
    this.#watcher = watchTree(dir, {
      ...(this.#options.watchDebounce === undefined ? {} : { debounce: this.#options.watchDebounce }),
      onChange: (files) => {
        const shown = files.slice(0, 5).map((f) => relative(dir, f) || f)
        this.reload(`${shown.join(', ')}${files.length > 5 ? ` and ${files.length - 5} more` : ''} changed`)
      },
      onError: (path, error) => this.logger.warn(`Cannot watch ${path}`, errorMeta(error)),
    })
    this.logger.debug('Watching for changes', { dir, directories: this.#watcher.directories.length })
  }
}
