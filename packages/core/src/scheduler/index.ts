export { scheduledMessageId, type MissedPolicy, type OverlapPolicy, type ScheduleOptions } from './schedule.ts'
export {
  Scheduler,
  type ScheduleInfo,
  type SchedulerClock,
  type SchedulerOptions,
  type TickResult,
} from './scheduler.ts'
