export {
  DEFAULT_PAGE_SIZE,
  FINAL_STATES,
  MAX_PAGE_SIZE,
  MESSAGE_STATES,
  type MessageState,
  type TrackedAttempt,
  type TrackedError,
  type TrackedMessage,
  type TrackingBackend,
  type TrackingPage,
  type TrackingQuery,
  type TrackingUpdate,
} from './backend.ts'
export { StubTrackingBackend } from './stub.ts'
export { Tracking, type TrackingOptions } from './middleware.ts'
export { setProgress } from './progress.ts'
