import { createLogger, type LogEntry, type Logger } from '../logger.ts'

export const LogFormat = { PRETTY: 'pretty', JSON: 'json' } as const
export type LogFormat = (typeof LogFormat)[keyof typeof LogFormat]

export interface CliLoggerOptions {
  format: LogFormat
  /** Write debug entries too; in pretty format, also the stack of a non-error entry's `err`. */
  verbose: boolean
  /** Where each formatted line goes (a trailing newline is included). Default: stderr. */
  write?: (line: string) => void
  /** Bound to every entry: which process writes (`supervisor`, `worker-1`) and its pid. */
  bindings?: Record<string, unknown>
}

/**
 * The logger the CLI writes through. `pretty`: one human line per entry
 * (`<time> <LEVEL> <process>[<pid>] <component>: <msg> key=value …`), followed by the indented
 * stack of the entry's `err` for errors (for every level when verbose). `json`: one JSON object
 * per line with `level`, `time`, `msg` and `meta`.
 */
export function createCliLogger(options: CliLoggerOptions): Logger {
  const write = options.write ?? ((line: string) => void process.stderr.write(line))
  const format =
    options.format === LogFormat.JSON
      ? formatJson
      : (e: LogEntry, t: Date) => formatPretty(e, t, options.verbose || e.level === 'error')
  return createLogger((entry) => write(format(entry, new Date())), {
    level: options.verbose ? 'debug' : 'info',
    bindings: options.bindings ?? {},
  })
}

export function formatJson(entry: LogEntry, time: Date): string {
  return `${safeStringify({ level: entry.level, time: time.toISOString(), msg: entry.msg, meta: entry.meta })}\n`
}

const HIDDEN = new Set(['process', 'pid', 'component'])

export function formatPretty(entry: LogEntry, time: Date, withStack = false): string {
  const { meta } = entry
  const who = typeof meta['process'] === 'string' ? meta['process'] : 'tq'
  const pid = typeof meta['pid'] === 'number' ? `[${meta['pid']}]` : ''
  const component = typeof meta['component'] === 'string' ? `${meta['component']}: ` : ''
  let line = `${time.toISOString()} ${entry.level.toUpperCase().padEnd(5)} ${who}${pid} ${component}${entry.msg}`
  let stack: string | undefined
  for (const [key, value] of Object.entries(meta)) {
    if (HIDDEN.has(key) || value === undefined) continue
    if (key === 'err' && typeof value === 'object' && value !== null) {
      const err = value as { type?: unknown; message?: unknown; stack?: unknown; code?: unknown }
      const type = typeof err.type === 'string' ? err.type : 'Error'
      line += ` err=${quote(`${type}: ${String(err.message)}`)}`
      if (typeof err.stack === 'string') stack = err.stack
      continue
    }
    line += ` ${key}=${formatValue(value)}`
  }
  if (withStack && stack) line += `\n${stack.replace(/^/gm, '    ')}`
  return `${line}\n`
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return quote(value)
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' && !/[\s,"]/.test(v)))
    return value.join(',') || '[]'
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value)
  return safeStringify(value)
}

function quote(text: string): string {
  return text !== '' && !/[\s"=]/.test(text) ? text : JSON.stringify(text)
}

/** JSON.stringify that survives cycles, bigints and errors. */
export function safeStringify(value: unknown): string {
  const seen = new WeakSet<object>()
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return v.toString()
    if (v instanceof Error) return { type: v.name, message: v.message, stack: v.stack }
    if (typeof v === 'object' && v !== null) {
      if (seen.has(v)) return '[Circular]'
      seen.add(v)
    }
    return v
  })
}
