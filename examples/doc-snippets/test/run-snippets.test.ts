// Every example in the README files and docs/ runs as written, not only compiles: each ```ts
// block that snippets.test.ts type-checks (fence flags: see there; `ts norun` blocks are only
// compiled) is executed with tsx against the workspace sources, in a fresh process of its own,
// and must exit 0 with nothing on stderr — a throw fails, and so does a block that leaves a
// connection open (no close()): it hangs until the timeout. A block that is a test file (it
// imports vitest or @tq/core/testing) runs under `vitest run` instead, as its reader would.
//
// The examples talk to the real services: Redis on 127.0.0.1:6379 and RabbitMQ on
// 127.0.0.1:5672 must be up (the run fails, naming the one that is down, when they are not).
// PostgreSQL on 127.0.0.1:5432 (database test, in DATABASE_URL) for the Postgres examples.
// SQS examples run against fauxqs, started here on a loopback port; the AWS SDK finds it through
// AWS_ENDPOINT_URL_SQS (the SDKs' service-specific endpoint variable, read by the v3 SDK's
// endpoint config), so the blocks keep the `region` a reader would write.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { createRequire } from 'node:module'
import { basename, dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { extract, markdownFiles, root } from './extract.ts'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, '../node_modules/.cache/run-snippets')
const run = promisify(execFile)

const blocks = markdownFiles().flatMap((file) =>
  extract(file)
    .filter((snippet) => snippet.run)
    .map((snippet) => ({ name: `${relative(root, file)}:${snippet.lines[0]}`, snippet })),
)

/** Resolves when host:port accepts a TCP connection; rejects with a message naming the service. */
function reachable(service: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 3000 })
    const fail = (why: string): void => {
      socket.destroy()
      reject(new Error(`${service} is not reachable on 127.0.0.1:${port} (${why}); the doc examples need it running`))
    }
    socket.once('connect', () => {
      socket.end()
      resolve()
    })
    socket.once('timeout', () => fail('timed out'))
    socket.once('error', (error) => fail(error.message))
  })
}

/**
 * fauxqs (a dev dependency) on 127.0.0.1 and an OS-chosen port, in a child process (as the SQS
 * tests do, it builds the app rather than use the CLI, which binds 0.0.0.0). The child exits when its stdin closes, so it never outlives this file.
 */
async function startFauxqs(): Promise<{ endpoint: string; child: ChildProcess }> {
  // Queue URLs name the host the request went to (127.0.0.1:<port>), not fauxqs's default
  // sqs.<region>.localhost, which does not resolve here and which the SDK would prefer over the
  // endpoint from AWS_ENDPOINT_URL_SQS.
  const program = `
    const entry = import.meta.resolve('fauxqs')
    const { buildApp } = await import(entry)
    const { SqsStore } = await import(new URL('./sqs/sqsStore.js', entry).href)
    const sqsStore = Object.assign(new SqsStore(), { host: '' })
    const app = buildApp({ logger: false, defaultRegion: 'us-east-1', stores: { sqsStore } })
    console.log(await app.listen({ host: '127.0.0.1', port: 0 }))
    process.stdin.resume().on('end', () => app.close().then(() => process.exit(0)))
  `
  const child = spawn(process.execPath, ['--input-type=module', '--eval', program], {
    cwd: join(here, '..'),
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  const endpoint = await new Promise<string>((resolve, reject) => {
    let text = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const line = /^(http:\/\/\S+)\n/.exec(text)
      if (line?.[1]) resolve(line[1])
    })
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`fauxqs exited (${code}) before listening`)))
  })
  return { endpoint, child }
}

let fauxqs: Promise<{ endpoint: string; child: ChildProcess }> | undefined
let services: Promise<void> | undefined

/**
 * Checked once, awaited by every block: with Redis or RabbitMQ down each block fails with a
 * message naming the service, rather than being skipped or timing out.
 */
function servicesUp(): Promise<void> {
  fauxqs ??= startFauxqs()
  services ??= Promise.all([
    reachable('Redis', 6379),
    reachable('RabbitMQ', 5672),
    reachable('PostgreSQL', 5432),
    fauxqs,
  ]).then(() => undefined)
  return services
}

afterAll(async () => {
  const started = await fauxqs?.catch(() => undefined)
  started?.child.stdin?.end()
})

/** The environment of a block: no broker URLs or AWS settings from the caller's shell; SQS is fauxqs. */
async function blockEnv(): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env))
    if (!/^(AWS_|TQ_|VITEST)/.test(key) && !['REDIS_URL', 'AMQP_URL', 'DATABASE_URL', 'NODE_ENV', 'TEST'].includes(key))
      env[key] = value
  return {
    ...env,
    NODE_OPTIONS: '',
    AWS_ENDPOINT_URL_SQS: (await fauxqs)?.endpoint,
    AWS_REGION: 'us-east-1',
    // What the Postgres examples read, as an app reads its database URL.
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
    AWS_ACCESS_KEY_ID: 'fauxqs',
    AWS_SECRET_ACCESS_KEY: 'fauxqs',
    // The SDK's notice that its 2027 releases need Node 22 is not the example's output.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  }
}

/** A block that imports vitest or `@tq/core/testing` is a test file: it runs under `vitest run`. */
const isTestFile = (source: string): boolean => /from '(vitest|@tq\/core\/testing)'/.test(source)
const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs')

describe.concurrent('every example in the docs runs as written', () => {
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  // For the test-file blocks: no project of this workspace, only the block, on the sources.
  writeFileSync(
    join(out, 'vitest.config.mjs'),
    `const resolve = { conditions: ['@tq/source'] }\n` +
      `export default { resolve, ssr: { resolve }, test: { include: ['*.test.mts'], testTimeout: 60_000 } }\n`,
  )

  it.each(blocks.map((b) => [b.name, b] as const))('%s', async (_name, { snippet }) => {
    await servicesUp()
    const test = isTestFile(snippet.source)
    const base = `${relative(root, snippet.file).replace(/[/.]/g, '_')}_${snippet.lines[0]}`
    const file = join(out, `${base}${test ? '.test' : ''}.mts`)
    writeFileSync(file, `${snippet.source}\nexport {}\n`)
    const command = test
      ? [vitest, 'run', '--root', out, '--config', join(out, 'vitest.config.mjs'), basename(file)]
      : ['--import', 'tsx', '--conditions=@tq/source', file]
    // Each block is a program of its own; a clean exit is the assertion (a throw or a hang fails).
    const started = Date.now()
    const { stderr } = await run(process.execPath, command, {
      cwd: out,
      timeout: 90_000,
      killSignal: 'SIGKILL',
      env: await blockEnv(),
    }).catch((error: Error & { code?: number | null; killed?: boolean; stdout?: string; stderr?: string }) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      const why = error.killed
        ? `still running after ${seconds} s (a Worker, broker or backend left open?)`
        : `exited with code ${error.code} after ${seconds} s`
      throw new Error(`${relative(root, file)} ${why}\n--- stdout\n${error.stdout}\n--- stderr\n${error.stderr}`)
    })
    expect(stderr).toBe('')
  })
})

it('finds the examples of every page', () => {
  expect(blocks.length).toBeGreaterThanOrEqual(50)
  expect(new Set(blocks.map((b) => b.snippet.file)).size).toBeGreaterThanOrEqual(20)
})
