import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

/**
 * Generate the Prisma client the fromPrisma tests use (once per Prisma version). `prisma
 * generate` wants a schema-engine binary, which it downloads from binaries.prisma.sh, out of
 * reach here; generating the TypeScript client does not use it, so any executable stands in.
 */
export default function setup(): void {
  const require = createRequire(import.meta.url)
  const version = (require('prisma/package.json') as { version: string }).version
  const stamp = join(here, 'prisma', 'generated', '.version')
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === version) return
  const cli = join(dirname(require.resolve('prisma/package.json')), 'build', 'index.js')
  execFileSync(process.execPath, [cli, 'generate', '--schema', join(here, 'prisma', 'schema.prisma')], {
    stdio: 'pipe',
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env['PRISMA_SCHEMA_ENGINE_BINARY'] ?? '/bin/true' },
  })
  writeFileSync(stamp, version)
}
