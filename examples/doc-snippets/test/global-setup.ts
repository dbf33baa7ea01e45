import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

/**
 * Generate the Prisma client of the docs' Prisma examples into @prisma/client (the
 * `prisma-client-js` generator), as a reader's `prisma generate` would. `prisma generate` wants
 * a schema-engine binary it downloads from binaries.prisma.sh, out of reach here; generating the
 * client does not use it, so any executable stands in.
 */
export default function setup(): void {
  const require = createRequire(import.meta.url)
  const cli = join(dirname(require.resolve('prisma/package.json')), 'build', 'index.js')
  execFileSync(process.execPath, [cli, 'generate', '--schema', join(here, '..', 'prisma', 'schema.prisma')], {
    stdio: 'pipe',
    cwd: join(here, '..'),
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env['PRISMA_SCHEMA_ENGINE_BINARY'] ?? '/bin/true' },
  })
}
