// Reads the ```ts blocks out of the Markdown files (see snippets.test.ts for the fence flags).
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '../../..')

export function markdownFiles(): string[] {
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

export interface Snippet {
  source: string
  /** Markdown line of each source line (1-based). */
  lines: number[]
  file: string
  /** False when a block of it is marked `ts norun`: type-checked, not executed. */
  run: boolean
}

export function extract(file: string): Snippet[] {
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
    const run = !/\bnorun\b/.test(flags)
    if (flags.includes('continue') && previous) {
      previous.source += `\n${body.join('\n')}`
      previous.lines.push(...at)
      previous.run &&= run
    } else {
      snippets.push({ source: body.join('\n'), lines: at, file, run })
    }
  }
  return snippets
}
