/** The command line as a user runs it: help, typed options, errors that say what is wrong, exit codes. */
import { spawnSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { sessions } from "./support/fixtures.ts"
import { postgresUrl, truncateAll } from "./support/service.ts"

/** The JSON report a command prints (log lines may come before it). */
const report = (stdout: string) => JSON.parse(stdout.slice(stdout.search(/^\{$/m)))

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const run = spawnSync(process.execPath, ["src/cli.ts", ...args], {
    cwd: new URL("..", import.meta.url).pathname,
    encoding: "utf8",
    env: { ...process.env, LOG_LEVEL: "Warn", ...env },
    timeout: 60_000,
    maxBuffer: 256 * 1024 * 1024
  })
  return { status: run.status, stdout: run.stdout, stderr: run.stderr, output: `${run.stdout}${run.stderr}` }
}

describe("command line", () => {
  it("explains itself: --help lists the commands, a command's --help its options", () => {
    const top = cli(["--help"])
    assert.strictEqual(top.status, 0)
    assert.include(top.output, "replay")
    assert.include(top.output, "normalize")
    const replay = cli(["replay", "--help"])
    assert.strictEqual(replay.status, 0)
    assert.include(replay.output, "--venue")
    assert.include(replay.output, "binance-futures")
  })

  it("refuses bad usage with a message naming what is wrong, exit code 2", () => {
    const venue = cli(["normalize", "--venue", "nope", `${sessions}COINBASE.jsonl.zst`])
    assert.strictEqual(venue.status, 2)
    assert.include(venue.output, 'Invalid value for flag --venue: "nope"')
    const file = cli(["normalize", "--venue", "coinbase", "/no/such/capture"])
    assert.strictEqual(file.status, 2)
    assert.include(file.output, "Path does not exist: /no/such/capture")
    const command = cli(["replai"])
    assert.strictEqual(command.status, 2)
  })

  it("normalize prints a capture's records as JSON lines", () => {
    const run = cli(["normalize", "--venue", "coinbase", `${sessions}COINBASE.jsonl.zst`])
    assert.strictEqual(run.status, 0, run.stderr)
    const records = run.stdout.trim().split("\n").map((line) => JSON.parse(line))
    assert.strictEqual(records.filter((r) => r.kind === "trade").length, 279)
    assert.strictEqual(run.stderr.includes("could not be decoded"), false)
  })

  it.live("replay stores a capture and says what it did; a database that refuses says so, exit code 1", () =>
    Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const run = cli(["replay", "--venue", "coinbase", `${sessions}COINBASE.jsonl.zst`], { DATABASE_URL: postgresUrl, LARGE_TRADE_THRESHOLD_BTC: "0", LARGE_TRADE_THRESHOLD_ETH: "0" })
      assert.strictEqual(run.status, 0, run.stderr)
      const stats = JSON.parse(run.stdout.slice(run.stdout.indexOf("{")))
      assert.strictEqual(stats.frames, 1030)
      assert.strictEqual(stats.inserted.large_trades, 279)
      const refused = cli(["replay", "--venue", "coinbase", `${sessions}COINBASE.jsonl.zst`], { DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" })
      assert.strictEqual(refused.status, 1)
      assert.include(refused.stderr, "ECONNREFUSED (connection refused)")
    }), { timeout: 120_000 })

  it.live("replay into a read-only database stores nothing, says so and exits 1; once writable, the same replay stores every row", () =>
    Effect.gen(function*() {
      const name = "mds_cli_readonly"
      const url = new URL(postgresUrl)
      url.pathname = `/${name}`
      const admin = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
        effect.pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped)
      yield* admin(SqlClient.SqlClient.use((sql) =>
        Effect.gen(function*() {
          if ((yield* sql`SELECT 1 FROM pg_database WHERE datname = ${name}`).length === 0) yield* sql.unsafe(`CREATE DATABASE ${name}`)
          yield* sql.unsafe(`ALTER DATABASE ${name} RESET default_transaction_read_only`)
        })))
      yield* truncateAll.pipe(Effect.provide(Layer.fresh(postgresLayer(url.toString()))), Effect.scoped)
      // A replica after a failover: it answers every read, refuses every write with 25006.
      yield* admin(SqlClient.SqlClient.use((sql) => sql.unsafe(`ALTER DATABASE ${name} SET default_transaction_read_only = on`)))
      const env = { DATABASE_URL: url.toString(), LARGE_TRADE_THRESHOLD_BTC: "0", LARGE_TRADE_THRESHOLD_ETH: "0", WRITER_DRAIN_TIMEOUT_MS: "3000" }
      const refused = cli(["replay", "--venue", "coinbase", `${sessions}COINBASE.jsonl.zst`], env)
      yield* admin(SqlClient.SqlClient.use((sql) => sql.unsafe(`ALTER DATABASE ${name} RESET default_transaction_read_only`)))
      assert.strictEqual(refused.status, 1, refused.output.slice(-2000))
      assert.match(refused.stderr, /rows built were not stored/)
      assert.notInclude(refused.output, "row refused by the database", "a read-only database is not taken for bad rows")
      const outcome = report(refused.stdout)
      assert.strictEqual(outcome.not_stored.large_trades.unstored_at_deadline, 279)
      assert.strictEqual(outcome.not_stored.large_trades.rejected, 0)
      const stored = cli(["replay", "--venue", "coinbase", `${sessions}COINBASE.jsonl.zst`], env)
      assert.strictEqual(stored.status, 0, stored.stderr)
      assert.strictEqual(report(stored.stdout).inserted.large_trades, 279)
    }), { timeout: 120_000 })

  it.live("rejected lists the dead letters and --replay stores those the database now takes", () =>
    Effect.gen(function*() {
      const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
        effect.pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped)
      yield* withDatabase(truncateAll)
      const row = (id: string, price: number | string) => JSON.stringify({
        id, exchange: "cli-test", symbol: "BTCUSDT", side: "buy", price, size: 1, valueUsd: 50_000, timestamp: 1_700_000_000_000,
        tradeId: id, isLiquidation: false, metadata: {}
      })
      yield* withDatabase(SqlClient.SqlClient.use((sql) =>
        sql`INSERT INTO rejected_rows (table_name, row_id, sqlstate, message, row, rejected_at) VALUES
          ('large_trades', 'fixed', '22003', 'numeric field overflow', ${row("fixed", 50_000)}::jsonb, '2026-01-01 00:00:00'),
          ('large_trades', 'still-bad', NULL, 'price is NaN', ${row("still-bad", "NaN")}::jsonb, '2026-01-01 00:00:01')`))
      const listed = cli(["rejected"], { DATABASE_URL: postgresUrl })
      assert.strictEqual(listed.status, 0, listed.stderr)
      const waiting = report(listed.stdout).waiting
      assert.deepStrictEqual(waiting.map((w: any) => [w.table, w.sqlstate, w.rows]), [["large_trades", "22003", 1], ["large_trades", null, 1]])
      const replayed = cli(["rejected", "--replay"], { DATABASE_URL: postgresUrl })
      assert.strictEqual(replayed.status, 1, "one row is still refused")
      const outcome = report(replayed.stdout)
      assert.strictEqual(outcome.stored, 1)
      assert.deepStrictEqual(outcome.still_refused.map((r: any) => r.reason), ["price is NaN"])
      const [stored] = yield* withDatabase(SqlClient.SqlClient.use((sql) => sql<{ price: string }>`SELECT price FROM large_trades WHERE id = 'fixed'`))
      assert.strictEqual(stored!.price, "50000.00000000")
    }), { timeout: 120_000 })
})
