/**
 * The logger tq writes to. Shaped so a pino logger fits as it is; the default writes nothing.
 * Every entry carries `component` ("worker", "broker", "middleware", …) and, where one is at
 * hand, `messageId`.
 */
export interface Logger {
  debug(msg: string, meta?: Record<string, unknown>): void
  info(msg: string, meta?: Record<string, unknown>): void
  warn(msg: string, meta?: Record<string, unknown>): void
  error(msg: string, meta?: Record<string, unknown>): void
  child(bindings: Record<string, unknown>): Logger
}

const noop = (): void => {}

/** A logger that discards everything. */
export const noopLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => noopLogger,
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export interface LogEntry {
  level: LogLevel
  msg: string
  meta: Record<string, unknown>
}

/**
 * A logger that hands each entry, with its bindings merged in, to `sink`. The CLI builds its
 * pretty and JSON output on it; tests use it to capture entries.
 */
export function createLogger(
  sink: (entry: LogEntry) => void,
  options: { level?: LogLevel; bindings?: Record<string, unknown> } = {},
): Logger {
  const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }
  const min = order[options.level ?? 'debug']
  const bindings = options.bindings ?? {}
  const emit =
    (level: LogLevel) =>
    (msg: string, meta?: Record<string, unknown>): void => {
      if (order[level] < min) return
      sink({ level, msg, meta: { ...bindings, ...meta } })
    }
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (more) => createLogger(sink, { ...options, bindings: { ...bindings, ...more } }),
  }
}

/** The message and stack of an error, for log metadata. */
export function errorMeta(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    const meta: Record<string, unknown> = { err: { type: error.name, message: error.message, stack: error.stack } }
    const code = (error as { code?: unknown }).code
    if (code !== undefined) (meta['err'] as Record<string, unknown>)['code'] = code
    return meta
  }
  return { err: { message: String(error) } }
}
