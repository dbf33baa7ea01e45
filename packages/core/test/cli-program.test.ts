/**
 * The parts of the CLI that run in-process: argument parsing, log formats, module resolution,
 * the directory watcher and the supervisor's restart policy (with a plain-Node stand-in for the
 * worker process). The real processes are exercised in cli.test.ts.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLogger, type LogEntry } from '../src/logger.ts'
import {
  ExitCode,
  Supervisor,
  buildProgram,
  formatJson,
  formatPretty,
  resolveModule,
  runCli,
  watchTree,
  type SupervisorOptions,
  type WorkerCommandConfig,
} from '../src/cli/index.ts'
import { RetryCounter, type MetricsModule } from '../src/cli/metrics.ts'
import {
  Message,
  StubBroker,
  Worker,
  actor,
  defaultMiddleware,
  Retries,
  type MessageProxy,
  type Middleware,
} from '../src/index.ts'

const APP = fileURLToPath(new URL('./fixtures/cli/app.ts', import.meta.url))
const FAKE_WORKER = fileURLToPath(new URL('./fixtures/cli/fake-worker.mjs', import.meta.url))
const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tq-cli-unit-'))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await runCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), handleSignals: false })
  return { code, out, err }
}

/** Parse `argv` and return the config `tq worker` would run with (nothing is started). */
async function parse(argv: string[]): Promise<WorkerCommandConfig> {
  let config: WorkerCommandConfig | undefined
  const program = buildProgram(
    { writeOut: () => {}, writeErr: () => {}, cwd: dir, runWorker: async (c) => ((config = c), 0) },
    { code: 0 },
  )
  await program.parseAsync(argv, { from: 'user' })
  if (!config) throw new Error('runWorker was not called')
  return config
}

describe('tq arguments', () => {
  it('prints the package version with --version', async () => {
    const { code, out } = await run(['--version'])
    expect(code).toBe(0)
    expect(out.trim()).toBe(PACKAGE_VERSION)
  })

  it('documents commands, signals and exit codes in --help', async () => {
    const top = await run(['--help'])
    expect(top.code).toBe(0)
    expect(top.out).toContain('worker [options] <modules...>')
    expect(top.out).toMatch(
      /Exit codes:[\s\S]*2 {2}bad arguments, or a module failed to import[\s\S]*3 {2}broker connection failed/,
    )
    const worker = await run(['worker', '--help'])
    expect(worker.code).toBe(0)
    for (const text of [
      '--processes',
      '--concurrency',
      '--queues',
      '--watch',
      '--path',
      '--worker-shutdown-timeout',
      '--worker-timeout',
      '--log-format',
      '--verbose',
      '--metrics-port',
      '--metrics-host',
      '--stats-interval',
      'SIGHUP',
      'SIGUSR1',
      'default: 600000',
    ]) {
      expect(worker.out).toContain(text)
    }
  })

  it('applies the documented defaults', async () => {
    const config = await parse(['worker', APP])
    expect(config).toEqual({
      modules: [APP],
      processes: availableParallelism(),
      concurrency: 8,
      queues: undefined,
      paths: [dir],
      watch: undefined,
      workerShutdownTimeout: 600_000,
      workerTimeout: 1000,
      logFormat: 'pretty',
      verbose: false,
      metricsPort: undefined,
      metricsHost: '127.0.0.1',
      statsInterval: 0,
      scheduler: false,
    })
  })

  it('reads every option', async () => {
    mkdirSync(join(dir, 'lib'))
    writeFileSync(join(dir, 'lib', 'tasks.ts'), 'export {}\n')
    const config = await parse([
      'worker',
      'tasks',
      'other-package',
      '-p',
      '3',
      '-c',
      '16',
      '--worker-shutdown-timeout',
      '25000',
      '--worker-timeout',
      '200',
      '--log-format',
      'json',
      '-v',
      '--watch',
      '.',
      '--path',
      'lib',
      '.',
      '--metrics-port',
      '9191',
      '--metrics-host',
      '0.0.0.0',
      '--stats-interval',
      '60000',
      '--scheduler',
      '--queues',
      'emails',
      'reports.high',
    ])
    expect(config).toEqual({
      modules: ['tasks', 'other-package'],
      processes: 3,
      concurrency: 16,
      queues: ['emails', 'reports.high'],
      paths: [join(dir, 'lib'), dir],
      watch: dir,
      workerShutdownTimeout: 25_000,
      workerTimeout: 200,
      logFormat: 'json',
      verbose: true,
      metricsPort: 9191,
      metricsHost: '0.0.0.0',
      statsInterval: 60_000,
      scheduler: true,
    })
  })

  it.each([
    [[], 'Usage: tq'],
    [['worker'], "missing required argument 'modules'"],
    [['worker', APP, '--processes', '0'], '--processes must be an integer >= 1'],
    [['worker', APP, '--concurrency', 'many'], '--concurrency must be an integer >= 1'],
    [['worker', APP, '--worker-timeout', '1.5'], '--worker-timeout must be an integer >= 1'],
    [['worker', APP, '--log-format', 'xml'], 'Allowed choices are pretty, json'],
    [['worker', APP, '--metrics-port', '70000'], '--metrics-port must be a port number (0 to 65535)'],
    [['worker', APP, '--metrics-port', 'http'], '--metrics-port must be a port number (0 to 65535)'],
    [['worker', APP, '--stats-interval', '1.5'], '--stats-interval must be an integer >= 0'],
    [['worker', APP, '--queues', 'bad queue'], 'Invalid queue name "bad queue"'],
    [['worker', APP, '--watch', '/no/such/dir'], '--watch /no/such/dir is not a directory'],
    [['worker', APP, '--path', '/no/such/dir'], '--path /no/such/dir is not a directory'],
    [['worker', './missing.ts'], 'Cannot find module "./missing.ts"'],
    [['worker', APP, '--bogus'], "unknown option '--bogus'"],
    [['nope'], "unknown command 'nope'"],
  ])('exits 2 on bad arguments: %j', async (argv, message) => {
    const { code, err } = await run(argv)
    expect(code).toBe(ExitCode.USAGE)
    expect(err).toContain(message)
  })
})

