export { OpenTelemetry, TRACE_CONTEXT_OPTION, TRACE_CONTEXT_WIRE_OPTION, messagingSystem } from './opentelemetry.ts'
export type { OpenTelemetryOptions } from './opentelemetry.ts'
