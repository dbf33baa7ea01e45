export { DURATION_BUCKETS, Prometheus } from './prometheus.ts'
export type { PrometheusOptions } from './prometheus.ts'
export { queueSizeReader } from './queue-size.ts'
export type { QueueSizeCapable, QueueSizeReader } from './queue-size.ts'
export { aggregateMetrics, serveAggregatedMetrics, serveMetrics } from './serve.ts'
export type {
  MetricsServer,
  MetricsServerOptions,
  ServeAggregatedMetricsOptions,
  ServeMetricsOptions,
} from './serve.ts'
