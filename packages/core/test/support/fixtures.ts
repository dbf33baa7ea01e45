import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('../../../../fixtures/dramatiq-wire/', import.meta.url))

/** A Dramatiq 2.2 wire fixture (copied into the repo from shared/fixtures/dramatiq-wire). */
export function loadFixture<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(readFileSync(`${dir}${name}.json`, 'utf8')) as T
}
