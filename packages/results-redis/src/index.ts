export { RedisResultBackend } from './redis-result-backend.ts'
export type { RedisResultBackendOptions } from './redis-result-backend.ts'
export { classifyRedisError } from './classify-error.ts'
