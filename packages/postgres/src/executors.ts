import { InvalidArgumentError, type TransactionExecutor } from '@tq/core'

// Executors: an open transaction of the application's own client library, as tq runs its one
// enqueue statement in it. Each adapter reads the library's object by its shape; none imports
// the library, so `@tq/postgres` depends on none of them.

type Rows = ReadonlyArray<Record<string, unknown>>

function isObject(value: unknown): value is Record<string, unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null
}

function need(kind: string, value: unknown, method: string, hint: string): Record<string, unknown> {
  if (!isObject(value) || typeof value[method] !== 'function') {
    throw new InvalidArgumentError(`${kind} expects ${hint}; got ${value === null ? 'null' : typeof value}`)
  }
  return value
}

const escapeText = (s: string): string => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`

/**
 * A JavaScript array as PostgreSQL's array literal (`{…}`): text elements quoted, bytes as `\x…`
 * hex, numbers as they print. For libraries that do not pass arrays through to the server as
 * arrays (Knex expands them into lists); the statements cast the parameter (`$1::bytea[]`).
 */
export function arrayLiteral(values: readonly unknown[]): string {
  const parts = values.map((v) => {
    if (v === null || v === undefined) return 'NULL'
    if (v instanceof Uint8Array) return `"\\\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}"`
    if (typeof v === 'number' || typeof v === 'bigint') return String(v)
    if (typeof v === 'string') return escapeText(v)
    throw new InvalidArgumentError(`arrayLiteral: cannot write a ${typeof v} as an array element`)
  })
  return `{${parts.join(',')}}`
}

const literalArrays = (params: readonly unknown[]): unknown[] =>
  params.map((p) => (Array.isArray(p) ? arrayLiteral(p) : p))

/**
 * `$1`-style placeholders as `?` with the parameters in the order they appear (repeated where a
 * placeholder is), for libraries whose raw queries take `?` (Knex).
 */
export function questionMarks(text: string, params: readonly unknown[]): { text: string; params: unknown[] } {
  const ordered: unknown[] = []
  const converted = text.replace(/\$(\d+)/g, (_, n: string) => {
    ordered.push(params[Number(n) - 1])
    return '?'
  })
  return { text: converted, params: ordered }
}

/**
 * A node-postgres client inside a transaction: the `PoolClient` from `pool.connect()` (or a
 * `Client`) after `BEGIN`. A `Pool` is refused: it runs each query on whichever connection is
 * free, outside your transaction.
 *
 * ```ts norun
 * const client = await pool.connect()
 * await client.query('BEGIN')
 * await createUser(client, user)
 * await welcome.sendWithOptions({ args: [user.id], transaction: fromPg(client) })
 * await client.query('COMMIT')
 * ```
 */
export function fromPg(client: {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}): TransactionExecutor {
  const c = need('fromPg', client, 'query', 'a node-postgres client holding the transaction (await pool.connect())')
  if ('totalCount' in c && 'idleCount' in c && typeof c['connect'] === 'function' && !('release' in c)) {
    throw new InvalidArgumentError(
      'fromPg takes the client holding your transaction (const client = await pool.connect()), not the Pool: a Pool runs each query on any free connection, outside the transaction',
    )
  }
  return {
    kind: 'pg client',
    query: async (text, params) => {
      const result = await client.query(text, params as unknown[])
      return { rows: result.rows as Rows }
    },
  }
}

/**
 * A postgres.js transaction: the `sql` that `sql.begin(async (sql) => …)` hands you (or a
 * reserved connection inside `BEGIN`).
 */
export function fromPostgresJs(sql: {
  unsafe(text: string, params?: unknown[]): PromiseLike<unknown>
}): TransactionExecutor {
  const s = need('fromPostgresJs', sql, 'unsafe', 'the sql of sql.begin(async (sql) => …)')
  if (typeof s['begin'] === 'function' && typeof s['savepoint'] !== 'function') {
    throw new InvalidArgumentError(
      'fromPostgresJs takes the sql of a transaction (sql.begin(async (tx) => … fromPostgresJs(tx) …)), not the top-level sql: that runs each statement on its own',
    )
  }
  return {
    kind: 'postgres.js transaction',
    query: async (text, params) => {
      const rows = (await sql.unsafe(text, literalArrays(params))) as Rows
      return { rows: Array.from(rows) }
    },
  }
}

/** A Knex transaction (`await knex.transaction()`, or the `trx` of `knex.transaction(async (trx) => …)`) on the `pg` client. */
export function fromKnex(trx: {
  raw(text: string, bindings?: unknown): PromiseLike<unknown>
  isTransaction?: boolean
}): TransactionExecutor {
  const t = need('fromKnex', trx, 'raw', 'a Knex transaction (knex.transaction(async (trx) => …))')
  if (t['isTransaction'] !== true) {
    throw new InvalidArgumentError(
      'fromKnex takes a Knex transaction (knex.transaction(async (trx) => …)), not the knex instance: that runs each statement on its own',
    )
  }
  return {
    kind: 'knex transaction',
    query: async (text, params) => {
      const q = questionMarks(text, literalArrays(params))
      const result = (await trx.raw(q.text, q.params)) as { rows?: Rows }
      return { rows: result.rows ?? [] }
    },
  }
}

/** A Kysely transaction (`db.transaction().execute(async (trx) => …)`, or a controlled `await db.startTransaction().execute()`) on its Postgres dialect. */
export function fromKysely(trx: {
  executeQuery(query: never): Promise<{ rows: unknown[] }>
  isTransaction?: boolean
}): TransactionExecutor {
  const t = need('fromKysely', trx, 'executeQuery', 'a Kysely transaction (db.transaction().execute(async (trx) => …))')
  if (t['isTransaction'] !== true) {
    throw new InvalidArgumentError(
      'fromKysely takes a Kysely transaction (db.transaction().execute(async (trx) => …)), not the db: that runs each statement on its own',
    )
  }
  const execute = trx.executeQuery.bind(trx) as unknown as (query: object) => Promise<{ rows: unknown[] }>
  return {
    kind: 'kysely transaction',
    query: async (text, params) => {
      // A compiled raw query, as Kysely's CompiledQuery.raw(text, params) builds it.
      const compiled = Object.freeze({
        sql: text,
        parameters: Object.freeze([...params]),
        query: Object.freeze({ kind: 'RawNode', sqlFragments: Object.freeze([text]), parameters: Object.freeze([]) }),
        queryId: Object.freeze({ queryId: `tq-${Math.random().toString(36).slice(2)}` }),
      })
      const result = await execute(compiled)
      return { rows: result.rows as Rows }
    },
  }
}

/**
 * A Drizzle transaction (`db.transaction(async (tx) => …)`) on the `node-postgres` or
 * `postgres-js` driver: the statement runs on the connection the transaction holds.
 */
export function fromDrizzle(tx: object): TransactionExecutor {
  const session = isObject(tx) ? (tx as { session?: unknown }).session : undefined
  const client = isObject(session) ? (session as { client?: unknown }).client : undefined
  if (!isObject(tx) || typeof (tx as { rollback?: unknown }).rollback !== 'function' || !isObject(client)) {
    throw new InvalidArgumentError(
      'fromDrizzle takes the tx of db.transaction(async (tx) => …) on the node-postgres or postgres-js driver',
    )
  }
  if (typeof client['unsafe'] === 'function') {
    return { ...fromPostgresJs(client as Parameters<typeof fromPostgresJs>[0]), kind: 'drizzle transaction' }
  }
  if (typeof client['query'] === 'function') {
    if ('totalCount' in client && !('release' in client)) {
      throw new InvalidArgumentError(
        'fromDrizzle: this tx does not hold a connection of its own (is it a transaction?)',
      )
    }
    return { ...fromPg(client as Parameters<typeof fromPg>[0]), kind: 'drizzle transaction' }
  }
  throw new InvalidArgumentError('fromDrizzle supports the node-postgres and postgres-js drivers')
}

/** A Prisma interactive transaction (`prisma.$transaction(async (tx) => …)`) on PostgreSQL. */
export function fromPrisma(tx: {
  $queryRawUnsafe(query: string, ...values: unknown[]): PromiseLike<unknown>
}): TransactionExecutor {
  const t = need('fromPrisma', tx, '$queryRawUnsafe', 'the tx of prisma.$transaction(async (tx) => …)')
  // A transaction's tx has no $disconnect (it has $transaction, for nested ones).
  if (typeof t['$disconnect'] === 'function') {
    throw new InvalidArgumentError(
      'fromPrisma takes the tx of an interactive transaction (prisma.$transaction(async (tx) => …)), not the PrismaClient: that runs each statement on its own',
    )
  }
  return {
    kind: 'prisma transaction',
    query: async (text, params) => {
      const rows = (await tx.$queryRawUnsafe(text, ...literalArrays(params))) as Rows
      return { rows: Array.isArray(rows) ? rows : [] }
    },
  }
}
