/**
 * Bybit end to end: the fake Bybit replays the real 2026 session (spot and
 * linear; inverse and liquidations synthesized in the documented formats)
 * into the running service, on PostgreSQL and on the embedded database.
 * Every trade is stored once with its taker side, liquidations with the
 * order's side and the position's, funding with its interval, open interest
 * valued as Bybit values it, books as the venue's own.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBybit } from "./fake/bybit.ts"
import { databases, eventually, freePort, getData, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const clean = truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

const env = (fake: FakeBybit) => ({
  EXCHANGES: "bybit,bybit-derivatives",
  BYBIT_WS_URL: fake.wsUrl,
  BYBIT_REST_URL: fake.httpUrl,
  BYBIT_SPOT_SYMBOLS: "BTCUSDT,ETHUSDT",
  BYBIT_LINEAR_SYMBOLS: "BTCUSDT,ETHUSDT,SOLUSDT,DOGEUSDT",
  BYBIT_INVERSE_SYMBOLS: "BTCUSD,ETHUSD",
  BYBIT_PING_SECONDS: "1",
  LARGE_TRADE_THRESHOLD_BTC: "1",
  LARGE_TRADE_THRESHOLD_ETH: "1",
  LARGE_TRADE_THRESHOLD_DEFAULT: "1",
  ORDERBOOK_INTERVAL_SECONDS: "0.5",
  OPEN_INTEREST_INTERVAL_SECONDS: "1",
  FUNDING_SAMPLE_SECONDS: "1",
  WRITER_FLUSH_MS: "20",
  // The session is 43 s long: once it has played, its quiet streams must not read as stale while the test looks.
  FRESHNESS_MIN_STALE_SECONDS: "120"
})

const worthADollar = (category: string) => (t: any) => category === "inverse" ? Number(t.v) >= 1 : Number(t.p) * Number(t.v) >= 1

describe.each(databases)("bybit through the live service into %s", (name, database) => {
  it.live("every trade once with its taker side; liquidations, funding, open interest and books as Bybit states them", () =>
    Effect.scoped(Effect.gen(function*() {
      if (name === "postgres") yield* clean
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBybit.start({ frameIntervalMs: 2 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({ ...database(), PORT: String(port), HOST: "127.0.0.1", ...env(fake) })
      const base = `http://127.0.0.1:${port}`
      const api = `${base}/api/v1/exchange`
      yield* eventually("the session played out", Effect.sync(() => (fake.finished() ? true : undefined)), 60_000)

      const expected = new Map<string, any>()
      for (const [venue, category] of [["bybit", "spot"], ["bybit-derivatives", "linear"], ["bybit-derivatives", "inverse"]] as const) {
        for (const t of fake.played(category).filter(worthADollar(category))) expected.set(`${venue}/${t.s}/${t.i}`, t)
      }
      const stored = yield* eventually("every trade stored", Effect.gen(function*() {
        const rows: Array<any> = []
        for (const exchange of ["bybit", "bybit-derivatives"]) {
          const answer = (yield* getData(`${api}/large-trades?exchange=${exchange}&only_liquidations=false&limit=1000`))
          rows.push(...answer.trades.filter((t: any) => !t.is_liquidation))
        }
        return rows.length >= expected.size ? rows : undefined
      }), 30_000)
      const keys = stored.map((t: any) => `${t.exchange}/${t.symbol}/${t.trade_id}`)
      assert.strictEqual(new Set(keys).size, keys.length, "no trade twice")
      assert.sameMembers(keys, [...expected.keys()])
      for (const row of stored) {
        const t = expected.get(`${row.exchange}/${row.symbol}/${row.trade_id}`)
        assert.strictEqual(row.side, t.S === "Buy" ? "buy" : "sell", "S is the taker's side")
        const usd = row.exchange === "bybit-derivatives" && row.symbol.endsWith("USD") ? Number(t.v) : Number(t.p) * Number(t.v)
        assert.closeTo(row.value_usd, usd, 0.01)
      }
      assert.isTrue(stored.some((t: any) => t.symbol === "BTCUSD" && t.metadata.contract_type === "inverse"))

      const liquidations = (yield* getData(`${api}/large-trades?exchange=bybit-derivatives&only_liquidations=true&limit=1000`)).trades
      assert.isAbove(liquidations.length, 0)
      for (const l of liquidations) {
        assert.strictEqual(l.side, l.metadata.position_side === "long" ? "sell" : "buy", "the order that closes a long is a sell")
        assert.strictEqual(l.metadata.price_kind, "bankruptcy")
      }

      const funding = (yield* getData(`${api}/funding-rates?exchange=bybit-derivatives&symbol=BTCUSDT&limit=10`)).funding_rates
      assert.isAbove(funding.length, 0)
      assert.strictEqual(funding[0].rate, 0.0001)
      assert.strictEqual(funding[0].metadata.interval_hours, 8)
      assert.strictEqual(funding[0].next_funding_time, "2026-08-10T00:00:00.000Z", "the next settlement as Bybit states it (nextFundingTime 1786320000000)")

      const oi = (yield* getData(`${api}/open-interest?exchange=bybit-derivatives&limit=1000`)).open_interest
      const linearBtc = oi.find((r: any) => r.symbol === "BTCUSDT")
      assert.closeTo(linearBtc.open_interest_usd / linearBtc.open_interest, linearBtc.metadata.mark_price, 0.01, "linear: contracts x 1 coin x mark")
      const inverseBtc = oi.find((r: any) => r.symbol === "BTCUSD")
      assert.strictEqual(inverseBtc.open_interest_usd, inverseBtc.open_interest, "inverse: each contract is 1 USD")

      yield* Effect.sleep("1500 millis")
      const books = (yield* getData(`${api}/orderbooks?exchange=bybit&symbol=BTCUSDT`)).orderbooks
      assert.strictEqual(books.length, 1)
      assert.deepStrictEqual([books[0].bids[0][0], books[0].asks[0][0]], [...fake.bestOf("spot", "BTCUSDT")!], "the stored book is the venue's")

      const everyBtc = (yield* getData(`${api}/large-trades?symbol=BTC&exchange=bybit-derivatives&limit=1`)).summary.symbols
      assert.sameMembers(everyBtc, ["BTCUSD", "BTCUSDT"], "symbol=BTC finds the linear and the inverse perpetual")

      const health = (yield* getJson(`${base}/health`)).body
      assert.sameMembers(health.feeds.map((f: any) => f.feed), ["bybit/spot", "bybit-derivatives/linear", "bybit-derivatives/inverse"])
      assert.isTrue(health.feeds.every((f: any) => f.state === "connected"))
      assert.deepInclude(health.venues, { bybit: "running", "bybit-derivatives": "running" })
      const gaps = (yield* getData(`${api}/gaps`))
      assert.strictEqual(gaps.count, 0, JSON.stringify(gaps.gaps).slice(0, 300))
      assert.isAtLeast(fake.pings, 3, "a ping a second on each connection")
      assert.isTrue(fake.controlMessages.every((c) => c.category !== "spot" || c.message.op !== "subscribe" || c.message.args.length <= 10), "spot subscribe requests hold at most 10 args")
    })), { timeout: 120_000 })
})
