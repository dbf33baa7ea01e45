export {
  createDashboard,
  normalizeBasePath,
  type DashboardAction,
  type DashboardHandler,
  type DashboardOptions,
} from './dashboard.ts'
export { serveDashboard, type DashboardServer, type ServeDashboardOptions } from './serve.ts'
export { toNodeListener, type NodeListener } from './node.ts'
