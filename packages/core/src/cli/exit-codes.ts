/**
 * The exit codes of `tq`. They follow Dramatiq's CLI (which also uses 4 for PID-file problems;
 * tq has no PID file).
 */
export const ExitCode = {
  /** Clean shutdown. */
  OK: 0,
  /** Unclean: a second signal, a worker process killed at the shutdown deadline, a failed stop. */
  UNCLEAN: 1,
  /**
   * An admin command (`tq queues`, `tq retry`, …) failed: the broker or tracking could not be
   * reached, the message is unknown, there is no tracking. The same number as `UNCLEAN`.
   */
  FAILED: 1,
  /** Bad arguments, or a module failed to import (or set no broker). */
  USAGE: 2,
  /** The broker connection failed at startup (`BrokerConnectionError`). */
  BROKER_CONNECTION: 3,
} as const

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** The text of the exit-code table, for `--help` and error lines. */
export const EXIT_CODE_HELP = `Exit codes:
  0  clean shutdown; for the admin commands (queues, messages, …): done
  1  unclean shutdown (second signal, a worker process killed at the shutdown deadline);
     for the admin commands: it failed (broker or tracking unreachable, unknown message, no tracking)
  2  bad arguments, or a module failed to import
  3  broker connection failed at startup (tq worker)`

export function describeExitCode(code: number): string {
  switch (code) {
    case ExitCode.OK:
      return 'clean shutdown'
    case ExitCode.UNCLEAN:
      return 'unclean shutdown'
    case ExitCode.USAGE:
      return 'a module failed to import or the arguments are invalid'
    case ExitCode.BROKER_CONNECTION:
      return 'the broker connection failed at startup'
    default:
      return `exit code ${code}`
  }
}
