// PostgreSQL: real `tq worker` processes against 127.0.0.1:5432 (database test), a schema per
// run, heartbeatTimeout 2 s (a killed worker's claims come back within about 2.25 s: its
// heartbeat 2 s old, then the next 250 ms heartbeat tick of a live worker). The server restart
// disrupts every other client of the shared server: it runs only with TQ_FAULTS_RESTART=1.
import { expect, it } from 'vitest'
import { connectionCuts } from '../src/scenarios.ts'
import { RESTART, SIZES, budget } from '../src/sizes.ts'
import { brokerSuite } from '../src/suite.ts'
import { PostgresTarget, restartPostgres } from '../src/targets/postgres.ts'

brokerSuite({
  name: 'postgres',
  makeTarget: (ledger) => new PostgresTarget(ledger),
  cutLabel: 'connection cut (pg_terminate_backend of the tq connections)',
  extra: (context) => {
    if (RESTART)
      it(
        `PostgreSQL restart ${SIZES.restart.restarts}× under load: 0 lost`,
        async () => {
          const ctx = await context('restart')
          const { tally, recoveries } = await connectionCuts(ctx, {
            cuts: SIZES.restart.restarts,
            messages: SIZES.restart.messages,
            drainTimeout: budget(120_000, 300_000),
            label: 'server restart (pg_ctlcluster restart)',
            probeTimeout: 60_000,
            fault: async () => {
              await restartPostgres()
              return 1
            },
          })
          expect(tally.lost).toEqual([])
          expect(tally.unexpected).toEqual([])
          expect(Math.max(...recoveries)).toBeLessThan(15_000)
        },
        budget(300_000, 900_000),
      )
  },
})