describe('log formats', () => {
  const time = new Date('2025-01-02T03:04:05.678Z')

  it('json: one object per line with level, time, msg and meta', () => {
    const entry: LogEntry = { level: 'info', msg: 'Worker process booted', meta: { pid: 7, queues: ['a'], big: 10n } }
    const line = formatJson(entry, time)
    expect(line.endsWith('\n')).toBe(true)
    expect(line.split('\n')).toHaveLength(2)
    expect(JSON.parse(line)).toEqual({
      level: 'info',
      time: '2025-01-02T03:04:05.678Z',
      msg: 'Worker process booted',
      meta: { pid: 7, queues: ['a'], big: '10' },
    })
  })

  it('pretty: one human line, with the stack of an error on the lines after it', () => {
    const info = formatPretty(
      {
        level: 'info',
        msg: 'Worker process booted',
        meta: {
          process: 'worker-1',
          pid: 42,
          broker: 'StubBroker',
          queues: ['a', 'b'],
          concurrency: 8,
          note: 'two words',
        },
      },
      time,
    )
    expect(info).toBe(
      '2025-01-02T03:04:05.678Z INFO  worker-1[42] Worker process booted broker=StubBroker queues=a,b concurrency=8 note="two words"\n',
    )
    const error = new TypeError('boom')
    const logged: string[] = []
    createLogger((e) => logged.push(formatPretty(e, time, e.level === 'error')))
      .child({ component: 'worker' })
      .error('Failed', { err: { type: error.name, message: error.message, stack: error.stack } })
    const [first, ...rest] = (logged[0] as string).trimEnd().split('\n')
    expect(first).toBe('2025-01-02T03:04:05.678Z ERROR tq worker: Failed err="TypeError: boom"')
    expect(rest[0]).toBe('    TypeError: boom')
  })
})

