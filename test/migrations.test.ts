/**
 * Migrations: a database that recorded a later number first (it ran a branch
 * out of order) still gets every earlier file it lacks. effect's Migrator
 * alone applies only numbers above the highest recorded, and skipped them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { postgresUrl } from "./support/service.ts"

const name = "mds_migrations_gap"
const url = (() => {
  const u = new URL(postgresUrl)
  u.pathname = `/${name}`
  return u.toString()
})()

describe("migrations", () => {
  it.live("applies a file numbered below the highest recorded when it was never applied", () =>
    Effect.gen(function*() {
      yield* SqlClient.SqlClient.use((sql) =>
        Effect.gen(function*() {
          if ((yield* sql`SELECT 1 FROM pg_database WHERE datname = ${name}`).length > 0) yield* sql.unsafe(`DROP DATABASE ${name} WITH (FORCE)`)
          yield* sql.unsafe(`CREATE DATABASE ${name}`)
        })).pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped)
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* runMigrations()
        // As if 0009 had never run while later numbers had: its table gone, its record gone.
        yield* sql`DROP TABLE rejected_rows`
        yield* sql`DELETE FROM effect_sql_migrations WHERE migration_id = 9`
        const applied = yield* runMigrations()
        assert.deepStrictEqual(applied.map(([id]) => id), [9])
        const [table] = yield* sql<{ n: bigint }>`SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'rejected_rows'`
        assert.strictEqual(Number(table!.n), 1)
        assert.deepStrictEqual(yield* runMigrations(), [], "nothing twice")
      }).pipe(Effect.provide(Layer.fresh(postgresLayer(url))), Effect.scoped)
    }), { timeout: 60_000 })
})
