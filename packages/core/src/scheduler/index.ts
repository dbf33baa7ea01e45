export type { MissedPolicy, OverlapPolicy, ScheduleOptions } from './schedule.ts'
export {
  Scheduler,
  type ScheduleInfo,
  type SchedulerClock,
  type SchedulerOptions,
  type TickResult,
} from './scheduler.ts'
