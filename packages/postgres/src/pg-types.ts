// The parts of node-postgres (`pg`) tq uses, as structural types: a user's `Pool` (or a pool of
// another make with the same shape) fits, and the package's types do not need `@types/pg`.

/** A query's outcome as node-postgres returns it. */
export interface PgResult<R = Record<string, unknown>> {
  rows: R[]
  rowCount: number | null
}

/** A query with a name, which node-postgres prepares once per connection. */
export interface PgQueryConfig {
  name?: string
  text: string
  values?: readonly unknown[]
}

/** Something that runs queries: a `Pool`, a `Client`, a checked-out `PoolClient`. */
export interface PgQueryable {
  query<R = Record<string, unknown>>(config: PgQueryConfig): Promise<PgResult<R>>
  query<R = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<PgResult<R>>
}

/** A notification delivered to a listening connection. */
export interface PgNotification {
  channel: string
  payload?: string | undefined
}

/** A connection checked out of a pool. */
export interface PgPoolClient extends PgQueryable {
  /** Give it back; with `true` (or an error) the pool destroys it instead. */
  release(destroy?: boolean | Error): void
  on(event: 'notification', listener: (message: PgNotification) => void): unknown
  on(event: 'error', listener: (error: Error) => void): unknown
  on(event: 'end', listener: () => void): unknown
  removeAllListeners?(event?: string): unknown
}

/** A node-postgres `Pool`. */
export interface PgPool extends PgQueryable {
  connect(): Promise<PgPoolClient>
  end(): Promise<void>
  on(event: 'error', listener: (error: Error) => void): unknown
  readonly totalCount?: number
}
