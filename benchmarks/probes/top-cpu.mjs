// Self time per function of a CPU profile (worker.mjs cpu, or a --cpu-prof file), top K.
//   node benchmarks/probes/top-cpu.mjs profile.json [K]
import { readFileSync } from 'node:fs'

const [file, k = '40'] = process.argv.slice(2)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const hits = new Map()
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1)
const self = new Map()
let total = 0
for (const [id, count] of hits) {
  const frame = byId.get(id).callFrame
  const key = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + count)
  total += count
}
for (const [key, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(k))) {
  console.log(`${((100 * count) / total).toFixed(1).padStart(5)} % ${key}`)
}
