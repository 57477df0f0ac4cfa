/**
 * The gap ledger against the fake Binance: trades lost in transit, a dropped
 * connection and a restart each leave a gap row; trade gaps are repaired over
 * REST through the same pipeline (exactly once) and verified; streams with no
 * history are marked unrecoverable; query answers carry their coverage.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBinance } from "./fake/binance.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const symbols = ["SUSHIUSDT", "CTKUSDT"]

const env = (fake: FakeBinance, port: number) => ({
  DATABASE_URL: postgresUrl,
  PORT: String(port),
  HOST: "127.0.0.1",
  EXCHANGES: "binance-futures",
  BINANCE_FUTURES_SYMBOLS: symbols.join(","),
  BINANCE_FUTURES_WS_URL: fake.wsUrl,
  BINANCE_FUTURES_REST_URL: fake.httpUrl,
  LARGE_TRADE_THRESHOLD_DEFAULT: "1",
  WRITER_FLUSH_MS: "20",
  COVERAGE_HEARTBEAT_SECONDS: "1"
})

const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

const storedTradeIds = withDatabase(SqlClient.SqlClient.use((sql) =>
  sql<{ trade_id: string }>`SELECT trade_id FROM large_trades WHERE exchange = 'binance-futures' AND NOT is_liquidation`.pipe(
    Effect.map((rows) => rows.map((r) => r.trade_id))
  )
))

/** Every trade of the symbol that happened on the venue while the test ran, delivered or not. */
const recordedTradeIds = (fake: FakeBinance, symbol: string) =>
  fake.played
    .filter((f) => f.stream === `${symbol.toLowerCase()}@aggTrade`)
    .map((f) => String(f.data.a))

