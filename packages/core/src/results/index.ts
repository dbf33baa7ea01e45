// Curated exports of results (re-exported by src/index.ts).
export type { ResultBackend, ResultGetOptions } from './backend.ts'
