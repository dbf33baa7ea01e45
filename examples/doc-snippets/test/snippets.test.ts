// Every ```ts block in the README files and docs/ must compile against the real packages.
// - ```ts fragment: left out (deliberately incomplete).
// - ```ts continue: appended to the block before it in the same file (one module), so a page
//   can build an example up step by step.
// - ```ts norun: compiled here but not run by run-snippets.test.ts, which runs every other block
//   as a program of its own. Only for a block that cannot run alone (an excerpt of a larger
//   program, one that needs a Python peer or a collector), never to hide a broken example; on a
//   `continue` block it applies to the whole module.
// - <!-- prelude: async function fetchReport(): Promise<void> {} --> on the line before a fence:
//   hidden lines prepended to that block (what the prose takes for granted). They run too, so
//   define what the block calls rather than `declare` it.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { expect, it } from 'vitest'
import { type Snippet, extract, markdownFiles, root } from './extract.ts'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, '../node_modules/.cache/snippets')

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
