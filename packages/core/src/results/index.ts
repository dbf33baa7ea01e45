// Curated exports of results (re-exported by src/index.ts).
export { DEFAULT_RESULT_TIMEOUT, FAILURE_MARKER, Missing, ResultBackendBase, isStoredFailure } from './backend.ts'
export type { ResultBackend, ResultBackendOptions, ResultGetOptions, StoredFailure } from './backend.ts'
export { StubResultBackend } from './stub.ts'
export { Results } from '../middleware/results.ts'
export type { ResultsOptions } from '../middleware/results.ts'
