import { existsSync, readFileSync } from 'node:fs'
import type { Redis } from 'ioredis'

/**
 * The tracking backend's Lua scripts (`src/lua/tracking-<name>.lua`), each run with
 * `tracking-common.lua` before it. They take no KEYS: they build their keys from the prefix.
 */
const SCRIPTS = { write: 'tracking-write', list: 'tracking-list', delete: 'tracking-delete' } as const

export type TrackingScript = keyof typeof SCRIPTS
export type TrackingArg = string | Buffer

let luaDir: URL | undefined

/** `../lua/` from `src/tracking/` (tests, the `@tq/source` condition), `../../src/lua/` from `dist/tracking/`. */
function findLuaDir(): URL {
  if (luaDir) return luaDir
  for (const candidate of ['../lua/', '../../src/lua/']) {
    const url = new URL(candidate, import.meta.url)
    if (existsSync(new URL('tracking-common.lua', url))) return (luaDir = url)
  }
  throw new Error(`@tq/redis: cannot find the tracking Lua scripts next to ${import.meta.url}`)
}

const read = (file: string): string => readFileSync(new URL(`${file}.lua`, findLuaDir()), 'utf8')

/** The command a script is defined under on a client. */
const commandName = (name: TrackingScript): string => `tqTracking${name[0]?.toUpperCase() ?? ''}${name.slice(1)}`

/**
 * Define the scripts on a client (idempotent): ioredis sends EVAL the first time on a
 * connection, EVALSHA after, and EVAL again on NOSCRIPT.
 */
export function defineTrackingScripts(client: Redis): void {
  const defined = client as unknown as Record<string, unknown>
  let common: string | undefined
  for (const name of Object.keys(SCRIPTS) as TrackingScript[]) {
    if (typeof defined[commandName(name)] === 'function') continue
    common ??= read('tracking-common')
    client.defineCommand(commandName(name), { numberOfKeys: 0, lua: `${common}\n${read(SCRIPTS[name])}` })
  }
}

type ScriptFn = (...args: TrackingArg[]) => unknown

function scriptOf(target: object, name: TrackingScript, buffers: boolean): ScriptFn {
  const fn = (target as Record<string, ScriptFn | undefined>)[commandName(name) + (buffers ? 'Buffer' : '')]
  if (!fn) throw new Error(`@tq/redis: tracking script ${name} is not defined on this client`)
  return fn
}

/** Run a script; `buffers` asks for Buffer replies (records carry raw bytes). */
export function runTrackingScript(
  client: Redis,
  name: TrackingScript,
  args: readonly TrackingArg[],
  buffers = false,
): Promise<unknown> {
  return scriptOf(client, name, buffers).call(client, ...args) as Promise<unknown>
}
