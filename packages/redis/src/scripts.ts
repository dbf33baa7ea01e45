import { existsSync, readFileSync } from 'node:fs'
import type { Redis } from 'ioredis'

/**
 * The Lua scripts in `src/lua/` (`<file>.lua`), with how many of their arguments are KEYS
 * (`null`: the caller says, for scripts with a variable number of keys).
 */
export const SCRIPTS = {
  enqueue: { file: 'enqueue', keys: 3 },
  fetch: { file: 'fetch', keys: 4 },
  ack: { file: 'ack', keys: 3 },
  nack: { file: 'nack', keys: 5 },
  requeue: { file: 'requeue', keys: 4 },
  promote: { file: 'promote', keys: 5 },
  reconcile: { file: 'reconcile', keys: 4 },
  purge: { file: 'purge', keys: 6 },
  qsize: { file: 'qsize', keys: 5 },
  queueCounts: { file: 'queue-counts', keys: 4 },
  maintenance: { file: 'maintenance', keys: 5 },
  limiterIncr: { file: 'limiter-incr', keys: 1 },
  limiterDecr: { file: 'limiter-decr', keys: 1 },
  limiterIncrAndSum: { file: 'limiter-incr-and-sum', keys: null },
  limiterNotify: { file: 'limiter-notify', keys: 1 },
} as const satisfies Record<string, { file: string; keys: number | null }>

export type ScriptName = keyof typeof SCRIPTS
export type ScriptArg = string | Buffer | number

/**
 * How the broker's parts run a script: `keys` and `args` without the heartbeat key and
 * arguments every script takes first (the broker adds them), errors classified.
 */
export type RunScript = (name: ScriptName, keys: ScriptArg[], args: ScriptArg[], buffers?: boolean) => Promise<unknown>

let luaDir: URL | undefined
const sources = new Map<ScriptName, string>()

/**
 * The folder holding the `.lua` files: `./lua/` next to this module when it runs from `src/`
 * (tests, the `@tq/source` condition), `../src/lua/` when it runs from `dist/` (the published
 * package ships `src/` too).
 */
function findLuaDir(): URL {
  if (luaDir) return luaDir
  for (const candidate of ['./lua/', '../src/lua/']) {
    const url = new URL(candidate, import.meta.url)
    if (existsSync(new URL('fetch.lua', url))) return (luaDir = url)
  }
  throw new Error(`@tq/redis: cannot find its Lua scripts next to ${import.meta.url}`)
}

/** The source of one script (read once). */
export function scriptSource(name: ScriptName): string {
  let source = sources.get(name)
  if (source === undefined) {
    source = readFileSync(new URL(`${SCRIPTS[name].file}.lua`, findLuaDir()), 'utf8')
    sources.set(name, source)
  }
  return source
}

/** The client-side command name a script is defined under (prefixed so it clashes with nothing). */
export function commandName(name: ScriptName): string {
  return `tq${name[0]?.toUpperCase() ?? ''}${name.slice(1)}`
}

/**
 * Define every script on a client with `defineCommand`: ioredis then sends EVALSHA and falls
 * back to EVAL on NOSCRIPT (after a server restart or SCRIPT FLUSH). Idempotent.
 */
export function defineScripts(client: Redis): void {
  const defined = client as unknown as Record<string, unknown>
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
    if (typeof defined[commandName(name)] === 'function') continue
    const keys = SCRIPTS[name].keys
    client.defineCommand(
      commandName(name),
      keys === null ? { lua: scriptSource(name) } : { numberOfKeys: keys, lua: scriptSource(name) },
    )
  }
}

type ScriptFn = (...args: ScriptArg[]) => Promise<unknown>

/** Run a script with KEYS followed by ARGV. `buffers` asks for Buffer replies (raw payload bytes). */
export function runScript(
  client: Redis,
  name: ScriptName,
  keys: readonly ScriptArg[],
  args: readonly ScriptArg[],
  buffers = false,
): Promise<unknown> {
  const fn = (client as unknown as Record<string, ScriptFn | undefined>)[commandName(name) + (buffers ? 'Buffer' : '')]
  if (!fn) throw new Error(`@tq/redis: script ${name} is not defined on this client`)
  if (SCRIPTS[name].keys === null) return fn.call(client, keys.length, ...keys, ...args)
  return fn.call(client, ...keys, ...args)
}
