import { execFileSync, spawn } from 'node:child_process'
import { cpSync } from 'node:fs'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { publint } from 'publint'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '../../..')
const scratch = mkdtempSync(join(tmpdir(), 'tq-packed-'))
const tarballs = join(scratch, 'tarballs')
const project = join(scratch, 'project')

interface Manifest {
  name: string
  private?: boolean
  peerDependencies?: Record<string, string>
}

const packages = readdirSync(join(root, 'packages'))
  .map((dir) => ({
    dir: join(root, 'packages', dir),
    manifest: JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')) as Manifest,
  }))
  .filter((p) => !p.manifest.private)

/** pnpm as the test runner was started with (it rewrites workspace: and catalog: ranges when packing). */
function pnpm(args: string[], cwd: string): string {
  const execPath = process.env['npm_execpath']
  if (execPath && /pnpm/.test(execPath))
    return execFileSync(process.execPath, [execPath, ...args], { cwd, encoding: 'utf8' })
  return execFileSync('corepack', ['pnpm', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, COREPACK_ENABLE_DOWNLOAD_PROMPT: '0' },
  })
}

const tarballOf = new Map<string, string>()

beforeAll(() => {
  if (packages.some((p) => !existsSync(join(p.dir, 'dist'))))
    execFileSync(join(root, 'node_modules/.bin/tsc'), ['-b'], { cwd: root })
  for (const p of packages) {
    const out = pnpm(['pack', '--pack-destination', tarballs], p.dir).trim().split('\n').at(-1) as string
    tarballOf.set(p.manifest.name, out.startsWith('/') ? out : join(tarballs, out))
  }
})

afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe('published packages', () => {
  it.each(packages.map((p) => [p.manifest.name] as const))('%s passes publint', async (name) => {
    // Lint the tarball pnpm made (what would be published), not a fresh pack.
    const bytes = readFileSync(tarballOf.get(name) as string)
    const tarball = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
    const { messages } = await publint({ pkgDir: 'package', pack: { tarball }, level: 'warning', strict: false })
    expect(messages.filter((m) => m.type === 'error' || m.type === 'warning')).toEqual([])
  })

  it.each(packages.map((p) => [p.manifest.name] as const))('%s has types that resolve (attw, ESM only)', (name) => {
    const tarball = tarballOf.get(name) as string
    const attw = join(root, 'node_modules/.bin/attw')
    // ESM only: CommonJS resolution modes are ignored (require(esm) covers CJS users on Node 20.19+).
    // attw exits non-zero on any problem that is not ignored.
    let failure = ''
    try {
      execFileSync(attw, [tarball, '--profile', 'esm-only', '--format', 'ascii'], { encoding: 'utf8' })
    } catch (error) {
      failure = String((error as { stdout?: string }).stdout)
    }
    expect(failure).toBe('')
  })

  it('never ship workspace: or catalog: ranges', () => {
    for (const [name, tarball] of tarballOf) {
      const manifest = execFileSync('tar', ['-xOzf', tarball, 'package/package.json'], { encoding: 'utf8' })
      expect(manifest, name).not.toMatch(/workspace:|catalog:/)
    }
  })

  it('install into a project outside the workspace and run there', () => {
    const deps: Record<string, string> = {}
    for (const [name, tarball] of tarballOf) deps[name] = `file:${tarball}`
    // The adapters' client libraries are peers: the app installs them.
    for (const p of packages)
      for (const [peer, range] of Object.entries(p.manifest.peerDependencies ?? {}))
        if (!peer.startsWith('@tq/') && !deps[peer]) deps[peer] = resolvedRange(p.dir, peer, range)
    execFileSync('mkdir', ['-p', project])
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'packed-app', private: true, type: 'module', dependencies: deps }, null, 2),
    )
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: project, encoding: 'utf8' })
    for (const file of ['main.mjs', 'main.cjs'])
      writeFileSync(join(project, file), readFileSync(join(here, '../app', file)))
    const esm = execFileSync(process.execPath, ['main.mjs'], {
      cwd: project,
      encoding: 'utf8',
      env: {
        ...process.env,
        TQ_BROKER_URL: 'redis://127.0.0.1:6379/12',
        TQ_PACKED_PG_URL: process.env['TQ_POSTGRES_TEST_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
        NODE_OPTIONS: '',
      },
    })
    expect(esm.trim().split('\n')).toEqual(['stub: 3', 'getBroker: RedisBroker', 'redis: 42', 'postgres: 42'])
    const cjs = execFileSync(process.execPath, ['main.cjs'], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    })
    expect(cjs.trim().split('\n')).toEqual(['cjs: StubBroker 1', 'cjs: PostgresBroker fromPg'])
  })
})

