// The first examples a new user copies must run as written, not only compile: every ```ts block
// of the README and of docs/getting-started.md (fragments aside) is executed with tsx against
// the workspace sources, and must exit 0 on its own — a block that leaves a connection open
// (no close()) hangs and fails here.
import { execFile } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { extract, root } from './extract.ts'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, '../node_modules/.cache/run-snippets')
const run = promisify(execFile)

const pages = ['README.md', 'docs/getting-started.md']
const blocks = pages.flatMap((page) =>
  extract(join(root, page)).map((snippet, n) => ({
    name: `${page} block ${n + 1} (line ${snippet.lines[0]})`,
    snippet,
  })),
)

describe('the first examples run as written', () => {
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })

  it.each(blocks.map((b) => [b.name, b] as const))('%s', async (_name, { snippet }) => {
    const file = join(out, `${relative(root, snippet.file).replace(/[/.]/g, '_')}_${snippet.lines[0]}.mts`)
    writeFileSync(file, `${snippet.source}\nexport {}\n`)
    // Each block is a program of its own; a clean exit is the assertion (a throw or a hang fails).
    const { stderr } = await run(process.execPath, ['--import', 'tsx', '--conditions=@tq/source', file], {
      cwd: out,
      timeout: 90_000,
      env: { ...process.env, NODE_OPTIONS: '', TQ_BROKER_URL: '' },
    })
    expect(stderr).toBe('')
  })

  it('finds the README and getting-started examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3)
  })
})
