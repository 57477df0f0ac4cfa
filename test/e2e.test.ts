/**
 * End to end: the service against the fake Binance and a real database (the
 * PostgreSQL on 127.0.0.1:5432 and the embedded one), from socket to HTTP.
 * Every number served is checked against the frames the fake sent.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { LiveBooks } from "../src/book/live.ts"
import { MarketDataClient } from "../src/client.ts"
import { FakeBinance } from "./fake/binance.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { databases, eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const spotSymbols = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
const futuresSymbols = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
const round2 = (x: number) => Math.round(x * 100) / 100

describe.each(databases)("service end to end on %s", (_name, database) => {
  it.live("stores what the fake exchange sent and serves it over the API", () =>
    Effect.scoped(Effect.gen(function*() {
      if (_name === "postgres") yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start()), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      const context = yield* startService({
        ...database(),
        PORT: String(port),
        HOST: "127.0.0.1",
        EXCHANGES: "binance,binance-futures",
        BINANCE_SYMBOLS: [...spotSymbols, "NOSUCHSYMBOL"].join(","),
        BINANCE_FUTURES_SYMBOLS: futuresSymbols.join(","),
        BINANCE_WS_URL: fake.wsUrl,
        BINANCE_REST_URL: fake.httpUrl,
        BINANCE_FUTURES_WS_URL: fake.wsUrl,
        BINANCE_FUTURES_REST_URL: fake.httpUrl,
        LARGE_TRADE_THRESHOLD_DEFAULT: "1",
        ORDERBOOK_INTERVAL_SECONDS: "1",
        OPEN_INTEREST_INTERVAL_SECONDS: "1",
        FUNDING_SAMPLE_SECONDS: "1",
        WRITER_FLUSH_MS: "50"
      })
      assert.isDefined(Context.get(context, SqlClient.SqlClient))
      // The API read through the typed client users get (src/client.ts): typed queries, decoded answers.
      const client = yield* MarketDataClient.make(`http://127.0.0.1:${port}`)

      // Every recorded aggTrade of a USD-valued instrument becomes a row (threshold 1 USD).
      // LRCBTC (BTC quote, no BTC-USD price on this feed) and BLZETH (ETH quote) must not be valued as USD.
      const valuedTrades = () =>
        fake.sent.filter((f) => f.stream.endsWith("@aggTrade") && /USDT$/.test(String(f.data.s)))
      yield* eventually("the recordings played out", Effect.sync(() => (fake.finished("spot") && fake.finished("futures") ? true : undefined)))
      const expectedTrades = valuedTrades().length
      assert.isAtLeast(expectedTrades, 80, "the recordings hold 92 USD-valued aggTrades")
      const trades = yield* eventually("all trades stored", Effect.gen(function*() {
        const body = yield* client.exchange.largeTrades({ query: { hours: 1, limit: 1000, only_liquidations: false } })
        return body.data.count >= expectedTrades + 4 ? body : undefined
      }))
      const byId = new Map(trades.data.trades.map((t) => [`${t.exchange}/${t.trade_id}`, t]))
      for (const frame of valuedTrades()) {
        const exchange = frame.market === "spot" ? "binance" : "binance-futures"
        const row = byId.get(`${exchange}/${frame.data.a}`)
        if (row === undefined) return assert.fail(`trade ${frame.data.a} not stored`)
        const price = Number(frame.data.p)
        const size = Number(frame.data.q)
        assert.strictEqual(row.price, price)
        assert.strictEqual(row.size, size)
        assert.strictEqual(row.value_usd, round2(price * size))
        assert.strictEqual(row.side, frame.data.m ? "sell" : "buy")
        assert.strictEqual(row.timestamp, new Date(frame.data.T as number).toISOString())
        assert.strictEqual(row.is_liquidation, false)
      }
      assert.isFalse(trades.data.trades.some((t) => t.symbol === "LRCBTC" || t.symbol === "BLZETH"))

      // Liquidations: ap x z, flagged, sampled.
      const liquidations = yield* client.exchange.largeTrades({ query: { only_liquidations: true, exchange: "binance-futures" } })
      const sentLiquidations = fake.sent.filter((f) => f.stream.endsWith("@forceOrder"))
      assert.strictEqual(liquidations.data.count, sentLiquidations.length)
      for (const frame of sentLiquidations) {
        const order = frame.data.o as Record<string, string>
        const row = liquidations.data.trades.find((t) => t.symbol === order.s)!
        assert.strictEqual(row.value_usd, round2(Number(order.ap) * Number(order.z)))
        assert.strictEqual(row.side, "sell")
        assert.deepInclude(row.metadata as object, { liquidated_position: "long", sampled: true })
      }
      assert.strictEqual(liquidations.data.summary.liquidation_count, sentLiquidations.length)

      // Funding: Binance's rate, no predicted rate, the interval in metadata.
      const funding = yield* eventually("funding rows", Effect.gen(function*() {
        const body = yield* client.exchange.fundingRates({ query: { symbol: "SUSHIUSDT" } })
        return body.data.count > 0 ? body : undefined
      }))
      const rate = funding.data.funding_rates[0]!
      assert.strictEqual(rate.rate, 0.0001)
      assert.strictEqual(rate.predicted_rate, null)
      assert.deepInclude(rate.metadata as object, { interval_hours: 8 })
      assert.match(rate.next_funding_time ?? "", /Z$/)

      // Open interest in contracts and USD at the mark price; the total sums each instrument's latest reading.
      const oi = yield* eventually("open interest for every futures symbol", Effect.gen(function*() {
        const body = yield* client.exchange.openInterest({ query: { exchange: "binance-futures", limit: 1000 } })
        return body.data.summary.symbols.length === futuresSymbols.length ? body : undefined
      }))
      let total = 0
      for (const symbol of futuresSymbols) {
        const latest = oi.data.open_interest.find((r) => r.symbol === symbol)!
        assert.strictEqual(latest.open_interest, fake.openInterest.get(symbol))
        assert.closeTo(latest.open_interest_usd, latest.open_interest * (latest.metadata as { mark_price: number }).mark_price, 0.01)
        total += latest.open_interest_usd
      }
      assert.closeTo(oi.data.summary.total_oi_usd, total, 0.05)

      // Order books: synced from snapshot + diffs, top 20, never crossed.
      const books = yield* eventually("books for every futures symbol", Effect.gen(function*() {
        const body = yield* client.exchange.orderBooks({ query: { exchange: "binance-futures" } })
        return body.data.count === futuresSymbols.length ? body : undefined
      }))
      for (const book of books.data.orderbooks) {
        assert.isAtMost(book.bids.length, 20)
        assert.isAbove(book.bids.length, 0)
        assert.isBelow(book.bids[0]![0], book.asks[0]![0])
        assert.deepInclude(book.metadata as object, { book_state: "live" })
      }
      // The same books in the read-only live view (book/live.ts), registered by the venue's own processor.
      const view = Context.get(context, LiveBooks).books().filter((b) => b.exchange === "binance-futures")
      assert.sameMembers(view.map((b) => b.symbol), futuresSymbols)
      for (const b of view) {
        assert.isFalse(b.crossed, b.symbol)
        assert.isBelow(b.bestBid!, b.bestAsk!, b.symbol)
        assert.isAbove(b.bidSize!, 0, b.symbol)
        assert.isNotNull(b.receivedAt, b.symbol)
        assert.isNotNull(b.exchangeTime, b.symbol)
      }

      // Health names every feed; the unknown symbol was skipped without harming the others.
      const health = yield* getJson(`http://127.0.0.1:${port}/health`)
      assert.strictEqual(health.status, 200)
      assert.deepStrictEqual(health.body.venues, { binance: "running", "binance-futures": "running" })
      assert.sameMembers(health.body.feeds.map((f: any) => f.feed), ["binance/market", "binance-futures/public", "binance-futures/market"])
      // How late trades arrive, per feed that carries them, in /health and /metrics.
      for (const name of ["binance/market", "binance-futures/market"]) {
        const lag = health.body.feeds.find((f: any) => f.feed === name).trade_lag_ms
        assert.isAbove(lag.samples, 0, name)
        assert.isTrue(lag.min_ms <= lag.p50_ms && lag.p50_ms <= lag.p99_ms, `${name}: ${JSON.stringify(lag)}`)
      }
      assert.isNull(health.body.feeds.find((f: any) => f.feed === "binance-futures/public").trade_lag_ms)
      const metrics = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))
      assert.match(metrics, /feed_trade_lag_ms\{[^}]*feed="binance\/market"[^}]*quantile="0\.99"[^}]*\} -?\d+/)
    }).pipe(Effect.provide(MarketDataClient.layer))), { timeout: 90_000 })
})
