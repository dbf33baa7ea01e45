// Every relative link in the README files and docs/ must point at a file or directory that
// exists, and every #anchor at a heading of the target page (GitHub's heading ids). External
// links (http, https, mailto) are not fetched — there is no network in CI — only listed.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '../../..')

function markdownFiles(): string[] {
  const files = [join(root, 'README.md')]
  for (const entry of readdirSync(join(root, 'docs'), { recursive: true, encoding: 'utf8' }))
    if (entry.endsWith('.md') && !entry.startsWith('api/')) files.push(join(root, 'docs', entry))
  for (const dir of ['packages', 'examples'])
    for (const pkg of readdirSync(join(root, dir))) {
      const readme = join(root, dir, pkg, 'README.md')
      if (existsSync(readme)) files.push(readme)
    }
  return files
}

/** The page's lines outside fenced code blocks, with inline code spans blanked. */
function proseLines(text: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = []
  let fence: string | undefined
  text.split('\n').forEach((line, i) => {
    const marker = /^\s*(```+|~~~+)/.exec(line)?.[1]
    if (marker && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined
      return
    }
    if (fence === undefined) out.push({ line: i + 1, text: line.replace(/(`+)[^`]*?\1/g, (m) => ' '.repeat(m.length)) })
  })
  return out
}

/** GitHub's id for a heading: lowercase, punctuation dropped, each space a hyphen; repeats get -1, -2, … */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML
    .trim()
    .toLowerCase()
  return text.replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

const anchorCache = new Map<string, Set<string>>()

function anchorsOf(file: string): Set<string> {
  let anchors = anchorCache.get(file)
  if (anchors) return anchors
  anchors = new Set<string>()
  const seen = new Map<string, number>()
  const text = readFileSync(file, 'utf8')
  let fence: string | undefined
  for (const line of text.split('\n')) {
    const marker = /^\s*(```+|~~~+)/.exec(line)?.[1]
    if (marker && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined
      continue
    }
    if (fence !== undefined) continue
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1]
    if (heading !== undefined) {
      const base = slug(heading.replace(/`/g, ''))
      const n = seen.get(base) ?? 0
      seen.set(base, n + 1)
      anchors.add(n === 0 ? base : `${base}-${n}`)
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1] as string)
  }
  anchorCache.set(file, anchors)
  return anchors
}

interface Link {
  file: string
  line: number
  target: string
}

function linksOf(file: string): Link[] {
  const links: Link[] = []
  const text = readFileSync(file, 'utf8')
  for (const { line, text: prose } of proseLines(text)) {
    // Inline links and images: [text](target "title"), ![alt](<target>)
    for (const m of prose.matchAll(/\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+"[^"]*")?\s*\)/g))
      links.push({ file, line, target: (m[1] as string).replace(/^<|>$/g, '') })
    // Reference definitions: [name]: target
    const ref = /^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/.exec(prose)
    if (ref) links.push({ file, line, target: (ref[1] as string).replace(/^<|>$/g, '') })
    // HTML: href="…" / src="…"
    for (const m of prose.matchAll(/\b(?:href|src)="([^"]+)"/g)) links.push({ file, line, target: m[1] as string })
  }
  return links
}

function problemWith(link: Link): string | undefined {
  const [path = '', anchor] = link.target.split('#', 2) as [string, string | undefined]
  const target = path === '' ? link.file : resolve(dirname(link.file), decodeURIComponent(path))
  if (!existsSync(target)) return `${relative(root, target)} does not exist`
  if (anchor === undefined || anchor === '') return undefined
  if (statSync(target).isDirectory() || !target.endsWith('.md')) return undefined
  const anchors = anchorsOf(target)
  if (!anchors.has(decodeURIComponent(anchor).toLowerCase()))
    return `no heading #${anchor} in ${relative(root, target)}`
  return undefined
}

it('every relative link and #anchor in the docs resolves', () => {
  const problems: string[] = []
  const external = new Set<string>()
  let checked = 0
  for (const file of markdownFiles()) {
    for (const link of linksOf(file)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link.target)) {
        external.add(link.target)
        continue
      }
      checked++
      const problem = problemWith(link)
      if (problem) problems.push(`${relative(root, link.file)}:${link.line}: ${link.target}: ${problem}`)
    }
  }
  console.info(
    `${checked} relative links checked; ${external.size} external links not fetched:\n${[...external].sort().join('\n')}`,
  )
  expect(problems).toEqual([])
  expect(checked).toBeGreaterThan(20)
})

it('computes heading ids as GitHub does, and finds a broken anchor', () => {
  expect(slug('The delay lease (Dramatiq #827)')).toBe('the-delay-lease-dramatiq-827')
  expect(slug('`@tq/core/testing` helpers')).toBe('tqcoretesting-helpers')
  expect(slug('Results on Redis: `@tq/results-redis`'.replace(/`/g, ''))).toBe('results-on-redis-tqresults-redis')
  expect(slug('[Links](x.md) and <b>HTML</b> — dashes')).toBe('links-and-html--dashes')
  const file = join(root, 'docs/brokers.md')
  expect(problemWith({ file, line: 1, target: '#choosing-a-broker-per-environment' })).toBeUndefined()
  expect(problemWith({ file, line: 1, target: 'brokers/sqs.md#dead-letters' })).toBeUndefined()
  expect(problemWith({ file, line: 1, target: '#no-such-heading' })).toBe(
    'no heading #no-such-heading in docs/brokers.md',
  )
  expect(problemWith({ file, line: 1, target: 'nowhere.md' })).toBe('docs/nowhere.md does not exist')
})
