// The little global state tq has (the broker, the encoder, the registered broker plugins), kept
// once per process. A process can load @tq/core twice — tsx compiles a CommonJS app's imports to
// CJS while the `tq` CLI imports the ESM build — and both copies must see the same setBroker().
// So the state lives on globalThis under a registry symbol, not in module-level variables.
import type { Broker } from '../broker.ts'
import type { Encoder } from '../encoder.ts'
import type { BrokerPlugin } from '../global.ts'

/** What every copy of @tq/core in this process shares. */
export interface ProcessState {
  broker: Broker | undefined
  encoder: Encoder | undefined
  readonly plugins: Map<string, BrokerPlugin>
}

const KEY = Symbol.for('@tq/core.process-state')

/** The process-wide state, created by the first copy of @tq/core that asks. */
export function processState(): ProcessState {
  const holder = globalThis as { [KEY]?: ProcessState }
  holder[KEY] ??= { broker: undefined, encoder: undefined, plugins: new Map() }
  return holder[KEY]
}
