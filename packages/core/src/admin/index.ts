export { Admin, type AdminOptions, type QueueSummary } from './admin.ts'
