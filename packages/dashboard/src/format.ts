/** How much of one JSON value a page shows; the rest is behind the download link. */
export const PREVIEW_CHARS = 64 * 1024

/** A JSON value pretty-printed, cut after `PREVIEW_CHARS` characters. */
export interface JsonPreview {
  text: string
  /** Characters left out (0 when the whole value is shown). */
  omitted: number
}

/** Pretty-print a JSON value (2-space indent), keeping at most `limit` characters. */
export function jsonPreview(value: unknown, limit = PREVIEW_CHARS): JsonPreview {
  let text: string
  try {
    text = JSON.stringify(value, null, 2) ?? String(value)
  } catch {
    text = String(value)
  }
  if (text.length <= limit) return { text, omitted: 0 }
  // Do not split a surrogate pair.
  let end = limit
  const code = text.charCodeAt(end - 1)
  if (code >= 0xd800 && code <= 0xdbff) end -= 1
  return { text: text.slice(0, end), omitted: text.length - end }
}

/** `2026-01-31 12:34:56.789 UTC`. */
export function formatTime(ms: number): string {
  if (!Number.isFinite(ms)) return '—'
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC')
}

/** A duration, short: `850 ms`, `12.3 s`, `4 min 5 s`, `2 h 10 min`, `3 d 4 h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—'
  const abs = Math.abs(ms)
  const sign = ms < 0 ? '-' : ''
  if (abs < 1000) return `${sign}${Math.round(abs)} ms`
  if (abs < 60_000) return `${sign}${(abs / 1000).toFixed(abs < 10_000 ? 1 : 0)} s`
  if (abs < 3_600_000) return `${sign}${Math.floor(abs / 60_000)} min ${Math.floor((abs % 60_000) / 1000)} s`
  if (abs < 86_400_000) return `${sign}${Math.floor(abs / 3_600_000)} h ${Math.floor((abs % 3_600_000) / 60_000)} min`
  return `${sign}${Math.floor(abs / 86_400_000)} d ${Math.floor((abs % 86_400_000) / 3_600_000)} h`
}

/** How long ago `ms` was, relative to `now`: `5.2 s ago`, `in 3 min 0 s`. */
export function formatAge(ms: number, now: number): string {
  const delta = now - ms
  return delta >= 0 ? `${formatDuration(delta)} ago` : `in ${formatDuration(-delta)}`
}

/** A count, with thousands separators; `—` where unknown. */
export function formatCount(value: number | undefined): string {
  return value === undefined ? '—' : value.toLocaleString('en-US')
}

/**
 * Text that may hold a connection URL (an error message), with every `scheme://user:pass@`
 * credential and every `password=`/`token=`-like query value masked.
 */
export function maskSecrets(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, '$1***@')
    .replace(/([?&][^=&\s]*(?:pass|secret|token|key)[^=&\s]*=)[^&\s]+/gi, '$1***')
}

/** A short form of a message id for tables (the whole one is in the link and its title). */
export function shortId(id: string): string {
  return id.length > 20 ? `${id.slice(0, 8)}…${id.slice(-8)}` : id
}