describe("gap ledger", () => {
  it.live("a trade lost in transit is a sequence gap, repaired over REST exactly once and verified", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 3 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService(env(fake, port))
      // Once SUSHIUSDT trades are reaching us, three of them get lost on the way.
      yield* eventually("SUSHIUSDT trades flowing", Effect.sync(() =>
        fake.sent.some((f) => f.stream === "sushiusdt@aggTrade") ? true : undefined))
      fake.loseNext("sushiusdt@aggTrade", 3)
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      const gaps = yield* eventually("a verified trade gap", Effect.map(getJson(`${base}/gaps?channel=trades`), ({ body }) =>
        body.data.gaps.some((g: any) => g.repair_status === "verified") ? body.data.gaps : undefined), 30_000)
      const gap = gaps.find((g: any) => g.symbol === "SUSHIUSDT")
      assert.strictEqual(gap.cause, "sequence_gap")
      const lostIds = fake.lost.map((f) => f.data.a as number)
      assert.strictEqual(lostIds.length, 3)
      assert.strictEqual(gap.metadata.first_missing_sequence, lostIds[0])
      assert.strictEqual(gap.metadata.last_missing_sequence, lostIds[2])
      assert.strictEqual(gap.estimated_missing, 3)
      assert.strictEqual(gap.repaired_count, 3)

      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)))
      const expected = symbols.flatMap((s) => recordedTradeIds(fake, s))
      const stored = yield* eventually("every trade stored, lost ones included", Effect.map(storedTradeIds, (ids) =>
        ids.length >= expected.length ? ids : undefined))
      assert.sameMembers(stored, expected, "every recorded trade exactly once")
      const answer = yield* getJson(`${base}/large-trades?symbol=SUSHIUSDT&hours=1`)
      // The repaired gap leaves no hole, but the service only ran for the last few seconds of the hour:
      // the rest is before its first run, so the hour is not complete (it was `true` before coverage was evidence).
      assert.strictEqual(answer.body.coverage.complete, false)
      assert.strictEqual(answer.body.coverage.gap_count, 1)
      assert.strictEqual(answer.body.coverage.unrepaired_gap_count, 0)
      assert.deepStrictEqual([...new Set(answer.body.coverage.not_collected.map((p: any) => p.reason))].sort(), ["before_first_run", "venue_starting"])
      // The last 1.8 s, all while the feeds were live and after the repaired gap: complete, on the streams that carry the symbol.
      const recent = yield* eventually("a recent window complete", Effect.map(getJson(`${base}/large-trades?symbol=SUSHIUSDT&hours=0.0005`), ({ body }) =>
        body.coverage.complete ? body.coverage : undefined), 10_000)
      assert.deepStrictEqual(recent.not_collected, [])
      assert.sameMembers(recent.streams.map((s: any) => `${s.exchange}/${s.channel}/${s.symbol}`), [
        "binance-futures/*/*", "binance-futures/trades/SUSHIUSDT", "binance-futures/liquidations/SUSHIUSDT"
      ])
    })), { timeout: 90_000 })

  it.live("a dropped connection leaves repaired trade gaps and unrecoverable liquidation, funding and book gaps", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 4 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService(env(fake, port))
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      // Let some trades through, then cut every socket while the venue keeps trading.
      yield* eventually("trades flowing", Effect.sync(() => (fake.sent.filter((f) => f.stream.endsWith("@aggTrade")).length >= 10 ? true : undefined)))
      fake.dropConnections("terminate")
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 30_000)
      const expected = symbols.flatMap((s) => recordedTradeIds(fake, s))
      const delivered = fake.sent.filter((f) => f.stream.endsWith("@aggTrade")).length
      assert.isBelow(delivered, expected.length, "some trades went by while disconnected")
      const stored = yield* eventually("missed trades repaired", Effect.map(storedTradeIds, (ids) =>
        ids.length >= expected.length ? ids : undefined), 30_000)
      assert.sameMembers(stored, expected)
      const { body } = yield* getJson(`${base}/gaps?limit=1000`)
      const byChannel = (channel: string) => body.data.gaps.filter((g: any) => g.channel === channel)
      for (const gap of byChannel("trades")) {
        assert.strictEqual(gap.cause, "disconnect")
        assert.strictEqual(gap.repair_status, "verified")
      }
      assert.isAtLeast(byChannel("trades").length, 1)
      assert.sameMembers(byChannel("liquidations").map((g: any) => g.symbol), symbols)
      assert.isTrue(byChannel("liquidations").every((g: any) => g.repair_status === "unrecoverable" && g.cause === "disconnect"))
      assert.sameMembers(byChannel("funding").map((g: any) => g.symbol), symbols)
      const books = yield* eventually("book gaps closed when the books are live again", Effect.map(getJson(`${base}/gaps?channel=book`), ({ body }) =>
        body.data.gaps.length === symbols.length && body.data.gaps.every((g: any) => g.end !== null) ? body.data.gaps : undefined), 20_000)
      assert.isTrue(books.every((g: any) => g.repair_status === "unrecoverable"))
      const funding = yield* getJson(`${base}/funding-rates?hours=1`)
      assert.strictEqual(funding.body.coverage.complete, false)
      assert.strictEqual(funding.body.coverage.gap_count, symbols.length)
    })), { timeout: 90_000 })

  it.live("a restart resumes from the stored cursors and repairs what went by while it was down", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 4 })), (f) => Effect.promise(() => f.close()))
      const first = yield* Scope.make()
      yield* startService(env(fake, freePort())).pipe(Scope.provide(first))
      yield* eventually("trades flowing", Effect.sync(() => (fake.sent.filter((f) => f.stream.endsWith("@aggTrade")).length >= 10 ? true : undefined)))
      yield* Scope.close(first, Exit.void)
      yield* Effect.sleep("700 millis")
      const port = freePort()
      yield* startService(env(fake, port))
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 30_000)
      const expected = symbols.flatMap((s) => recordedTradeIds(fake, s))
      const stored = yield* eventually("trades missed while down repaired", Effect.map(storedTradeIds, (ids) =>
        ids.length >= expected.length ? ids : undefined), 30_000)
      assert.sameMembers(stored, expected)
      const { body } = yield* getJson(`http://127.0.0.1:${port}/api/v1/exchange/gaps?channel=trades`)
      assert.isAtLeast(body.data.count, 1)
      assert.isTrue(body.data.gaps.every((g: any) => g.cause === "restart" && g.repair_status === "verified"))
    })), { timeout: 90_000 })
})
