export {
  DEFAULT_PAGE_SIZE,
  FINAL_STATES,
  MAX_PAGE_SIZE,
  MESSAGE_STATES,
  type CancelMode,
  type CancelNotice,
  type CancelSubscription,
  type MessageState,
  type TrackedAttempt,
  type TrackedError,
  type TrackedMessage,
  type TrackingBackend,
  type TrackingPage,
  type TrackingQuery,
  type ScheduleMark,
  type ThroughputCount,
  type TrackingUpdate,
  type UniqueClaim,
  type WorkerHeartbeat,
} from './backend.ts'
export { StubTrackingBackend } from './stub.ts'
export { Tracking, type TrackingOptions } from './middleware.ts'
export { setProgress } from './progress.ts'
