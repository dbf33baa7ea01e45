// TypeDoc plugin: name each module after its package ("@tq/core", "@tq/core/testing") instead of
// its path ("core/src", "core/src/testing"). Loaded by typedoc.json.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Converter, ReflectionKind } from 'typedoc'

const packages = join(dirname(dirname(fileURLToPath(import.meta.url))), 'packages')

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const module of context.project.getReflectionsByKind(ReflectionKind.Module)) {
      const match = /^([^/]+)\/src(?:\/(.+))?$/.exec(module.name)
      if (!match) continue
      const { name } = JSON.parse(readFileSync(join(packages, match[1], 'package.json'), 'utf8'))
      module.name = match[2] ? `${name}/${match[2]}` : name
    }
  })
}
