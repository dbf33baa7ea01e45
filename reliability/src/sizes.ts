// How big each scenario is. The default (CI) sizes are a quick subset that still runs every
// scenario; `TQ_FAULTS=full` (what `pnpm test:faults` sets) selects the full sizes.
// `TQ_FAULTS_RESTART=1` adds the RabbitMQ server restart, which disrupts every other suite using
// the shared RabbitMQ at that moment: never on by default.

export const FULL = process.env['TQ_FAULTS'] === 'full'
export const RESTART = process.env['TQ_FAULTS_RESTART'] === '1'

export interface Sizes {
  /** kill -9 cycles and the messages they run over. */
  kill: { cycles: number; messages: number }
  /** Connection cuts under load, and the messages sent meanwhile. */
  cut: { cuts: number; messages: number }
  /** Graceful SIGTERMs under load, and the messages they run over. */
  sigterm: { stops: number; messages: number }
  /** RabbitMQ stop_app/start_app cycles (only with TQ_FAULTS_RESTART=1), and the messages. */
  restart: { restarts: number; messages: number }
}

export const SIZES: Sizes = FULL
  ? {
      kill: { cycles: 20, messages: 20_000 },
      cut: { cuts: 10, messages: 20_000 },
      sigterm: { stops: 10, messages: 10_000 },
      restart: { restarts: 3, messages: 10_000 },
    }
  : {
      kill: { cycles: 3, messages: 3000 },
      cut: { cuts: 2, messages: 2000 },
      sigterm: { stops: 2, messages: 1000 },
      restart: { restarts: 1, messages: 2000 },
    }

/** Test budget in ms: generous for full runs, tight enough for CI. */
export const budget = (quickMs: number, fullMs: number): number => (FULL ? fullMs : quickMs)
