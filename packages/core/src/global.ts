import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { Broker } from './broker.ts'
import { ConfigurationError } from './errors.ts'
import { redactUrl } from './redact.ts'
import { stubBrokerPlugin } from './brokers/stub-broker.ts'
import { processState } from './internal/process-state.ts'

/**
 * How an adapter package plugs into `getBroker()` and `TQ_BROKER_URL`. Each adapter exports
 * one as `brokerPlugin`; `registerBroker()` adds others.
 */
export interface BrokerPlugin {
  /** The package or broker name, for messages. */
  readonly name: string
  /** URL schemes it serves, without the colon (`redis`, `rediss`). */
  readonly schemes: readonly string[]
  /** Build a broker; `url` is absent when `getBroker()` picks the default. */
  create(url?: string): Broker
}

const plugins = processState().plugins

/** Packages `getBroker()` looks for, in order of preference (Dramatiq prefers RabbitMQ). */
const DEFAULT_PACKAGES = ['@tq/rabbitmq', '@tq/redis'] as const
const PACKAGE_BY_SCHEME: Record<string, string> = {
  amqp: '@tq/rabbitmq',
  amqps: '@tq/rabbitmq',
  redis: '@tq/redis',
  rediss: '@tq/redis',
  sqs: '@tq/sqs',
  postgres: '@tq/postgres',
  postgresql: '@tq/postgres',
}

/** Make a broker plugin available to `createBroker(url)` and `TQ_BROKER_URL`. */
export function registerBroker(plugin: BrokerPlugin): void {
  for (const scheme of plugin.schemes) plugins.set(scheme.replace(/:$/, ''), plugin)
}

/** Load an adapter package's plugin, resolving from the app (cwd) first, then from here. */
function loadPlugin(pkg: string): BrokerPlugin | undefined {
  for (const base of [join(process.cwd(), 'package.json'), import.meta.url]) {
    try {
      const mod = createRequire(base)(pkg) as { brokerPlugin?: BrokerPlugin }
      if (mod.brokerPlugin) {
        registerBroker(mod.brokerPlugin)
        return mod.brokerPlugin
      }
    } catch (error) {
      const code = (error as { code?: string }).code
      if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_PACKAGE_PATH_NOT_EXPORTED')
        continue
      throw new ConfigurationError(
        `${pkg} is installed but could not be loaded (${(error as Error).message}). ` +
          `Import it yourself and call setBroker(), or check that it matches @tq/core's version.`,
        { cause: error },
      )
    }
  }
  return undefined
}

/**
 * Build a broker from a URL: `stub://`, `redis://`, `amqp://`, `sqs://` (the adapter package
 * must be installed for all but `stub://`).
 */
export function createBroker(url: string): Broker {
  const match = /^([a-z][a-z0-9+.-]*):/i.exec(url)
  if (!match)
    throw new ConfigurationError(
      `Broker URL ${JSON.stringify(redactUrl(url))} has no scheme (expected amqp://, redis://, sqs:// or stub://)`,
    )
  const scheme = (match[1] as string).toLowerCase()
  let plugin = scheme === 'stub' ? (plugins.get(scheme) ?? stubBrokerPlugin) : plugins.get(scheme)
  if (!plugin) {
    const pkg = PACKAGE_BY_SCHEME[scheme]
    if (pkg) plugin = loadPlugin(pkg)
    if (!plugin && pkg)
      throw new ConfigurationError(`Broker URL ${redactUrl(url)} needs ${pkg}: install it (npm install ${pkg})`)
  }
  if (!plugin)
    throw new ConfigurationError(
      `No broker is registered for ${scheme}:// URLs (known: ${[...plugins.keys(), ...Object.keys(PACKAGE_BY_SCHEME)].join(', ')})`,
    )
  return plugin.create(url)
}

/**
 * The global broker. With none set: `TQ_BROKER_URL` picks one by scheme; otherwise a
 * RabbitmqBroker if `@tq/rabbitmq` is installed, else a RedisBroker if `@tq/redis` is.
 */
export function getBroker(): Broker {
  const state = processState()
  if (state.broker) return state.broker
  const url = process.env['TQ_BROKER_URL']
  if (url) {
    state.broker = createBroker(url)
    return state.broker
  }
  for (const pkg of DEFAULT_PACKAGES) {
    const plugin = loadPlugin(pkg)
    if (plugin) {
      state.broker = plugin.create()
      return state.broker
    }
  }
  throw new ConfigurationError(
    'No broker is set. Call setBroker(broker), set TQ_BROKER_URL (amqp://, redis://, sqs://, postgres:// or stub://), ' +
      'or install @tq/rabbitmq or @tq/redis.',
  )
}

/** Set the global broker (actors declared without a `broker` option bind to it). */
export function setBroker(broker: Broker | undefined): void {
  processState().broker = broker
}
