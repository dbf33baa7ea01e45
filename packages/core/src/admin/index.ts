export { Admin, type AdminOptions, type CancelResult, type QueueSummary } from './admin.ts'
