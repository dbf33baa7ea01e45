// The root `pnpm test`: services, typecheck+build, lint, then every vitest project.
// Stops at the first failing step; the last line of output is always `tests: N passed, N failed`.
//   pnpm test                      # everything
//   pnpm test -- packages/core     # extra arguments go to vitest
//   TQ_SKIP_LINT=1 pnpm test       # skip eslint for a quick local run (CI never sets it)
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureServices } from './services.mjs'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const bin = (name) => join(root, 'node_modules', '.bin', name)
const vitestArgs = process.argv.slice(2)
if (vitestArgs[0] === '--') vitestArgs.shift()

let passed = 0
let failed = 0

/** Runs a command with no stdin and live output; resolves with its exit code. */
function run(command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })
    child.on('error', (error) => {
      console.error(`could not run ${command}: ${error.message}`)
      resolve(1)
    })
    child.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })
}

/** Runs one step and reports whether it passed; a failed step counts as one failure. */
async function step(name, fn) {
  console.log(`\n==> ${name}`)
  const started = Date.now()
  let ok
  try {
    ok = await fn()
  } catch (error) {
    console.error(error instanceof Error ? error.message : error)
    ok = false
  }
  console.log(`==> ${name}: ${ok ? 'ok' : 'FAILED'} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  return ok
}

async function vitest() {
  const dir = mkdtempSync(join(tmpdir(), 'tq-vitest-'))
  const report = join(dir, 'report.json')
  try {
    const args = ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...vitestArgs]
    const code = await run(bin('vitest'), args)
    if (!existsSync(report)) {
      console.error('vitest wrote no JSON report')
      failed += 1
      return false
    }
    const { numTotalTests, numPassedTests, numFailedTests } = JSON.parse(readFileSync(report, 'utf8'))
    console.log(`vitest: ${numTotalTests} tests, ${numPassedTests} passed, ${numFailedTests} failed`)
    passed += numPassedTests
    failed += numFailedTests
    // A non-zero exit with no failed test (no test files, an unhandled error, a file that does not load) still fails.
    if (code !== 0 && numFailedTests === 0) failed += 1
    return code === 0
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const skipLint = process.env.TQ_SKIP_LINT === '1'
const steps = [
  [
    'services: redis, rabbitmq, postgres, chromium',
    async () => {
      for (const line of await ensureServices()) console.log(line)
      return true
    },
  ],
  ['typecheck + build: tsc -b', async () => (await run(bin('tsc'), ['-b'])) === 0],
  ['lint: eslint .', skipLint ? null : async () => (await run(bin('eslint'), ['.'])) === 0],
  [`test: vitest run ${vitestArgs.join(' ')}`.trim(), vitest],
]

for (const [name, fn] of steps) {
  if (!fn) {
    console.log(`\n==> ${name}: skipped (TQ_SKIP_LINT=1)`)
    continue
  }
  const failedBefore = failed
  if (!(await step(name, fn))) {
    if (failed === failedBefore) failed += 1
    break
  }
}

console.log(`tests: ${passed} passed, ${failed} failed`)
process.exitCode = failed === 0 ? 0 : 1
