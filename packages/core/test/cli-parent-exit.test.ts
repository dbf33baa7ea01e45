// `npx tq worker` runs tq under `sh -c`; SIGTERM to npx reaches the shell, which dies without
// passing it on. The supervisor must notice that the process that started it is gone and stop
// (with its worker processes) instead of running on, orphaned.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
const APP = fileURLToPath(new URL('./fixtures/cli/stub-app.mjs', import.meta.url))

it('stops when the shell a package manager started it in dies (npx tq worker, then SIGTERM)', async () => {
  // The root test command builds (tsc -b) before vitest runs.
  expect(existsSync(BIN), 'packages/core/dist: run tsc -b first').toBe(true)
  // `; true` keeps the shell as tq's parent (as npm's `sh -c` is), instead of exec-ing node.
  const shell = spawn('sh', ['-c', `"${process.execPath}" "${BIN}" worker "${APP}" -p 2; true`], {
    env: { ...process.env, NODE_OPTIONS: '', npm_lifecycle_event: 'npx' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let log = ''
  let booted!: () => void
  const bootedTwice = new Promise<void>((resolve) => (booted = resolve))
  // The pipe closes once every process holding it (tq and its worker processes) has exited.
  const closed = new Promise<void>((resolve) => shell.stderr.on('close', resolve))
  shell.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    log += chunk
    if (log.split('Worker process booted').length > 2) booted()
  })
  const timeout = setTimeout(() => shell.kill('SIGKILL'), 60_000)
  try {
    await bootedTwice
    shell.kill('SIGTERM')
    await closed
  } finally {
    clearTimeout(timeout)
  }
  expect(log).toContain('the process that started tq exited: stopping worker processes')
  expect(log).toMatch(/worker-1\[\d+\] Worker process stopped/)
  expect(log).toMatch(/worker-2\[\d+\] Worker process stopped/)
  expect(log).toContain('Supervisor exiting: clean shutdown')
}, 90_000)
