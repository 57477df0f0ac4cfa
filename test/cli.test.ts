/** The command line as a user runs it: help, typed options, errors that say what is wrong, exit codes. */
import { spawnSync } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type LargeTradeRow, RowBatch } from "../src/domain/rows.ts"
import { GapLedger } from "../src/gaps/ledger.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { Writer } from "../src/storage/writer.ts"
import { sessions } from "./support/fixtures.ts"
import { eventually, postgresUrl, truncateAll } from "./support/service.ts"

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

  it.live("a dead-lettered row replayed once its cause is fixed is staged for the broker and closes its rejected gap; one still refused leaves its gap open", () =>
    Effect.gen(function*() {
      const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
        effect.pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped)
      const query = <Row extends object>(text: string) => withDatabase(SqlClient.SqlClient.use((sql) => sql.unsafe<Row>(text)))
      yield* withDatabase(truncateAll)
      const t0 = Date.UTC(2026, 0, 1, 0, 0, 0)
      const trade = (symbol: string, i: number, price: number): LargeTradeRow => ({
        id: `cli-replay_${symbol}_${i}`, exchange: "cli-replay", symbol, side: "buy", price, size: 1, sizeBase: null, sizeUnit: null, valueUsd: price,
        timestamp: t0 + i * 1000, tradeId: String(i), isLiquidation: false, metadata: {}
      })
      // The cause, to be fixed later: a constraint refusing prices from a million up (SQLSTATE 23514, a data error).
      yield* query(`ALTER TABLE large_trades DROP CONSTRAINT IF EXISTS cli_replay_cap`)
      yield* query(`ALTER TABLE large_trades ADD CONSTRAINT cli_replay_cap CHECK (exchange <> 'cli-replay' OR price < 1000000) NOT VALID`)
      // The live path: the writer dead-letters the rows, the ledger opens a rejected gap per stream.
      yield* Effect.scoped(Effect.gen(function*() {
        const ledger = yield* GapLedger
        const writer = yield* Writer.make({ batchSize: 500, flushIntervalMs: 20, queueCapacity: 100, retryInitialMs: 50, retryMaxMs: 200, drainTimeoutMs: 5_000, suspectAttempts: 3 })
        yield* ledger.followLosses(writer.losses)
        const batch = new RowBatch()
        // BTCUSDT: refused by the constraint only. ETHUSDT: a NaN price, refused whatever the database allows.
        batch.large_trades.push(trade("BTCUSDT", 1, 2_000_000), trade("ETHUSDT", 2, Number.NaN))
        yield* writer.offer(batch)
        yield* eventually("two rejected gaps", Effect.map(
          SqlClient.SqlClient.use((sql) => sql`SELECT id FROM data_gaps WHERE cause = 'rejected'`),
          (rows) => (rows.length === 2 ? rows : undefined)
        ), 10_000)
      }).pipe(Effect.provide(GapLedger.layer), Effect.provide(Layer.fresh(postgresLayer(postgresUrl)))))
      // SOLUSDT: one gap over two refused rows (written as the ledger writes it), one fixable and one not.
      yield* withDatabase(SqlClient.SqlClient.use((sql) =>
        Effect.gen(function*() {
          yield* sql`INSERT INTO rejected_rows (table_name, row_id, sqlstate, message, row, rejected_at) VALUES
            ('large_trades', 'cli-replay_SOLUSDT_3', '23514', 'check', ${JSON.stringify(trade("SOLUSDT", 3, 3_000_000))}::jsonb, '2026-01-01 00:00:03'),
            ('large_trades', 'cli-replay_SOLUSDT_4', NULL, 'price is NaN', ${JSON.stringify({ ...trade("SOLUSDT", 4, 0), price: "NaN" })}::jsonb, '2026-01-01 00:00:04')`
          yield* sql`INSERT INTO data_gaps (id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata)
            VALUES ('cli-replay_trades_SOLUSDT_${t0 + 3000}_rejected', 'cli-replay', 'trades', 'SOLUSDT', '2026-01-01 00:00:03', '2026-01-01 00:00:04',
              'rejected', 2, 'open', 0, '{"table":"large_trades"}'::jsonb)`
        })))
      // The cause is fixed.
      yield* query(`ALTER TABLE large_trades DROP CONSTRAINT cli_replay_cap`)
      // AMQP_URL set: the outbox is configured, as in the service (the command itself never connects to the broker).
      const replayed = cli(["rejected", "--replay"], { DATABASE_URL: postgresUrl, AMQP_URL: "amqp://guest:guest@127.0.0.1:1" })
      assert.strictEqual(replayed.status, 1, "two rows are still refused")
      const outcome = report(replayed.stdout)
      assert.strictEqual(outcome.stored, 2)
      assert.deepStrictEqual(outcome.still_refused.map((r: any) => r.reason), ["price is NaN", "price is NaN"])
      // (a) the replayed rows' messages are in the outbox, as a live row's would be.
      const staged = yield* query<{ id: string; kind: string; routing_key: string }>(`SELECT id, kind, routing_key FROM outbox WHERE kind = 'large_trade' ORDER BY id`)
      assert.deepStrictEqual(staged, [
        { id: "cli-replay_BTCUSDT_1", kind: "large_trade", routing_key: "large_trade.cli-replay.BTCUSDT" },
        { id: "cli-replay_SOLUSDT_3", kind: "large_trade", routing_key: "large_trade.cli-replay.SOLUSDT" }
      ])
      // (b) the gap whose every row is now stored is verified; the partly replayed one partial; the one still refused open.
      const gapRows = yield* query<{ symbol: string; repair_status: string; repaired_count: string; reason: string }>(
        `SELECT symbol, repair_status, repaired_count::text AS repaired_count, metadata ->> 'reason' AS reason FROM data_gaps WHERE cause = 'rejected' ORDER BY symbol`
      )
      assert.deepStrictEqual(gapRows.map((g) => [g.symbol, g.repair_status, g.repaired_count]), [
        ["BTCUSDT", "verified", "1"],
        ["ETHUSDT", "open", "0"],
        ["SOLUSDT", "partial", "1"]
      ])
      assert.include(gapRows[2]!.reason, "1 still refused")
      // The gaps' new states are published too.
      const gapMessages = yield* query<{ id: string }>(`SELECT id FROM outbox WHERE kind = 'gap' ORDER BY id`)
      assert.deepStrictEqual(gapMessages.map((m) => m.id.split(":").slice(1, 2).concat(m.id.split("_")[2]!)), [["verified", "BTCUSDT"], ["partial", "SOLUSDT"]])
      // A second replay changes no gap and stages nothing again.
      const again = cli(["rejected", "--replay"], { DATABASE_URL: postgresUrl, AMQP_URL: "amqp://guest:guest@127.0.0.1:1" })
      assert.deepStrictEqual(report(again.stdout).gaps_settled, [])
      yield* withDatabase(truncateAll)
    }), { timeout: 120_000 })

  it.live("returned lists the messages the broker returned and --requeue puts them back into the outbox", () =>
    Effect.gen(function*() {
      const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
        effect.pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped)
      const query = <Row extends object>(text: string) => withDatabase(SqlClient.SqlClient.use((sql) => sql.unsafe<Row>(text)))
      yield* withDatabase(truncateAll)
      yield* query(`INSERT INTO outbox_returned (id, kind, routing_key, body, exchange, reply_code, reply_text, created_at, returned_at) VALUES
        ('l1', 'liquidation', 'liquidation.x.BTCUSDT', '{}', 'market-data', 312, 'NO_ROUTE', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z'),
        ('g1', 'gap', 'gap.x.BTCUSDT', '{}', 'market-data', 312, 'NO_ROUTE', '2026-01-01T00:00:00Z', '2026-01-01T00:00:02Z')`)
      const listed = cli(["returned"], { DATABASE_URL: postgresUrl })
      assert.strictEqual(listed.status, 0, listed.stderr)
      assert.deepStrictEqual(report(listed.stdout).kept.map((k: any) => [k.kind, k.reply, k.messages]), [["gap", "312 NO_ROUTE", 1], ["liquidation", "312 NO_ROUTE", 1]])
      const requeued = cli(["returned", "--requeue", "--kind", "liquidation"], { DATABASE_URL: postgresUrl })
      assert.strictEqual(requeued.status, 0, requeued.stderr)
      assert.strictEqual(report(requeued.stdout).requeued, 1)
      assert.deepStrictEqual(yield* query(`SELECT id, routing_key FROM outbox`), [{ id: "l1", routing_key: "liquidation.x.BTCUSDT" }])
      assert.deepStrictEqual(yield* query(`SELECT id FROM outbox_returned`), [{ id: "g1" }])
      yield* withDatabase(truncateAll)
    }), { timeout: 60_000 })
})
