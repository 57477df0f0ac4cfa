/**
 * Migrations: a database that recorded a later number first (it ran a branch
 * out of order) still gets every earlier file it lacks. effect's Migrator
 * alone applies only numbers above the highest recorded, and skipped them.
 */
import { assert, describe, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { postgresUrl } from "./support/service.ts"

const name = "mds_migrations_gap"
const urlOf = (database: string) => {
  const u = new URL(postgresUrl)
  u.pathname = `/${database}`
  return u.toString()
}
const url = urlOf(name)
const freshDatabase = (database: string) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      if ((yield* sql`SELECT 1 FROM pg_database WHERE datname = ${database}`).length > 0) yield* sql.unsafe(`DROP DATABASE ${database} WITH (FORCE)`)
      yield* sql.unsafe(`CREATE DATABASE ${database}`)
    })).pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped)

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

  it.live("a migration that runs longer than the writer's statement timeout still applies", () =>
    Effect.gen(function*() {
      const database = "mds_migrations_timeout"
      yield* freshDatabase(database)
      const directory = mkdtempSync(join(tmpdir(), "mds-migrations-"))
      // As a rewrite of a populated table would: longer than the writer pool's 200 ms here (60 s by default).
      writeFileSync(join(directory, "0001_slow.sql"), "SELECT pg_sleep(0.6);\nCREATE TABLE slow_done (x int);\n")
      const writerPool = postgresLayer(urlOf(database)).pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { WRITER_STATEMENT_TIMEOUT_MS: "200" } })))
      )
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const applied = yield* runMigrations(directory)
        assert.deepStrictEqual(applied.map(([id]) => id), [1])
        assert.strictEqual((yield* sql`SELECT 1 FROM information_schema.tables WHERE table_name = 'slow_done'`).length, 1)
        // The timeout is lifted for the migration only: the pool's own statements keep it.
        const timedOut = yield* Effect.flip(sql`SELECT pg_sleep(0.6)`)
        assert.include(JSON.stringify(timedOut), "57014")
      }).pipe(Effect.provide(Layer.fresh(writerPool)), Effect.scoped)
    }), { timeout: 60_000 })
})
