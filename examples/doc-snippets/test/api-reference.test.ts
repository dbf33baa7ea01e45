// The API reference in docs/api is generated with TypeDoc (`pnpm docs:api`) and committed; CI does
// not regenerate it. This checks that TypeDoc still converts the current sources without errors
// (`--emit none`: convert and validate, write nothing).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..')

it('TypeDoc converts every package entry point without errors', () => {
  const run = spawnSync(join(root, 'node_modules/.bin/typedoc'), ['--emit', 'none', '--logLevel', 'Warn'], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  })
  const output = `${run.stdout}${run.stderr}`
  expect(output.split('\n').filter((line) => line.includes('[error]'))).toEqual([])
  expect(run.status, output).toBe(0)
  expect(existsSync(join(root, 'docs/api/index.html'))).toBe(true)
}, 180_000)
