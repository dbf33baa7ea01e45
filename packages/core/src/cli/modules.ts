import { statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { InvalidArgumentError } from '../errors.ts'

/** Extensions tried, in order, for a module given without one (`tq worker tasks`). */
export const MODULE_EXTENSIONS = ['.ts', '.mts', '.js', '.mjs', '.cjs', '.cts'] as const

const HAS_EXTENSION = /\.(?:[cm]?[jt]s|tsx|jsx)$/

export interface ResolvedModule {
  /** What the user wrote. */
  spec: string
  /** The URL to `import()`. */
  url: string
  /** A path or package name for messages. */
  display: string
}

/** True when `spec` can only be a file (relative, absolute, or with a script extension). */
export function isPathLike(spec: string): boolean {
  return spec.startsWith('./') || spec.startsWith('../') || spec === '.' || isAbsolute(spec) || HAS_EXTENSION.test(spec)
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile()
  } catch {
    return false
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** The file `spec` names in `dir`: as is, with an extension added, or a directory's `index.*`. */
function findFile(dir: string, spec: string): string | undefined {
  const base = resolve(dir, spec)
  if (isFile(base)) return base
  if (!HAS_EXTENSION.test(base)) {
    for (const ext of MODULE_EXTENSIONS) if (isFile(base + ext)) return base + ext
  }
  if (isDirectory(base)) {
    for (const ext of MODULE_EXTENSIONS) if (isFile(join(base, `index${ext}`))) return join(base, `index${ext}`)
  }
  return undefined
}

let parentAwareResolve: boolean | undefined

/**
 * Whether `import.meta.resolve(spec, parent)` honours `parent` (Node 20 needs
 * `--experimental-import-meta-resolve`, which the supervisor passes to its worker processes
 * when the running Node knows it).
 */
function canResolveFromParent(): boolean {
  if (parentAwareResolve === undefined) {
    try {
      parentAwareResolve = import.meta.resolve('./probe.js', 'file:///tq-probe/') === 'file:///tq-probe/probe.js'
    } catch {
      parentAwareResolve = false
    }
  }
  return parentAwareResolve
}

/** Resolve a bare package specifier as an `import` from `dir` would; `undefined` when it is not found. */
export function resolvePackage(dir: string, spec: string): string | undefined {
  const parent = pathToFileURL(join(dir, 'noop.js')).href
  if (canResolveFromParent()) {
    try {
      return import.meta.resolve(spec, parent)
    } catch {
      return undefined
    }
  }
  // Fallback: CommonJS resolution (misses packages that export only an `import` condition).
  try {
    return pathToFileURL(createRequire(parent).resolve(spec)).href
  } catch {
    return undefined
  }
}

/**
 * Find a module the way `tq worker` does. A path (`./tasks.ts`, `/abs/app.js`, `src/app.mjs`)
 * is looked up in each `paths` directory in order; a name without an extension (`tasks`) is
 * tried as a file there first (`tasks.ts`, `tasks.js`, …, `tasks/index.*`) and then as a
 * package. Throws `InvalidArgumentError` when nothing matches.
 */
export function resolveModule(spec: string, paths: readonly string[]): ResolvedModule {
  const dirs = paths.length > 0 ? paths : [process.cwd()]
  for (const dir of dirs) {
    const file = findFile(dir, spec)
    if (file) return { spec, url: pathToFileURL(file).href, display: file }
  }
  if (!isPathLike(spec)) {
    for (const dir of dirs) {
      const url = resolvePackage(dir, spec)
      if (url) return { spec, url, display: url.startsWith('file:') ? fileURLToPath(url) : url }
    }
  }
  const where = dirs.map((d) => resolve(d)).join(', ')
  throw new InvalidArgumentError(
    isPathLike(spec)
      ? `Cannot find module ${JSON.stringify(spec)} (looked in ${where})`
      : `Cannot find module ${JSON.stringify(spec)}: no such file (with ${MODULE_EXTENSIONS.join(', ')}) in ${where}, and no such package`,
  )
}
