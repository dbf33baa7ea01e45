// Make sure the services the integration tests need are up on loopback, starting them if not.
//   import { ensureServices } from './services.mjs'; await ensureServices({ redis: true, rabbitmq: true })
//   node scripts/services.mjs        # ensures both, prints one line per service
import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, openSync, closeSync, readFileSync, readdirSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { pathToFileURL } from 'node:url'

const HOST = '127.0.0.1'
const REDIS_PORT = 6379
const RABBITMQ_PORT = 5672
const POSTGRES_PORT = 5432
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Opens a TCP connection, writes `payload` and resolves with the first bytes received:
 * `null` if nothing listens, `''` if the peer accepted but sent nothing within `timeoutMs`.
 */
function probe(port, payload, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port })
    let connected = false
    const done = (value) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(value)
    }
    const timer = setTimeout(() => done(connected ? '' : null), timeoutMs)
    socket.on('connect', () => {
      connected = true
      socket.write(payload)
    })
    socket.on('data', (data) => done(data.toString('latin1')))
    socket.on('error', () => done(connected ? '' : null))
    socket.on('close', () => done(connected ? '' : null))
  })
}

const redisUp = async () => (await probe(REDIS_PORT, 'PING\r\n'))?.startsWith('+PONG') ?? false
// A RabbitMQ broker answers the AMQP 0-9-1 protocol header with a Connection.Start frame.
const rabbitmqUp = async () => Boolean(await probe(RABBITMQ_PORT, Buffer.from('AMQP\x00\x00\x09\x01', 'latin1')))
// A PostgreSQL server answers an SSLRequest (length 8, code 80877103) with one byte, S or N.
const postgresUp = async () => {
  const reply = await probe(POSTGRES_PORT, Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]))
  return reply === 'S' || reply === 'N'
}

async function waitFor(isUp, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await isUp()) return true
    await sleep(500)
  }
  return isUp()
}

/** Finds an executable on PATH, also looking in the sbin folders a non-root PATH often lacks. */
function findBinary(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin']
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {
      // not in this folder
    }
  }
  return null
}

/** Runs a command to completion with no stdin; its output goes to a log file (daemons may keep the fds). */
function run(binary, args, timeoutMs) {
  const log = join(tmpdir(), `tq-services-${process.pid}-${Date.now()}.log`)
  const fd = openSync(log, 'w')
  const result = spawnSync(binary, args, { stdio: ['ignore', fd, fd], timeout: timeoutMs })
  closeSync(fd)
  const output = readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n')
  return { ok: result.status === 0, output: result.error ? `${result.error.message}\n${output}` : output, log }
}

const PORTS = { Redis: REDIS_PORT, RabbitMQ: RABBITMQ_PORT, PostgreSQL: POSTGRES_PORT }

function failure(service, tried, install, detail) {
  return new Error(
    `${service} is not answering on ${HOST}:${PORTS[service]} ` +
      `and could not be started.\n  Tried: ${tried}\n  Install it with: ${install}` +
      (detail ? `\n  ${detail.replaceAll('\n', '\n  ')}` : ''),
  )
}

async function ensureRedis() {
  if (await redisUp()) return 'already running'
  const args = ['--daemonize', 'yes', '--bind', '127.0.0.1', '-::1', '--port', String(REDIS_PORT)]
  args.push('--save', '', '--appendonly', 'no')
  const tried = `redis-server ${args.map((a) => (a === '' ? '""' : a)).join(' ')}`
  const install = 'apt-get install redis-server'
  const binary = findBinary('redis-server')
  if (!binary) throw failure('Redis', tried, install, 'redis-server was not found on PATH.')
  const { ok, output } = run(binary, args, 30_000)
  if (ok && (await waitFor(redisUp, 15_000))) return 'started'
  throw failure('Redis', tried, install, `redis-server ${ok ? 'started but PING got no +PONG' : 'failed'}:\n${output}`)
}

async function ensureRabbitMQ() {
  if (await rabbitmqUp()) return 'already running'
  const tried = 'rabbitmq-server -detached, then rabbitmqctl await_startup'
  const install = 'apt-get install rabbitmq-server'
  const server = findBinary('rabbitmq-server')
  const ctl = findBinary('rabbitmqctl')
  if (!server || !ctl) throw failure('RabbitMQ', tried, install, 'rabbitmq-server/rabbitmqctl were not found on PATH.')
  const deadline = Date.now() + 90_000
  const start = run(server, ['-detached'], 30_000)
  if (!start.ok) throw failure('RabbitMQ', tried, install, `rabbitmq-server -detached failed:\n${start.output}`)
  // await_startup can fail while the Erlang node is still coming up, so retry until the deadline.
  let wait = { ok: false, output: '' }
  while (!wait.ok && Date.now() < deadline) {
    const seconds = Math.max(1, Math.round((deadline - Date.now()) / 1000))
    wait = run(ctl, ['await_startup', '--timeout', String(seconds)], seconds * 1000 + 10_000)
    if (!wait.ok) await sleep(2000)
  }
  if (await waitFor(rabbitmqUp, Math.max(5000, deadline - Date.now()))) return 'started'
  throw failure('RabbitMQ', tried, install, `no AMQP answer after 90 s; rabbitmqctl said:\n${wait.output}`)
}

