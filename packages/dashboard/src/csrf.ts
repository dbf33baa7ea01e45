import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Cross-site request forgery protection, two checks on every POST:
 *
 * 1. A token: each browser gets a random session id in an `HttpOnly; SameSite=Strict` cookie
 *    scoped to the dashboard's path; pages carry `HMAC-SHA256(secret, session id)` in their
 *    forms (`_csrf`) and in a `<meta>` tag the script sends back as the `x-tq-csrf` header. A
 *    page on another site can neither read the cookie nor compute the token, and a strict
 *    cookie is not even sent with its requests.
 * 2. The origin: a POST whose `Origin` header names another origin (or `null`), or whose
 *    `Sec-Fetch-Site` says it came from another site, is refused whatever it carries.
 */

/** The cookie holding the browser's session id. */
export const SESSION_COOKIE = 'tq_dashboard_session'
/** The form field and the header a POST carries its token in. */
export const TOKEN_FIELD = '_csrf'
export const TOKEN_HEADER = 'x-tq-csrf'

const SESSION_PATTERN = /^[A-Za-z0-9_-]{22,128}$/

export class Csrf {
  readonly #secret: Buffer

  /** `secret`: shared by every replica behind one URL; default a random one per process. */
  constructor(secret?: string) {
    this.#secret = secret === undefined ? randomBytes(32) : Buffer.from(secret, 'utf8')
  }

  /** A new random session id. */
  newSession(): string {
    return randomBytes(24).toString('base64url')
  }

  /** Whether a cookie value looks like a session id this package made. */
  validSession(session: string | undefined): session is string {
    return session !== undefined && SESSION_PATTERN.test(session)
  }

  /** The token for a session. */
  token(session: string): string {
    return createHmac('sha256', this.#secret).update(`tq-dashboard-csrf:${session}`).digest('base64url')
  }

  /** Whether `token` is the one of `session`, compared in constant time. */
  verify(session: string | undefined, token: string | undefined): boolean {
    if (!this.validSession(session) || token === undefined) return false
    const expected = Buffer.from(this.token(session))
    const given = Buffer.from(token)
    return given.length === expected.length && timingSafeEqual(given, expected)
  }
}

/**
 * Why a POST's origin is refused, or `undefined` when it is acceptable. The request's own origin
 * is taken from its URL; a reverse proxy that terminates TLS or rewrites the host is allowed for
 * through `X-Forwarded-Proto` / `X-Forwarded-Host` (a cross-site form cannot set headers).
 */
export function originProblem(request: Request): string | undefined {
  const origin = request.headers.get('origin')
  if (origin !== null) {
    if (!ownOrigins(request).has(origin.toLowerCase())) return `the request came from another origin (${origin})`
    return undefined
  }
  const site = request.headers.get('sec-fetch-site')
  if (site !== null && site !== 'same-origin' && site !== 'none') return `the request came from a ${site} page`
  return undefined
}

function ownOrigins(request: Request): Set<string> {
  const url = new URL(request.url)
  const origins = new Set([url.origin.toLowerCase()])
  const proto = firstValue(request.headers.get('x-forwarded-proto'))
  const host = firstValue(request.headers.get('x-forwarded-host')) ?? request.headers.get('host') ?? url.host
  if (proto !== undefined || host !== url.host) {
    origins.add(`${proto ?? url.protocol.replace(/:$/, '')}://${host}`.toLowerCase())
  }
  return origins
}

function firstValue(header: string | null): string | undefined {
  const first = header?.split(',')[0]?.trim()
  return first === undefined || first === '' ? undefined : first
}
