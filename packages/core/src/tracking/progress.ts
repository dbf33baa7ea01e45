import { InvalidArgumentError } from '../errors.ts'
import type { MessageProxy } from '../message-proxy.ts'
import { currentMessage } from '../middleware/current-message.ts'

/** Largest progress value, as JSON. */
const MAX_PROGRESS_BYTES = 4096

/** Where a running message's progress goes (`MessageProxy.progressSink`, set by `Tracking`). */
export interface ProgressSink {
  reportProgress(proxy: MessageProxy, value: unknown): void
}

/**
 * Report how far the running actor got: a number from 0 to 1, or a small JSON object or array
 * (at most 4 KiB as JSON), e.g. `{ done: 40, of: 100 }`. Tracking stores the last value with the
 * message; `admin.message(id)` and `message.getProgress()` read it. Without the `Tracking`
 * middleware it goes nowhere. Throws `InvalidArgumentError` outside an actor run by a worker,
 * or for another kind of value.
 *
 * ```ts
 * const importRows = actor('import_rows', async (rows: string[]) => {
 *   for (const [i, row] of rows.entries()) {
 *     await store(row)
 *     setProgress((i + 1) / rows.length)
 *   }
 * })
 * ```
 */
export function setProgress(value: number | Record<string, unknown> | unknown[]): void {
  const proxy = currentMessage()
  if (!proxy) throw new InvalidArgumentError('setProgress() reports the progress of an actor: call it inside one')
  proxy.progressSink?.reportProgress(proxy, checkProgress(value))
}

function checkProgress(value: unknown): unknown {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0 && value <= 1) return value
    throw new InvalidArgumentError(`A progress number is from 0 to 1, got ${String(value)}`)
  }
  if (typeof value === 'object' && value !== null) {
    let json: string | undefined
    try {
      json = JSON.stringify(value)
    } catch (error) {
      throw new InvalidArgumentError(`A progress value must be JSON: ${String(error)}`)
    }
    if (json !== undefined && Buffer.byteLength(json) <= MAX_PROGRESS_BYTES) return JSON.parse(json) as unknown
    throw new InvalidArgumentError(`A progress value is at most ${MAX_PROGRESS_BYTES} bytes as JSON`)
  }
  throw new InvalidArgumentError(`Progress is a number from 0 to 1 or a small JSON object, got ${typeof value}`)
}
