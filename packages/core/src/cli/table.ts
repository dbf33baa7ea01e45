/** Plain-text output of the admin commands: aligned tables, key/value lists, times and ages. */

export interface Column {
  header: string
  /** `right` for numbers (default `left`). */
  align?: 'left' | 'right'
}

/**
 * Rows under a header, each column as wide as its widest cell, two spaces apart; the last
 * column is not padded (no trailing spaces). Ends with a newline.
 */
export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((column, i) => Math.max(column.header.length, ...rows.map((row) => (row[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    columns
      .map((column, i) => {
        const cell = cells[i] ?? ''
        const width = widths[i] ?? 0
        if (column.align === 'right') return cell.padStart(width)
        return i === columns.length - 1 ? cell : cell.padEnd(width)
      })
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.header)), ...rows.map(line)].map((l) => `${l}\n`).join('')
}

/** `key: value` lines with the values aligned; a multi-line value is indented under its first line. */
export function formatKeyValues(entries: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...entries.map(([key]) => key.length + 1))
  return entries
    .map(([key, value]) => {
      const [first = '', ...rest] = value.split('\n')
      const pad = ' '.repeat(width + 2)
      return `${`${key}:`.padEnd(width)}  ${first}\n${rest.map((l) => `${pad}${l}\n`).join('')}`
    })
    .join('')
}

/** A Unix-ms time as ISO 8601 (UTC), or `-`. */
export function formatTime(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  return new Date(ms).toISOString()
}

/** How long ago `ms` was: `3s ago`, `4m ago`, `2h ago`, `5d ago` (`0s ago` for a time in the future). */
export function formatAge(ms: number, now: number = Date.now()): string {
  const seconds = Math.max(0, Math.floor((now - ms) / 1000))
  if (seconds < 60) return `${seconds}s ago`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m ago`
  const hours = Math.floor(minutes / 60)
  if (hours < 48) return `${hours}h ago`
  return `${Math.floor(hours / 24)}d ago`
}

/**
 * JSON for `--json`: indented, byte arrays as base64 strings, bigints as strings. Ends with a
 * newline.
 */
export function formatJsonDocument(value: unknown): string {
  const text = JSON.stringify(
    value,
    function (this: Record<string, unknown>, key: string, v: unknown) {
      // The holder's own value: a Buffer has already been through its `toJSON()` in `v`.
      const raw = this[key]
      if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64')
      if (typeof v === 'bigint') return v.toString()
      return v
    },
    2,
  )
  return `${text ?? 'null'}\n`
}

/** A value on one line, as JSON (`-` when undefined). */
export function inlineJson(value: unknown): string {
  if (value === undefined) return '-'
  try {
    return JSON.stringify(value) ?? '-'
  } catch {
    return '(not JSON)'
  }
}
