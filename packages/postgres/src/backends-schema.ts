import type { SchemaComponent } from './schema.ts'

/**
 * The tables of `PostgresResultBackend`: `results` holds each message's encoded result (or
 * Dramatiq's failure wrapper) until `expires_at`. Expired rows read as absent and are deleted
 * now and then by the writers (through the `expires_at` index).
 */
export const resultsSchema: SchemaComponent = {
  name: 'results',
  migrations: [
    {
      version: 1,
      description: 'results with their expiry',
      sql: (s) => `
CREATE TABLE ${s}.results (
  key text PRIMARY KEY,
  value bytea NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX results_expires_at ON ${s}.results (expires_at);
`,
    },
  ],
}

/**
 * The tables of `PostgresRateLimiterBackend`: `rate_limits` holds the counters of rate limiters
 * and barriers, `rate_limit_events` the notifications barrier waiters look for (one row per
 * notified key, counting the notifications while it lives). Both expire like Redis keys: a row
 * past `expires_at` counts as absent, and writers delete such rows now and then.
 */
export const limitsSchema: SchemaComponent = {
  name: 'limits',
  migrations: [
    {
      version: 1,
      description: 'rate-limiter counters and barrier notifications',
      sql: (s) => `
CREATE TABLE ${s}.rate_limits (
  key text PRIMARY KEY,
  value bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX rate_limits_expires_at ON ${s}.rate_limits (expires_at);
CREATE TABLE ${s}.rate_limit_events (
  key text PRIMARY KEY,
  notified bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX rate_limit_events_expires_at ON ${s}.rate_limit_events (expires_at);
`,
    },
  ],
}