/** The PostgreSQL clusters Debian's postgresql-common knows (`/etc/postgresql/<version>/<name>`), newest first. */
function postgresClusters() {
  const root = '/etc/postgresql'
  if (!existsSync(root)) return []
  return readdirSync(root)
    .filter((version) => /^\d+(\.\d+)?$/.test(version))
    .sort((a, b) => Number(b) - Number(a))
    .flatMap((version) => readdirSync(join(root, version)).map((name) => ({ version, name })))
}

async function ensurePostgres() {
  if (await postgresUp()) return 'already running'
  const clusters = postgresClusters()
  const cluster = clusters.find((c) => c.name === 'main') ?? clusters[0]
  const tried = `pg_ctlcluster --skip-systemctl-redirect ${cluster ? `${cluster.version} ${cluster.name}` : '<version> main'} start`
  const install = 'apt-get install postgresql'
  const ctl = findBinary('pg_ctlcluster')
  if (!ctl || !cluster)
    throw failure('PostgreSQL', tried, install, 'pg_ctlcluster or a cluster under /etc/postgresql was not found.')
  const { ok, output } = run(ctl, ['--skip-systemctl-redirect', cluster.version, cluster.name, 'start'], 60_000)
  if (ok && (await waitFor(postgresUp, 30_000))) return 'started'
  throw failure(
    'PostgreSQL',
    tried,
    install,
    `pg_ctlcluster ${ok ? 'started but the server does not answer' : 'failed'}:\n${output}`,
  )
}

/** Where the dashboard's browser tests find Chromium (Debian's `chromium` package). */
export const CHROMIUM = '/usr/bin/chromium'

/** Chromium for the browser tests: there, or installed with apt-get (root), or a clear error. */
function ensureChromium() {
  if (existsSync(CHROMIUM)) return 'already installed'
  const tried = 'apt-get install -y chromium'
  const apt = findBinary('apt-get')
  const root = typeof process.getuid === 'function' && process.getuid() === 0
  if (apt && root) {
    const install = run(apt, ['install', '-y', '--no-install-recommends', 'chromium'], 600_000)
    if (install.ok && existsSync(CHROMIUM)) return 'installed'
    throw new Error(
      `Chromium is missing at ${CHROMIUM} and could not be installed.\n  Tried: ${tried}\n  ${install.output.replaceAll('\n', '\n  ')}`,
    )
  }
  throw new Error(
    `Chromium is missing at ${CHROMIUM} (the dashboard's browser tests drive it).\n  Install it with: ${tried}` +
      (apt ? ' (as root)' : ''),
  )
}

/**
 * Ensures Redis (127.0.0.1:6379), RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432)
 * answer, starting them if needed,
 * and that Chromium is installed for the browser tests.
 * Throws an Error naming the service, how it tried to start it and what to install. Never skips silently.
 * @returns {Promise<string[]>} one human-readable line per checked service
 */
export async function ensureServices({ redis = true, rabbitmq = true, postgres = true, chromium = true } = {}) {
  const lines = []
  if (chromium) lines.push(`chromium: ${ensureChromium()} at ${CHROMIUM}`)
  if (redis) lines.push(`redis: ${await ensureRedis()} at ${HOST}:${REDIS_PORT}`)
  if (rabbitmq) lines.push(`rabbitmq: ${await ensureRabbitMQ()} at ${HOST}:${RABBITMQ_PORT}`)
  if (postgres) lines.push(`postgres: ${await ensurePostgres()} at ${HOST}:${POSTGRES_PORT}`)
  return lines
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    console.log((await ensureServices({ rabbitmq: false, postgres: false, chromium: false }))[0])
    console.log((await ensureServices({ redis: false, postgres: false, chromium: false }))[0])
    console.log((await ensureServices({ redis: false, rabbitmq: false, chromium: false }))[0])
    console.log((await ensureServices({ redis: false, rabbitmq: false, postgres: false }))[0])
  } catch (error) {
    console.error(error instanceof Error ? error.message : error)
    process.exit(1)
  }
}
