// Every ```ts block in the README files and docs/ must compile against the real packages.
// - ```ts fragment: left out (deliberately incomplete).
// - ```ts continue: appended to the block before it in the same file (one module), so a page
//   can build an example up step by step.
// - <!-- prelude: declare function fetchReport(): Promise<void> --> on the line before a fence:
//   hidden lines prepended to that block (declarations the prose takes for granted).
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { expect, it } from 'vitest'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '../../..')
const out = join(here, '../node_modules/.cache/snippets')

function markdownFiles(): string[] {
  const files = [join(root, 'README.md')]
  for (const entry of readdirSync(join(root, 'docs'), { recursive: true, encoding: 'utf8' }))
    if (entry.endsWith('.md')) files.push(join(root, 'docs', entry))
  for (const dir of ['packages', 'examples'])
    for (const pkg of readdirSync(join(root, dir))) {
      const readme = join(root, dir, pkg, 'README.md')
      try {
        readFileSync(readme)
        files.push(readme)
      } catch {
        // no README
      }
    }
  return files
}

interface Snippet {
  source: string
  /** Markdown line of each source line (1-based). */
  lines: number[]
  file: string
}

function extract(file: string): Snippet[] {
  const lines = readFileSync(file, 'utf8').split('\n')
  const snippets: Snippet[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(ts|typescript)(\s+.*)?$/.exec(lines[i] ?? '')
    if (!open) continue
    const indent = open[1] ?? ''
    const flags = open[3] ?? ''
    const body: string[] = []
    const at: number[] = []
    // The prelude comment may be separated from the fence by blank lines (Prettier adds one).
    let k = i - 1
    while (k >= 0 && (lines[k] ?? '').trim() === '') k--
    const prelude = /^\s*<!--\s*prelude:\s*(.*?)\s*-->\s*$/.exec(lines[k] ?? '')
    if (prelude) {
      body.push(prelude[1] ?? '')
      at.push(k + 1)
    }
    let j = i + 1
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j] ?? ''); j++) {
      body.push((lines[j] ?? '').slice(indent.length))
      at.push(j + 1)
    }
    i = j
    if (flags.includes('fragment')) continue
    const previous = snippets.at(-1)
    if (flags.includes('continue') && previous) {
      previous.source += `\n${body.join('\n')}`
      previous.lines.push(...at)
    } else {
      snippets.push({ source: body.join('\n'), lines: at, file })
    }
  }
  return snippets
}

it('every TypeScript block in the docs compiles', () => {
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  const where = new Map<string, Snippet>()
  for (const file of markdownFiles()) {
    extract(file).forEach((snippet, n) => {
      const name = `${relative(root, file).replace(/[/.]/g, '_')}_${n}.ts`
      const path = join(out, name)
      // Each block is its own module (top-level await allowed).
      writeFileSync(path, `${snippet.source}\nexport {}\n`)
      where.set(path, snippet)
    })
  }
  const base = ts.readConfigFile(join(root, 'tsconfig.base.json'), (p) => ts.sys.readFile(p))
  const { options } = ts.parseJsonConfigFileContent(base.config, ts.sys, root)
  const program = ts.createProgram([...where.keys()], {
    ...options,
    noEmit: true,
    composite: false,
    incremental: false,
    declaration: false,
    declarationMap: false,
    noUnusedLocals: false,
    noUnusedParameters: false,
    allowImportingTsExtensions: true,
    rewriteRelativeImportExtensions: false,
    rootDir: out,
  })
  const problems = ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    const snippet = d.file ? where.get(d.file.fileName) : undefined
    if (!d.file || !snippet || d.start === undefined) return text
    const { line } = d.file.getLineAndCharacterOfPosition(d.start)
    return `${relative(root, snippet.file)}:${snippet.lines[line] ?? '?'}: ${text}`
  })
  expect(problems).toEqual([])
  expect(where.size).toBeGreaterThan(10)
})
