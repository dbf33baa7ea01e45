// Bytes allocated per function of a sampling heap profile (worker.mjs heap), top K.
//   node benchmarks/probes/top-heap.mjs profile.json [K]
import { readFileSync } from 'node:fs'

const [file, k = '30'] = process.argv.slice(2)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const self = new Map()
let total = 0
const walk = (node) => {
  const frame = node.callFrame
  const key = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`
  total += node.selfSize
  self.set(key, (self.get(key) ?? 0) + node.selfSize)
  for (const child of node.children) walk(child)
}
walk(profile.head)
console.log(`total ${(total / 1e6).toFixed(1)} MB`)
for (const [key, bytes] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(k))) {
  console.log(`${((100 * bytes) / total).toFixed(1).padStart(5)} % ${key}`)
}
