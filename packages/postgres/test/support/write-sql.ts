// Writes sql/<component>.sql, the plain SQL of each part's migrations for the default schema
// `tq` (for teams that apply migrations with their own tool); features.test.ts checks they match.
// Run after changing a migration: node --import tsx --conditions=@tq/source packages/postgres/test/support/write-sql.ts
import { writeFileSync } from 'node:fs'
import { schemaComponents } from '../../src/components.ts'
import { plainSqlFile } from '../../src/migrate-database.ts'

for (const component of schemaComponents) {
  writeFileSync(new URL(`../../sql/${component.name}.sql`, import.meta.url), plainSqlFile(component))
}