describe('module resolution', () => {
  it('finds files with or without an extension, and directories by index', () => {
    mkdirSync(join(dir, 'a'))
    mkdirSync(join(dir, 'b', 'jobs'), { recursive: true })
    writeFileSync(join(dir, 'a', 'tasks.ts'), '')
    writeFileSync(join(dir, 'b', 'tasks.js'), '')
    writeFileSync(join(dir, 'b', 'jobs', 'index.mjs'), '')
    const paths = [join(dir, 'a'), join(dir, 'b')]
    expect(resolveModule('tasks', paths).url).toBe(pathToFileURL(join(dir, 'a', 'tasks.ts')).href)
    expect(resolveModule('tasks.js', paths).url).toBe(pathToFileURL(join(dir, 'b', 'tasks.js')).href)
    expect(resolveModule('./jobs', paths).url).toBe(pathToFileURL(join(dir, 'b', 'jobs', 'index.mjs')).href)
    expect(resolveModule(join(dir, 'a', 'tasks.ts'), []).display).toBe(join(dir, 'a', 'tasks.ts'))
  })

  it('resolves package names, and says where it looked when nothing matches', () => {
    expect(resolveModule('commander', [fileURLToPath(new URL('..', import.meta.url))]).url).toMatch(/^file:.*commander/)
    expect(() => resolveModule('./nope.ts', [dir])).toThrow(`Cannot find module "./nope.ts" (looked in ${dir})`)
    expect(() => resolveModule('no-such-package-here', [dir])).toThrow(/no such file .* in .*, and no such package/)
  })
})

describe('watchTree', () => {
  it('reports source-file changes in the tree, including new directories, once per burst', async () => {
    mkdirSync(join(dir, 'src'))
    mkdirSync(join(dir, 'node_modules', 'dep'), { recursive: true })
    mkdirSync(join(dir, '.git'))
    const batches: string[][] = []
    let notify: () => void = () => {}
    const watcher = watchTree(dir, {
      debounce: 50,
      onChange: (files) => {
        batches.push(files.sort())
        notify()
      },
    })
    try {
      expect([...watcher.directories].sort()).toEqual([dir, join(dir, 'src')])
      let changed = new Promise<void>((resolve) => (notify = resolve))
      writeFileSync(join(dir, 'node_modules', 'dep', 'index.js'), '')
      writeFileSync(join(dir, '.git', 'HEAD.json'), '')
      writeFileSync(join(dir, 'README.md'), '')
      writeFileSync(join(dir, 'src', 'a.ts'), '')
      writeFileSync(join(dir, 'config.json'), '')
      await changed
      expect(batches).toEqual([[join(dir, 'config.json'), join(dir, 'src', 'a.ts')]])

      changed = new Promise<void>((resolve) => (notify = resolve))
      mkdirSync(join(dir, 'src', 'new'))
      writeFileSync(join(dir, 'src', 'new', 'b.mjs'), '')
      await changed
      expect(batches[1]).toContain(join(dir, 'src', 'new', 'b.mjs'))
      expect(watcher.directories).toContain(join(dir, 'src', 'new'))
    } finally {
      watcher.close()
    }
  })
})

