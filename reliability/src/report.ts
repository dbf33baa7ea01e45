// The measured table: each scenario adds one row; rows are printed as they come and appended,
// as JSON lines, to TQ_FAULTS_REPORT (default /tmp/rel-report/<mode>.jsonl).
import { appendFileSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { FULL } from './sizes.ts'

export interface Row {
  broker: string
  scenario: string
  /** Faults injected (kills, cuts, SIGTERMs, restarts, hostile payloads). */
  faults: number
  /** Messages sent (distinct ids). */
  messages: number
  lost: number
  /** Extra runs (a message run twice counts 1). */
  duplicated: number
  /** Cut → next message processed, in ms: median and worst (connection cuts and restarts). */
  recoveryMs?: { median: number; max: number }
  /** Wall time of the scenario in seconds. */
  seconds: number
  notes?: string
}

export const REPORT_FILE = process.env['TQ_FAULTS_REPORT'] ?? `/tmp/rel-report/${FULL ? 'full' : 'quick'}.jsonl`

export function median(values: readonly number[]): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2
    ? (sorted[mid] as number)
    : Math.round(((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2)
}

export function formatRow(row: Row): string {
  const recovery = row.recoveryMs ? `${row.recoveryMs.median} / ${row.recoveryMs.max}` : '—'
  return `| ${row.broker} | ${row.scenario} | ${row.faults} | ${row.messages} | ${row.lost} | ${row.duplicated} | ${recovery} | ${row.seconds.toFixed(1)} | ${row.notes ?? ''} |`
}

export function report(row: Row): void {
  const line = JSON.stringify({ ...row, at: new Date().toISOString(), mode: FULL ? 'full' : 'quick' })
  try {
    mkdirSync(dirname(REPORT_FILE), { recursive: true })
    appendFileSync(REPORT_FILE, `${line}\n`)
  } catch {
    // the report file is a convenience; the row is printed anyway
  }
  process.stdout.write(`[faults] ${formatRow(row)}\n`)
}
