// Curated exports of group/pipeline (re-exported by src/index.ts).
export { Pipeline, pipeline } from './pipeline.ts'
export type {
  CompositionOptions,
  CompositionResultOptions,
  LastStepResult,
  PipelineStep,
  RunOptions,
  StepResult,
} from './pipeline.ts'
export { Group, group } from './group.ts'
export type { ChildResult, GroupChild, GroupResults } from './group.ts'
export { GroupCallbacks } from '../middleware/group-callbacks.ts'
export type { GroupCallbacksOptions } from '../middleware/group-callbacks.ts'
