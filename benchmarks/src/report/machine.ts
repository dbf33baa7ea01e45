// Facts about the machine and the servers, for the report header.
import { createRequire } from 'node:module'
import { cpus, loadavg, release, totalmem, type } from 'node:os'
import { connect } from 'amqplib'
import { Redis } from 'ioredis'
import { postgresVersion } from '../peers/pg.ts'
import type { MachineFacts } from './types.ts'

export async function redisVersion(url: string): Promise<string> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await client.connect()
    const info = await client.info('server')
    return /redis_version:(\S+)/.exec(info)?.[1] ?? '?'
  } finally {
    client.disconnect()
  }
}

export async function rabbitmqVersion(url: string): Promise<string> {
  const model = await connect(url)
  try {
    const properties = model.connection.serverProperties as Record<string, unknown>
    const version = properties['version']
    return typeof version === 'string' ? version : Buffer.isBuffer(version) ? version.toString() : '?'
  } finally {
    await model.close()
  }
}

/** Installed versions of the peer libraries (as the report states them). */
export function libraryVersions(): Record<string, string> {
  const require = createRequire(import.meta.url)
  const versions: Record<string, string> = {}
  for (const name of ['bullmq', 'bee-queue', 'graphile-worker', 'pg-boss', 'pg']) {
    try {
      versions[name] = (require(`${name}/package.json`) as { version: string }).version
    } catch {
      // not installed: not stated
    }
  }
  return versions
}

export async function machineFacts(redisUrl: string, amqpUrl: string, pgUrl: string): Promise<MachineFacts> {
  const cpu = cpus()
  return {
    cpuModel: cpu[0]?.model.trim() ?? '?',
    cores: cpu.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${type()} ${release()}`,
    node: process.version,
    redis: await redisVersion(redisUrl),
    rabbitmq: await rabbitmqVersion(amqpUrl).catch(() => 'unreachable'),
    postgres: await postgresVersion(pgUrl),
    versions: libraryVersions(),
    loadStart: loadavg()[0] ?? 0,
    loadEnd: 0,
  }
}