describe('Supervisor', () => {
  function config(overrides: Partial<WorkerCommandConfig> = {}): WorkerCommandConfig {
    return {
      modules: [],
      processes: 1,
      concurrency: 1,
      queues: undefined,
      paths: [dir],
      watch: undefined,
      workerShutdownTimeout: 5000,
      workerTimeout: 100,
      logFormat: 'json',
      verbose: false,
      metricsPort: undefined,
      metricsHost: '127.0.0.1',
      statsInterval: 0,
      scheduler: false,
      ...overrides,
    }
  }

  function supervisor(
    env: Record<string, string>,
    overrides: Partial<WorkerCommandConfig> = {},
    extra: Partial<SupervisorOptions> = {},
  ) {
    const entries: LogEntry[] = []
    const waiters: { check: () => boolean; resolve: () => void }[] = []
    const logger = createLogger((entry) => {
      entries.push(entry)
      for (const w of [...waiters]) {
        if (!w.check()) continue
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
    })
    const sup = new Supervisor({
      config: config(overrides),
      logger,
      binPath: FAKE_WORKER,
      execArgv: [],
      env: { ...process.env, ...env },
      restart: { minDelay: 10, maxDelay: 40, stableAfter: 60_000 },
      ...extra,
    })
    const until = (check: () => boolean): Promise<void> =>
      check() ? Promise.resolve() : new Promise((resolve) => waiters.push({ check, resolve }))
    return { sup, entries, until }
  }

  it('restarts a crashing process with a doubling, capped backoff', async () => {
    const { sup, entries, until } = supervisor({ FIXTURE_EXIT_CODE: '13' })
    const done = sup.run()
    const restarts = (): LogEntry[] => entries.filter((e) => e.msg.includes('exited unexpectedly'))
    await until(() => restarts().length >= 4)
    sup.stop('test')
    expect(await done).toBe(0)
    expect(
      restarts()
        .slice(0, 4)
        .map((e) => e.meta['delay']),
    ).toEqual([10, 20, 40, 40])
    expect(restarts()[0]?.meta).toMatchObject({ worker: 1, code: 13 })
  })

  it('stops everything with code 2 when a process fails to boot, or waits for a change under --watch', async () => {
    const failing = supervisor({ FIXTURE_EXIT_CODE: '2' }, { processes: 2 })
    expect(await failing.sup.run()).toBe(2)
    expect(failing.entries.find((e) => e.msg.includes('failed to boot'))?.msg).toContain('fake boot failure 2')

    const watching = supervisor({ FIXTURE_EXIT_CODE: '2' }, { watch: dir })
    const done = watching.sup.run()
    await watching.until(() => watching.entries.some((e) => e.msg.includes('waiting for a file change')))
    watching.sup.stop('test')
    expect(await done).toBe(0)
  })

  it('stops ready processes with a stop message and exits 0', async () => {
    const { sup, entries, until } = supervisor({}, { processes: 2 })
    const done = sup.run()
    await until(() => entries.filter((e) => e.msg.endsWith('is ready')).length === 2)
    expect(sup.pids).toHaveLength(2)
    sup.stop('test')
    expect(await done).toBe(0)
    expect(entries.at(-1)?.meta).toMatchObject({ code: 0 })
  })

  /** A stand-in for @tq/prometheus that records the options it was started with. */
  function fakeMetricsModule() {
    const started: { port: number; host: string; collect: () => Promise<readonly (readonly object[])[]> }[] = []
    let closed = 0
    const module: MetricsModule = {
      serveAggregatedMetrics: async (options) => {
        started.push(options)
        return { port: 4321, url: `http://${options.host}:4321/metrics`, close: async () => void closed++ }
      },
    }
    return { module, started, closed: () => closed }
  }

  it("--metrics-port: serves before starting the processes, and collects every process's metrics over IPC", async () => {
    const fake = fakeMetricsModule()
    const { sup, entries, until } = supervisor(
      { FIXTURE_METRIC: '3' },
      { processes: 2, metricsPort: 0, metricsHost: '127.0.0.9' },
      { loadMetrics: async () => fake.module },
    )
    const done = sup.run()
    await until(() => entries.filter((e) => e.msg.endsWith('is ready')).length === 2)
    const serving = entries.findIndex((e) => e.msg === 'Serving metrics')
    const firstStart = entries.findIndex((e) => e.msg.startsWith('Started worker-'))
    expect(serving).toBeGreaterThanOrEqual(0)
    expect(serving).toBeLessThan(firstStart)
    expect(entries[serving]?.meta).toMatchObject({ url: 'http://127.0.0.9:4321/metrics' })
    expect(fake.started).toMatchObject([{ port: 0, host: '127.0.0.9' }])

    const collected = await fake.started[0]?.collect()
    expect(collected).toHaveLength(2)
    for (const list of collected ?? [])
      expect(list).toEqual([expect.objectContaining({ name: 'fake_total', values: [{ value: 3, labels: {} }] })])
    sup.stop('test')
    expect(await done).toBe(0)
    expect(fake.closed()).toBe(1)
  })

  it('--metrics-port: a process that does not answer in time is left out, with a warning', async () => {
    const fake = fakeMetricsModule()
    const { sup, entries, until } = supervisor(
      { FIXTURE_SILENT_METRICS: '1' },
      { metricsPort: 0 },
      { loadMetrics: async () => fake.module, metricsTimeout: 50 },
    )
    const done = sup.run()
    await until(() => entries.some((e) => e.msg.endsWith('is ready')))
    expect(await sup.collectMetrics()).toEqual([])
    expect(entries.find((e) => e.msg.includes('did not report its metrics within 50 ms'))?.level).toBe('warn')
    sup.stop('test')
    expect(await done).toBe(0)
  })

  it('--metrics-port: exits 2 without starting a process when @tq/prometheus is not installed', async () => {
    const { sup, entries } = supervisor({}, { metricsPort: 0 })
    expect(await sup.run()).toBe(ExitCode.USAGE)
    const error = entries.find((e) => e.level === 'error')
    expect(error?.msg).toBe('Cannot serve metrics on 127.0.0.1:0')
    expect(JSON.stringify(error?.meta)).toContain('npm install @tq/prometheus prom-client')
    expect(entries.some((e) => e.msg.startsWith('Started worker-'))).toBe(false)
  })

  it('--metrics-port: exits 2 when the port cannot be listened on', async () => {
    const { sup, entries } = supervisor(
      {},
      { metricsPort: 1 },
      {
        loadMetrics: async () => ({
          serveAggregatedMetrics: () =>
            Promise.reject(Object.assign(new Error('listen EACCES: permission denied'), { code: 'EACCES' })),
        }),
      },
    )
    expect(await sup.run()).toBe(ExitCode.USAGE)
    expect(JSON.stringify(entries.find((e) => e.level === 'error')?.meta)).toContain('EACCES')
  })
})

describe('RetryCounter', () => {
  it('counts each retry a process enqueues once, not again when it leaves the delay queue', async () => {
    const counter = new RetryCounter()
    const stack = defaultMiddleware().filter((m) => !(m instanceof Retries))
    const broker = new StubBroker({ middleware: [...stack, new Retries({ minBackoff: 1, maxBackoff: 5 }), counter] })
    const fail = actor(
      'fail',
      () => {
        throw new Error('boom')
      },
      { broker, maxRetries: 3 },
    )
    const delayed = actor('delayed', () => {}, { broker })
    const worker = new Worker(broker, { workerTimeout: 20 })
    await worker.start()
    try {
      await fail.send()
      await delayed.sendWithOptions({ args: [], delay: 5 })
      await broker.join('default', { failFast: false })
      expect(counter.count).toBe(3)
      expect(broker.deadLetters).toHaveLength(1)
    } finally {
      await worker.stop()
    }
  })

  it('counts a retry once when the moved copy starts before its enqueue is confirmed (RabbitMQ)', () => {
    // On RabbitMQ the worker can receive and start the copy moved out of the delay queue before
    // the publisher confirm returns and afterEnqueue runs: the move must still not count.
    const counter = new RetryCounter()
    const broker = new StubBroker()
    const retry = new Message({ queueName: 'q.DQ', actorName: 'a', args: [], options: { retries: 1, eta: Date.now() } })
    const proxy = { messageId: retry.messageId, options: retry.options } as unknown as MessageProxy
    counter.beforeDelayMessage(broker, proxy)
    counter.afterEnqueue(broker, retry) // the retry itself, confirmed after the worker took it from the delay queue
    const moved = new Message({ ...retry.asDict(), queueName: 'q', options: { retries: 1 } })
    const hooks = counter as Middleware
    void hooks.beforeProcessMessage?.(broker, proxy) // the moved copy starts …
    counter.afterEnqueue(broker, moved) // … before its enqueue is confirmed
    expect(counter.count).toBe(1)
  })
})
