/**
 * Results across processes: a worker process (RedisBroker + Results on RedisResultBackend)
 * stores results this process reads through `message.getResult`, `group.getResults`,
 * `pipeline.getResult` and `completedCount`; and a reader process blocked on a result is woken
 * when this process stores it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ResultFailureError, Results, defaultMiddleware, group, pipeline } from '@tq/core'
import { RedisBroker } from '@tq/redis'
import { RedisResultBackend } from '../src/index.ts'
import { REDIS_URL, deleteMatching, namedConnections, rawClient, uniqueNamespace, until } from './helpers.ts'
import { declareActors } from './support/actors.ts'

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))
const PEER = fileURLToPath(new URL('./support/peer-process.ts', import.meta.url))
/** Process start-up under tsx on a busy machine can take a few seconds. */
const STARTUP = 15_000

const brokerNamespace = uniqueNamespace('xproc-broker')
const resultsNamespace = uniqueNamespace('xproc-results')
const raw = rawClient()

/** A child process whose stdout lines can be awaited. */
class Peer {
  readonly proc: ChildProcess
  readonly lines: string[] = []
  #buffer = ''
  #listeners = new Set<() => void>()
  readonly exited: Promise<number | null>

  constructor(mode: 'worker' | 'reader') {
    this.proc = spawn(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', PEER, mode], {
      cwd: PACKAGE_DIR,
      env: { ...process.env, TQ_TEST_BROKER_NS: brokerNamespace, TQ_TEST_RESULTS_NS: resultsNamespace },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#buffer += chunk
      const parts = this.#buffer.split('\n')
      this.#buffer = parts.pop() ?? ''
      this.lines.push(...parts)
      for (const listener of this.#listeners) listener()
    })
    let stderr = ''
    this.proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code) => {
        if (code !== 0 && code !== null) this.lines.push(`exited ${code}: ${stderr}`)
        for (const listener of this.#listeners) listener()
        resolve(code)
      })
    })
  }

  /** The first line starting with `prefix`, once it has been printed. */
  line(prefix: string, timeout = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.lines.find((l) => l.startsWith(prefix))
        const died = this.lines.find((l) => l.startsWith('exited '))
        if (found === undefined && died === undefined) return
        this.#listeners.delete(check)
        clearTimeout(timer)
        if (found !== undefined) resolve(found)
        else reject(new Error(`peer process died: ${died}`))
      }
      const timer = setTimeout(() => {
        this.#listeners.delete(check)
        reject(
          new Error(
            `no line starting with ${JSON.stringify(prefix)} within ${timeout} ms; got ${JSON.stringify(this.lines)}`,
          ),
        )
      }, timeout)
      this.#listeners.add(check)
      check()
    })
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`)
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return
    this.proc.kill('SIGTERM')
    await this.exited
  }
}

let worker: Peer
let reader: Peer
let readerBackendId: string
// Readable keys on both sides, so the namespace can be cleaned up afterwards.
const backend = new RedisResultBackend({ url: REDIS_URL, namespace: resultsNamespace, usePrefixKeys: true })
const broker = new RedisBroker({
  url: REDIS_URL,
  namespace: brokerNamespace,
  middleware: [...defaultMiddleware(), new Results({ backend })],
})
const { add, fails } = declareActors(broker)

beforeAll(async () => {
  worker = new Peer('worker')
  reader = new Peer('reader')
  const [, readerReady] = await Promise.all([worker.line('ready', STARTUP), reader.line('ready', STARTUP)])
  readerBackendId = readerReady.split(' ')[1] ?? ''
}, 2 * STARTUP)

afterAll(async () => {
  await Promise.all([worker?.stop(), reader?.stop()])
  expect(await worker.exited).toBe(0)
  await broker.close()
  await backend.close()
  await deleteMatching(raw, `${brokerNamespace}:*`)
  await deleteMatching(raw, `${resultsNamespace}:*`)
  await raw.quit()
})

describe('results across processes (RedisBroker + RedisResultBackend)', () => {
  it("reads a message's result stored by the worker process", async () => {
    const message = await add.send(20, 22)
    expect(await message.getResult({ backend, block: true, timeout: 5000 })).toBe(42)
    expect(await message.getResult({ backend })).toBe(42)
  })

  it('reads a failure stored by the worker process as ResultFailureError', async () => {
    const message = await fails.send()
    const error = await message.getResult({ backend, block: true, timeout: 5000 }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ResultFailureError)
    expect((error as ResultFailureError).origExcType).toBe('ValueError')
    expect((error as ResultFailureError).origExcMsg).toBe('boom')
  })

  it("collects a group's results and counts its completed children", async () => {
    const g = group([add.message(1, 2), add.message(3, 4), add.message(5, 6)], { broker })
    expect(await g.completedCount).toBe(0)
    await g.run()
    expect(await g.collectResults({ block: true, timeout: 5000 })).toEqual([3, 7, 11])
    expect(await g.completedCount).toBe(3)
    expect(await g.completed).toBe(true)
  })

  it("reads a pipeline's result and counts its completed steps", async () => {
    const p = pipeline([add.message(1, 2), add.message(3), add.message(4)], { broker })
    expect(await p.completedCount).toBe(0)
    await p.run()
    expect(await p.getResult({ block: true, timeout: 5000 })).toBe(10)
    expect(await p.completedCount).toBe(3)
    expect(await p.collectResults({ block: false })).toEqual([3, 6, 10])
  })

  it('wakes a reader process blocked on a result when this process stores it', async () => {
    const message = add.message(0, 0)
    reader.send(JSON.stringify(message.toWire()))
    await reader.line(`waiting ${message.messageId}`)
    // Store only once the reader is blocked on the server (its first look came back empty).
    await until(
      async () =>
        (await namedConnections(raw, `tq-results:${readerBackendId}:blocking`)).some((c) => c.cmd === 'blmove'),
      'the reader process to block',
    )
    const stored = performance.now()
    await backend.storeResult(message, { from: 'the test process' }, 60_000)
    expect(await reader.line(`result ${message.messageId}`)).toBe(
      `result ${message.messageId} ${JSON.stringify({ from: 'the test process' })}`,
    )
    expect(performance.now() - stored).toBeLessThan(500)
  })
})
