import type { Logger } from '@tq/core'

/**
 * A child of whatever logger `parent()` returns at the time of each call. The broker's logger
 * can be replaced after construction (`tq worker` gives a broker without a logger of its own the
 * CLI's), so parts built in the constructor must not keep a child of the logger it had then.
 */
export function lazyChild(parent: () => Logger, bindings: Record<string, unknown>): Logger {
  return {
    debug: (msg, meta) => parent().child(bindings).debug(msg, meta),
    info: (msg, meta) => parent().child(bindings).info(msg, meta),
    warn: (msg, meta) => parent().child(bindings).warn(msg, meta),
    error: (msg, meta) => parent().child(bindings).error(msg, meta),
    child: (more) => lazyChild(parent, { ...bindings, ...more }),
  }
}
