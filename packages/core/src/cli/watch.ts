import { existsSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs'
import { extname, join, resolve, sep } from 'node:path'

/** File extensions whose changes trigger a reload. */
export const WATCHED_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts', '.json'] as const

export interface TreeWatcherOptions {
  /** Called once per burst of changes, after `debounce` ms of quiet, with the changed files. */
  onChange: (files: string[]) => void
  /** Milliseconds of quiet before `onChange` fires (default 200). */
  debounce?: number
  extensions?: readonly string[]
  /** A directory could not be watched (it is skipped). */
  onError?: (dir: string, error: unknown) => void
}

export interface TreeWatcher {
  /** Directories currently watched. */
  readonly directories: readonly string[]
  close(): void
}

/** `node_modules` and dot-directories (`.git`, `.turbo`, …) are never watched. */
export function isIgnoredDirectory(name: string): boolean {
  return name === 'node_modules' || name.startsWith('.')
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/**
 * Watch a directory tree for changes to source files. One non-recursive `fs.watch` per
 * directory, skipping `node_modules` and dot-directories; directories created later are picked
 * up. (Node 20's `fs.watch(dir, { recursive: true })` works on Linux but puts an inotify watch
 * on every file, `node_modules` included, which exhausts the default watch limit in real
 * projects.)
 */
export function watchTree(root: string, options: TreeWatcherOptions): TreeWatcher {
  const debounce = options.debounce ?? 200
  const extensions = new Set(options.extensions ?? WATCHED_EXTENSIONS)
  const watchers = new Map<string, FSWatcher>()
  const pending = new Set<string>()
  let timer: NodeJS.Timeout | undefined
  let closed = false

  const matches = (file: string): boolean => extensions.has(extname(file))

  const schedule = (file: string): void => {
    if (closed) return
    pending.add(file)
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      const files = [...pending]
      pending.clear()
      if (!closed) options.onChange(files)
    }, debounce)
  }

  const removeDir = (dir: string): void => {
    for (const [path, w] of watchers) {
      if (path === dir || path.startsWith(dir + sep)) {
        w.close()
        watchers.delete(path)
      }
    }
  }

  /** Watch `dir` and its subdirectories; returns source files found (for directories that appear later). */
  const addDir = (dir: string, found: string[]): void => {
    if (closed || watchers.has(dir)) return
    let watcher: FSWatcher
    try {
      watcher = watch(dir, { persistent: true }, (_event, filename) => onEvent(dir, filename))
    } catch (error) {
      options.onError?.(dir, error)
      return
    }
    watcher.on('error', () => removeDir(dir))
    watchers.set(dir, watcher)
    let entries
    try {
      entries = readdirSync(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const entry of entries) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) {
        if (!isIgnoredDirectory(entry.name)) addDir(path, found)
      } else if (matches(entry.name)) {
        found.push(path)
      }
    }
  }

  const onEvent = (dir: string, filename: string | Buffer | null): void => {
    if (closed) return
    if (filename === null) {
      // Some platforms give no name; treat it as a change somewhere in dir.
      schedule(dir)
      return
    }
    const name = filename.toString()
    const path = join(dir, name)
    if (watchers.has(path) && !existsSync(path)) {
      removeDir(path)
      return
    }
    if (!watchers.has(path) && !isIgnoredDirectory(name) && isDirectory(path)) {
      // A new directory (or one moved in): watch it, and count the source files it brought.
      const found: string[] = []
      addDir(path, found)
      for (const file of found) schedule(file)
      return
    }
    if (matches(name)) schedule(path)
  }

  addDir(resolve(root), [])

  return {
    get directories() {
      return [...watchers.keys()]
    },
    close() {
      closed = true
      if (timer) clearTimeout(timer)
      for (const w of watchers.values()) w.close()
      watchers.clear()
    },
  }
}
