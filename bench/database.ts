/**
 * The bench's own PostgreSQL databases, created through the server's
 * `postgres` maintenance database when missing, so the bench never touches the
 * data of the test suite or of a running service: one holds the API dataset
 * (BENCH_DATABASE_URL, by default mds_bench on 127.0.0.1:5432), the other is
 * emptied and filled by the end-to-end runs (BENCH_E2E_DATABASE_URL, mds_bench_e2e).
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"

export const benchDatabaseUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/mds_bench"
export const benchE2eDatabaseUrl = process.env.BENCH_E2E_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/mds_bench_e2e"

export const ensureBenchDatabase = (url: string): Promise<void> => {
  const parsed = new URL(url)
  const name = parsed.pathname.slice(1)
  parsed.pathname = "/postgres"
  return Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const exists = yield* sql`SELECT 1 FROM pg_database WHERE datname = ${name}`
      if (exists.length === 0) yield* sql.unsafe(`CREATE DATABASE "${name.replaceAll('"', '""')}"`)
    }).pipe(Effect.provide(postgresLayer(parsed.toString())), Effect.scoped)
  )
}
