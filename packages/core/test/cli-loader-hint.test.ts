// `tq worker src/tasks.ts` from the built CLI under plain Node (no tsx): the import fails, and the
// error says how to run TypeScript (a loader, or compile first) instead of only "Unknown file extension".
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
const APP = fileURLToPath(new URL('./fixtures/cli/app.ts', import.meta.url))

it('a .ts module without a loader: exits 2 with a hint to use tsx or compile', async () => {
  // The root test command builds (tsc -b) before vitest runs.
  expect(existsSync(BIN), 'packages/core/dist: run tsc -b first').toBe(true)
  const failure = await promisify(execFile)(process.execPath, [BIN, 'worker', APP, '-p', '1'], {
    env: { ...process.env, NODE_OPTIONS: '' },
    timeout: 60_000,
  }).then(
    () => ({ code: 0, stderr: '' }),
    (error: { code: number; stderr: string }) => error,
  )
  expect(failure.code).toBe(2)
  expect(failure.stderr).toContain('Unknown file extension ".ts"')
  expect(failure.stderr).toContain("NODE_OPTIONS='--import tsx'")
})
