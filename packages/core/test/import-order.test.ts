import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const run = promisify(execFile)
const src = fileURLToPath(new URL('../src/', import.meta.url))
const modules = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter(
  (f) => f.endsWith('.ts') && !f.startsWith('cli/bin') && !f.includes('testing/'),
)

// Import cycles between modules only bite when a particular module is loaded first: load each
// one first, in its own process.
it('every module can be the first one imported', { timeout: 120_000 }, async () => {
  const failures: string[] = []
  const batch = 6
  for (let i = 0; i < modules.length; i += batch) {
    await Promise.all(
      modules.slice(i, i + batch).map(async (file) => {
        try {
          await run(process.execPath, ['--import', 'tsx', '-e', `await import(${JSON.stringify(src + file)})`], {
            cwd: fileURLToPath(new URL('..', import.meta.url)),
          })
        } catch (error) {
          failures.push(
            `${file}: ${String((error as { stderr?: string }).stderr)
              .split('\n')
              .slice(0, 3)
              .join(' ')}`,
          )
        }
      }),
    )
  }
  expect(failures).toEqual([])
  expect(modules.length).toBeGreaterThan(20)
})
