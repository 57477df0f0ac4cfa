/** Starts the whole service (AppLive) inside a test scope, configured by a map of env vars. */
import { chmodSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { AppLive } from "../../src/main.ts"
import { runMigrations } from "../../src/storage/migrations.ts"

export const postgresUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

/**
 * The two databases every end-to-end test runs against: the PostgreSQL server,
 * and the default embedded one (the PostgreSQL child process) in a fresh folder.
 * PGlite is covered beside the writer (writer.test.ts, sizes.test.ts).
 */
export const databases: Array<[string, () => Record<string, string>]> = [
  ["postgres", () => ({ DATABASE_URL: postgresUrl })],
  ["embedded", () => ({ DATA_DIR: reachableTempDir("mds-e2e-") })]
]

/** A fresh folder the embedded PostgreSQL's unprivileged account can reach when the tests run as root (mkdtemp makes it 0700). */
export const reachableTempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  chmodSync(dir, 0o755)
  return dir
}

/** `clock` (see clock.ts) pins the service's calendar. */
export const startService = (env: Record<string, string>, clock: Layer.Layer<never> = Layer.empty) =>
  Layer.build(AppLive.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))), Layer.provide(clock)))

/** Empties every table; migrates first, so a test file may run first on a brand-new database. */
export const truncateAll = Effect.andThen(runMigrations(), SqlClient.SqlClient.use((sql) =>
  sql`TRUNCATE large_trades, funding_rates, open_interest, exchange_orderbooks, volatility_index, option_chain, futures_settlements, futures_basis, futures_rolls, exchange_spreads, arbitrage_opportunities, trade_bars, data_gaps, feed_cursors, alerts, rejected_rows, outbox, outbox_returned, alert_deliveries, service_runs, stream_coverage`.pipe(Effect.asVoid)
))

export const getJson = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, body: (await response.json()) as any }
  })

/**
 * The `data` of a 200 answer. A 503 is the contract's "try again" (a shed
 * query, or a database busy past its timeout on a loaded machine), so it is
 * asked again for up to 20 s, as a client would; any other answer fails the
 * test with its body.
 */
export const getData = (url: string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 20_000
    while (true) {
      const answer = yield* getJson(url)
      if (answer.status === 200 && answer.body?.data !== undefined) return answer.body.data
      if (answer.status !== 503 || Date.now() > deadline) {
        return yield* Effect.die(new Error(`${url} answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 500)}`))
      }
      yield* Effect.sleep("500 millis")
    }
  })

/** Polls until `check` returns a value, or fails after `timeoutMs`. */
export const eventually = <A, E, R>(what: string, check: Effect.Effect<A | undefined, E, R>, timeoutMs = 30_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const value = yield* check
      if (value !== undefined) return value
      yield* Effect.sleep("200 millis")
    }
    return yield* Effect.die(new Error(`timed out waiting for ${what}`))
  })

let nextPort = 18_100 + Math.floor(Math.random() * 500)
export const freePort = () => nextPort++
