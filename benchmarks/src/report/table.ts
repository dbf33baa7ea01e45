// Markdown tables laid out the way Prettier lays them out (padded cells), so the docs stay formatted.

/** A Markdown table laid out the way Prettier lays it out (padded cells), so the docs stay formatted. */
export function table(
  header: string[],
  rows: string[][],
  align: Array<'l' | 'r'> = header.map((_, i) => (i === 0 ? 'l' : 'r')),
): string {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const pad = (cell: string, i: number): string =>
    align[i] === 'r' ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number)
  const rule = widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w)))
  return [header.map(pad), rule, ...rows.map((r) => r.map(pad))].map((cells) => `| ${cells.join(' | ')} |`).join('\n')
}

const finite = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v)

/** A whole number with thousands separators, or — */
export const int = (v: number | undefined): string => (finite(v) ? Math.round(v).toLocaleString('en-US') : '—')
/** A ratio as 1.23×, or — */
export const times = (r: number | undefined): string => (finite(r) ? `${r.toFixed(2)}×` : '—')
/** A ratio as a percentage, or — */
export const pct = (r: number | undefined): string => (finite(r) ? `${Math.round(r * 100)} %` : '—')
/** Milliseconds with two decimals, or — */
export const ms = (v: number | undefined): string => (finite(v) ? v.toFixed(2) : '—')
/** Megabytes, whole, or — */
export const mb = (v: number | undefined): string => (finite(v) ? v.toFixed(0) : '—')