// The adapters' peer ranges admit ioredis 5 (what BullMQ apps already have) and amqplib 0.10:
// install exactly those lowest majors and run on the real servers.
it('runs with the lowest supported peer majors (ioredis 5.11, amqplib 0.10)', () => {
  const low = join(scratch, 'lowest-peers')
  execFileSync('mkdir', ['-p', low])
  const deps: Record<string, string> = { ioredis: '~5.11.0', amqplib: '~0.10.0' }
  for (const name of ['@tq/core', '@tq/redis', '@tq/rabbitmq', '@tq/results-redis'])
    deps[name] = `file:${tarballOf.get(name)}`
  writeFileSync(
    join(low, 'package.json'),
    JSON.stringify({ name: 'lowest-peers', private: true, type: 'module', dependencies: deps }, null, 2),
  )
  // No --legacy-peer-deps: npm refuses the install if a peer range excludes these versions.
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: low, encoding: 'utf8' })
  const installed = (pkg: string): string =>
    (JSON.parse(readFileSync(join(low, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version
  expect(installed('ioredis')).toMatch(/^5\.11\./)
  expect(installed('amqplib')).toMatch(/^0\.10\./)
  writeFileSync(join(low, 'main.mjs'), readFileSync(join(here, '../app/lowest-peers.mjs')))
  const out = execFileSync(process.execPath, ['main.mjs'], {
    cwd: low,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  expect(out.trim().split('\n')).toEqual(['redis: 3 42', 'rabbitmq: 3 42'])
})

// npm's default project has no "type": "module": tsx then compiles the app's imports to CommonJS
// while the tq CLI imports @tq/core's ESM build, so the process holds two copies of @tq/core.
// setBroker() in one must be what the other's worker runs (it ran a default broker before).
describe('a CommonJS app (no "type": "module")', () => {
  const cjs = join(scratch, 'cjs-app')
  const queue = `packed_cjs_${process.pid}_${Date.now()}`
  const env = { ...process.env, NODE_OPTIONS: '', APP_REDIS_URL: 'redis://127.0.0.1:6379/11', APP_QUEUE: queue }

  beforeAll(() => {
    cpSync(join(here, '../app-cjs'), cjs, { recursive: true })
    const deps: Record<string, string> = {}
    for (const name of ['@tq/core', '@tq/redis', '@tq/results-redis']) deps[name] = `file:${tarballOf.get(name)}`
    const redis = packages.find((p) => p.manifest.name === '@tq/redis')
    deps['ioredis'] = resolvedRange(redis?.dir ?? '', 'ioredis', redis?.manifest.peerDependencies?.['ioredis'] ?? '*')
    Object.assign(deps, { tsx: '^4.23.0', typescript: '~5.9.3', '@types/node': '^20.19.0' })
    writeFileSync(
      join(cjs, 'package.json'),
      JSON.stringify({ name: 'cjs-app', private: true, dependencies: deps }, null, 2),
    )
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: cjs, encoding: 'utf8' })
  })

  it.each([
    ['tsx', ['--import', 'tsx'], 'src/tasks.ts', 'src/send.ts'],
    ['tsc', [], 'dist/tasks.js', 'dist/send.js'],
  ] as const)(
    'with %s: the worker runs the broker the module set, getResult() finds its backend',
    async (how, loader, tasks, send) => {
      if (how === 'tsc') execFileSync(join(cjs, 'node_modules/.bin/tsc'), ['-p', '.'], { cwd: cjs, encoding: 'utf8' })
      const worker = spawn(
        process.execPath,
        [...loader, join(cjs, 'node_modules/.bin/tq'), 'worker', tasks, '--processes', '1'],
        {
          cwd: cjs,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      let log = ''
      const exited = new Promise<number | null>((resolve) => worker.on('exit', (code) => resolve(code)))
      await new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer): void => {
          log += chunk.toString()
          if (log.includes('Worker process booted')) resolve()
        }
        worker.stdout.on('data', onData)
        worker.stderr.on('data', onData)
        void exited.then((code) => reject(new Error(`tq worker exited (${code}) before booting:\n${log}`)))
      })
      // The boot line names the server (password redacted) and the database.
      expect(log).toMatch(new RegExp(`broker=RedisBroker url=redis://127.0.0.1:6379/11 db=11 queues=${queue}`))
      const out = execFileSync(process.execPath, [...loader, send], {
        cwd: cjs,
        env,
        encoding: 'utf8',
        timeout: 30_000,
      })
      expect(out.trim()).toBe('result: 5')
      worker.kill('SIGTERM')
      expect(await exited).toBe(0)
    },
  )

  it('a worker whose modules declare no actors says so and exits 2', () => {
    let status: number | null = 0
    let output = ''
    try {
      execFileSync(process.execPath, ['--import', 'tsx', join(cjs, 'node_modules/.bin/tq'), 'worker', 'src/empty.ts'], {
        cwd: cjs,
        env,
        encoding: 'utf8',
        stdio: 'pipe',
        timeout: 30_000,
      })
    } catch (error) {
      const e = error as { status: number | null; stdout: string; stderr: string }
      status = e.status
      output = `${e.stdout}${e.stderr}`
    }
    expect(status).toBe(2)
    expect(output).toContain('declared no actors')
  })
})

/** A peer's range as the workspace catalog pins it (the packed manifest has the real range). */
function resolvedRange(dir: string, peer: string, range: string): string {
  if (!range.startsWith('catalog:')) return range
  const tarball = [...tarballOf.values()].find((t) =>
    t.includes(
      JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
        .name.replace('@', '')
        .replace('/', '-'),
    ),
  )
  if (!tarball) return '*'
  const manifest = JSON.parse(
    execFileSync('tar', ['-xOzf', tarball, 'package/package.json'], { encoding: 'utf8' }),
  ) as Manifest
  return manifest.peerDependencies?.[peer] ?? '*'
}
