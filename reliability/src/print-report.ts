// Print the rows a run appended to its report file as a Markdown table (for docs/reliability.md).
//   node --import tsx reliability/src/print-report.ts [/tmp/rel-report/full.jsonl]
import { readFileSync } from 'node:fs'
import { REPORT_FILE, formatRow, type Row } from './report.ts'

const file = process.argv[2] ?? REPORT_FILE
const rows = readFileSync(file, 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => JSON.parse(line) as Row)
process.stdout.write(
  '| broker | scenario | faults | messages | lost | duplicated | recovery ms (median / max) | seconds | notes |\n' +
    '| --- | --- | --: | --: | --: | --: | --: | --: | --- |\n',
)
for (const row of rows) process.stdout.write(`${formatRow(row)}\n`)
