// The two tiers of tests. A package's unit tests need no server: every test of core, prometheus
// and opentelemetry, and the `*.unit.test.ts` files of the packages whose other tests talk to
// Redis, RabbitMQ or SQS. `pnpm test:unit` (TQ_TEST_TIER=unit) runs only those, so a laptop
// without the servers still runs them; every other run (`pnpm test`, CI) runs both tiers.

/** The files of a package whose other tests need a server: all of them, or only the unit ones. */
export function testFiles(): string[] {
  return process.env['TQ_TEST_TIER'] === 'unit' ? ['test/**/*.unit.test.ts'] : ['test/**/*.test.ts']
}
