// RabbitMQ: real `tq worker` processes against 127.0.0.1:5672, queues named per run (deleted
// afterwards), connections named per run so a cut closes only this run's. The server restart
// (rabbitmqctl stop_app / start_app) disrupts every other client of the shared server: it runs
// only with TQ_FAULTS_RESTART=1.
import { expect, it } from 'vitest'
import { connectionCuts } from '../src/scenarios.ts'
import { RESTART, SIZES, budget } from '../src/sizes.ts'
import { brokerSuite } from '../src/suite.ts'
import { RabbitmqTarget, rabbitmqctl } from '../src/targets/rabbitmq.ts'

brokerSuite({
  name: 'rabbitmq',
  makeTarget: () => new RabbitmqTarget(),
  cutLabel: 'connection cut (rabbitmqctl close_connection)',
  extra: (context) => {
    // Defined only with TQ_FAULTS_RESTART=1 (not skipped: absent).
    if (RESTART)
      it(
        `RabbitMQ restart (stop_app/start_app) ${SIZES.restart.restarts}× under load, durable queues, persistent messages: 0 lost`,
        async () => {
          const ctx = await context('restart')
          const { tally, recoveries } = await connectionCuts(ctx, {
            cuts: SIZES.restart.restarts,
            messages: SIZES.restart.messages,
            drainTimeout: budget(120_000, 300_000),
            label: 'server restart (stop_app/start_app)',
            probeTimeout: 60_000,
            fault: async () => {
              await rabbitmqctl('stop_app')
              await new Promise((r) => setTimeout(r, 2000))
              await rabbitmqctl('start_app')
              await rabbitmqctl('await_startup')
              return 1
            },
          })
          expect(tally.lost).toEqual([])
          expect(tally.unexpected).toEqual([])
          expect(Math.max(...recoveries)).toBeLessThan(10_000)
        },
        budget(300_000, 900_000),
      )
  },
})
