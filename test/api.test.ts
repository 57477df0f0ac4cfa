/**
 * The HTTP API over real PostgreSQL: the contract's shapes, filters, summaries
 * over every matching row, base-asset symbol matching, and errors as JSON
 * (400 naming the parameter, 404, 503 when the database is gone).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { type LargeTradeRow, RowBatch } from "../src/domain/rows.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { TcpProxy } from "./support/proxy.ts"
import { freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const now = Date.now()
const trade = (
  exchange: string,
  symbol: string,
  id: string,
  valueUsd: number,
  minutesAgo: number,
  isLiquidation = false,
  sizes: Pick<LargeTradeRow, "size" | "sizeBase" | "sizeUnit"> = { size: 2, sizeBase: 2, sizeUnit: "base" }
): LargeTradeRow => ({
  id: `${exchange}_${symbol}_${id}`,
  exchange,
  symbol,
  side: "buy" as const,
  price: valueUsd / 2,
  ...sizes,
  valueUsd,
  timestamp: now - minutesAgo * 60_000,
  tradeId: id,
  isLiquidation,
  metadata: {}
})

const seed = Effect.gen(function*() {
  yield* runMigrations()
  yield* truncateAll
  const batch = new RowBatch()
  batch.large_trades.push(
    trade("binance", "BTCUSDT", "1", 200_000, 5),
    trade("binance-futures", "BTCUSDT", "2", 300_000, 10, true),
    // Deribit's amount is USD: 150,000 USD at 75,000 is 2 BTC.
    trade("deribit", "BTC-PERPETUAL", "3", 150_000, 20, false, { size: 150_000, sizeBase: 2, sizeUnit: "usd" }),
    // A row stored before sizes had a unit (migration 0015 could not fill it): both null.
    trade("cme", "BTCZ25", "4", 500_000, 30, false, { size: 2, sizeBase: null, sizeUnit: null }),
    trade("binance", "BTCDOMUSDT", "5", 100_000, 40),
    trade("binance", "ETHUSDT", "6", 60_000, 50),
    trade("binance", "BTCUSDT", "7", 900_000, 60 * 30)
  )
  yield* insertRows("large_trades", batch.large_trades)
  yield* insertRows("open_interest", [
    { id: "o1", exchange: "binance-futures", symbol: "BTCUSDT", openInterest: 10, openInterestBase: 10, openInterestUsd: 1_000, timestamp: now - 120_000, metadata: null },
    { id: "o2", exchange: "binance-futures", symbol: "BTCUSDT", openInterest: 11, openInterestBase: 11, openInterestUsd: 1_100, timestamp: now - 60_000, metadata: null },
    // 5 contracts of 10 USD at a mark of 100 USD: 0.5 coins. No mark: null.
    { id: "o3", exchange: "deribit", symbol: "BTC-PERPETUAL", openInterest: 5, openInterestBase: 0.5, openInterestUsd: 50, timestamp: now - 90_000, metadata: null },
    { id: "o4", exchange: "deribit", symbol: "BTC-PERPETUAL", openInterest: 5, openInterestBase: null, openInterestUsd: 500, timestamp: now - 95_000, metadata: null }
  ])
  const book = (exchange: string, symbol: string, secondsAgo: number) => ({
    id: `${exchange}_${symbol}_${secondsAgo}`, exchange, symbol, bids: [[99, 1]] as Array<[number, number]>, asks: [[101, 1]] as Array<[number, number]>,
    timestamp: now - secondsAgo * 1000, sequence: null, metadata: null
  })
  yield* insertRows("exchange_orderbooks", [
    book("binance", "BTCUSDT", 20), book("binance", "BTCUSDT", 10), book("deribit", "BTC-PERPETUAL", 5),
    book("binance", "ETHUSDT", 5), book("binance", "BTCDOMUSDT", 5)
  ])
  yield* insertRows("funding_rates", [
    { id: "f1", exchange: "binance-futures", symbol: "BTCUSDT", rate: 0.0001, predictedRate: null, timestamp: now - 60_000, nextFundingTime: now + 3_600_000, metadata: { interval_hours: 8 } },
    { id: "f2", exchange: "binance-futures", symbol: "ETHUSDT", rate: 0.0003, predictedRate: null, timestamp: now - 60_000, nextFundingTime: null, metadata: null }
  ])
  const alert = (id: string, rule: string, kind: string, exchange: string | null, symbol: string, minutesAgo: number) =>
    SqlClient.SqlClient.use((sql) => sql`INSERT INTO alerts (id, rule, kind, exchange, symbol, value, threshold, message, event_time, fired_at, details)
      VALUES (${id}, ${rule}, ${kind}, ${exchange}, ${symbol}, 2e6, 1e6, ${`${symbol} fired`},
        (${new Date(now - minutesAgo * 60_000 - 500).toISOString()}::timestamptz AT TIME ZONE 'UTC'),
        (${new Date(now - minutesAgo * 60_000).toISOString()}::timestamptz AT TIME ZONE 'UTC'), '{"n":1}'::jsonb)`)
  yield* alert("a1", "whale", "large_trade", "binance", "BTCUSDT", 1)
  yield* alert("a2", "whale", "large_trade", "deribit", "BTC-PERPETUAL", 2)
  yield* alert("a3", "venue-divergence", "price_divergence", null, "BTC", 3)
  yield* alert("a4", "whale", "large_trade", "binance", "ETHUSDT", 4)
  yield* alert("a5", "whale", "large_trade", "binance", "BTCUSDT", 60 * 25)
}).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

describe("HTTP API", () => {
  it.live("serves the contract's shapes with filters and whole-window summaries", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* seed
      const port = freePort()
      yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none" })
      const base = `http://127.0.0.1:${port}`

      const btc = yield* getJson(`${base}/api/v1/exchange/large-trades?symbol=BTC&limit=2`)
      assert.strictEqual(btc.status, 200)
      assert.strictEqual(btc.body.success, true)
      assert.strictEqual(btc.body.data.count, 4, "BTC matches BTCUSDT x2, BTC-PERPETUAL, BTCZ25; not BTCDOMUSDT; not outside 24 h")
      assert.strictEqual(btc.body.data.trades.length, 2)
      assert.strictEqual(btc.body.data.trades[0].trade_id, "1", "newest first")
      assert.strictEqual(btc.body.data.summary.total_value_usd, 1_150_000)
      assert.strictEqual(btc.body.data.summary.liquidation_count, 1)
      assert.deepStrictEqual(btc.body.data.summary.symbols, ["BTC-PERPETUAL", "BTCUSDT", "BTCZ25"])
      assert.deepStrictEqual(btc.body.filters, { symbol: "BTC", limit: 2, hours: 24 })
      assert.match(btc.body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
      assert.deepStrictEqual(Object.keys(btc.body.data.trades[0]), [
        "exchange", "symbol", "side", "price", "size", "size_base", "size_unit", "value_usd", "timestamp", "trade_id", "is_liquidation", "metadata"
      ])
      // Sizes as the venue counts them, in coins, and the unit, as stored.
      const all = yield* getJson(`${base}/api/v1/exchange/large-trades?symbol=BTC&hours=48`)
      const sizes = Object.fromEntries(all.body.data.trades.map((t: any) => [`${t.exchange}:${t.trade_id}`, [t.size, t.size_base, t.size_unit]]))
      assert.deepStrictEqual(sizes, {
        "binance:1": [2, 2, "base"], "binance-futures:2": [2, 2, "base"], "deribit:3": [150_000, 2, "usd"], "cme:4": [2, null, null],
        "binance:7": [2, 2, "base"]
      })

      const exact = yield* getJson(`${base}/api/v1/exchange/large-trades?symbol=BTCUSDT&exchange=binance&hours=48`)
      assert.strictEqual(exact.body.data.count, 2)
      const liquidations = yield* getJson(`${base}/api/v1/exchange/large-trades?only_liquidations=true&min_value_usd=250000`)
      assert.deepStrictEqual(liquidations.body.data.trades.map((t: any) => t.trade_id), ["2"])
      const sells = yield* getJson(`${base}/api/v1/exchange/large-trades?side=sell`)
      assert.strictEqual(sells.body.data.count, 0)

      const oi = yield* getJson(`${base}/api/v1/exchange/open-interest?symbol=BTC`)
      assert.strictEqual(oi.body.data.count, 4)
      assert.strictEqual(oi.body.data.summary.total_oi_usd, 1_150, "latest reading per instrument, not the sum of the series")
      assert.deepStrictEqual(oi.body.data.open_interest.map((o: any) => [o.open_interest, o.open_interest_base, o.open_interest_usd]), [
        [11, 11, 1_100], [5, 0.5, 50], [5, null, 500], [10, 10, 1_000]
      ], "newest first")
      assert.deepStrictEqual(Object.keys(oi.body.data.open_interest[0]), [
        "exchange", "symbol", "open_interest", "open_interest_base", "open_interest_usd", "timestamp", "metadata"
      ])

      const funding = yield* getJson(`${base}/api/v1/exchange/funding-rates?exchange=binance-futures`)
      assert.strictEqual(funding.body.data.count, 2)
      assert.closeTo(funding.body.data.summary.average_rate, 0.0002, 1e-12)
      assert.closeTo(funding.body.data.summary.average_rate_percent, 0.02, 1e-10)

      const books = yield* getJson(`${base}/api/v1/exchange/orderbooks?symbol=BTC`)
      assert.deepStrictEqual(books.body.data.orderbooks.map((b: any) => `${b.exchange}:${b.symbol}`), ["binance:BTCUSDT", "deribit:BTC-PERPETUAL"])
      assert.strictEqual(books.body.data.orderbooks[0].timestamp, new Date(now - 10_000).toISOString(), "the latest book per instrument")

      const alerts = yield* getJson(`${base}/api/v1/exchange/alerts`)
      assert.strictEqual(alerts.body.data.count, 4, "the last 24 h")
      assert.deepStrictEqual(alerts.body.data.alerts.map((a: any) => a.id), ["a1", "a2", "a3", "a4"], "newest first")
      assert.deepStrictEqual(alerts.body.data.summary.by_rule, { "venue-divergence": 1, whale: 3 })
      assert.deepStrictEqual(alerts.body.data.alerts[0], {
        id: "a1", rule: "whale", rule_kind: "large_trade", exchange: "binance", symbol: "BTCUSDT", value: 2e6, threshold: 1e6,
        message: "BTCUSDT fired", event_time: new Date(now - 60_000 - 500).toISOString(), fired_at: new Date(now - 60_000).toISOString(), details: { n: 1 }
      })
      const btcAlerts = yield* getJson(`${base}/api/v1/exchange/alerts?symbol=BTC&rule=WHALE&hours=48`)
      assert.deepStrictEqual(btcAlerts.body.data.alerts.map((a: any) => a.id), ["a1", "a2", "a5"], "BTC instruments of rule whale (names are lower case)")
      const byKind = yield* getJson(`${base}/api/v1/exchange/alerts?rule_kind=price_divergence`)
      assert.deepStrictEqual(byKind.body.data.alerts.map((a: any) => a.id), ["a3"])
      const byExchange = yield* getJson(`${base}/api/v1/exchange/alerts?exchange=deribit&limit=1`)
      assert.deepStrictEqual(byExchange.body.data.alerts.map((a: any) => a.id), ["a2"])

      const openapi = yield* getJson(`${base}/openapi.json`)
      assert.strictEqual(openapi.status, 200)
      assert.property(openapi.body.paths, "/api/v1/exchange/large-trades")
      assert.property(openapi.body.paths, "/api/v1/exchange/alerts")
    })), { timeout: 60_000 })

  it.live("answers bad input with a 400 that names the parameter, and unknown routes with a JSON 404", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = freePort()
      yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none" })
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      const cases: Array<[string, string]> = [
        ["large-trades?hours=abc", "hours"],
        ["large-trades?hours=0", "hours"],
        ["large-trades?hours=8761", "hours"],
        ["large-trades?limit=1001", "limit"],
        ["large-trades?limit=2.5", "limit"],
        ["large-trades?side=long", "side"],
        ["large-trades?only_liquidations=yes", "only_liquidations"],
        ["large-trades?min_value_usd=-1", "min_value_usd"],
        ["large-trades?symbol=BTC;DROP", "symbol"],
        ["large-trades?limt=5", "limt"],
        ["funding-rates?limit=5&limit=6", "limit"],
        ["open-interest?side=buy", "side"],
        ["orderbooks?depth=0", "depth"],
        ["alerts?rule=no%20spaces", "rule"],
        ["alerts?rule_kind=large-trade", "rule_kind"],
        ["alerts?channel=trades", "channel"],
        ["funding-comparison?max_age_minutes=0", "max_age_minutes"],
        ["open-interest-aggregate?hours=8761", "hours"],
        ["term-structure?limit=5", "limit"]
      ]
      for (const [query, parameter] of cases) {
        const { status, body } = yield* getJson(`${base}/${query}`)
        assert.strictEqual(status, 400, query)
        assert.strictEqual(body.success, false)
        assert.strictEqual(body.error.code, "INVALID_PARAMETER")
        assert.include(body.error.message, parameter, query)
        assert.isString(body.timestamp)
      }
      const missing = yield* getJson(`${base}/nothing-here`)
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(missing.body.error.code, "NOT_FOUND")
    })), { timeout: 60_000 })

  it.live("answers 503 in the contract's shape when the database is unreachable, and recovers", () =>
    Effect.scoped(Effect.gen(function*() {
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => TcpProxy.start(5432)), (p) => Effect.promise(() => p.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}${new URL(postgresUrl).pathname}`,
        PORT: String(port),
        HOST: "127.0.0.1",
        EXCHANGES: "none"
      })
      const base = `http://127.0.0.1:${port}`
      assert.strictEqual((yield* getJson(`${base}/health`)).status, 200)
      yield* Effect.promise(() => proxy.cut())
      const health = yield* getJson(`${base}/health`)
      assert.strictEqual(health.status, 503)
      assert.strictEqual(health.body.database.reachable, false)
      const query = yield* getJson(`${base}/api/v1/exchange/large-trades`)
      assert.strictEqual(query.status, 503)
      assert.strictEqual(query.body.error.code, "DATABASE_UNAVAILABLE")
      yield* Effect.promise(() => proxy.restore())
      const again = yield* getJson(`${base}/api/v1/exchange/large-trades`)
      assert.strictEqual(again.status, 200)
    })), { timeout: 60_000 })
})

