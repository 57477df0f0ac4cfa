/**
 * The cross-venue views over real PostgreSQL and the real API: funding across
 * venues (/funding-comparison), open interest summed over venues with its
 * 5-minute history (/open-interest-aggregate), and the basis term structure
 * (/term-structure). Rows are stored through the writer's inserts at pinned
 * times (test/support/cross-venue-scenario.ts: read it beside this); the
 * service's clock is pinned to NOW; every expected figure is worked out by
 * hand in the comments.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { assetOf, expiryOf } from "../src/analytics/instruments.ts"
import { pinnedClock } from "./support/clock.ts"
import { NOW, seedCrossVenueScenario as seed } from "./support/cross-venue-scenario.ts"
import { freePort, getData, postgresUrl, startService } from "./support/service.ts"

const serve = (env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const port = freePort()
    yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none", ...env }, pinnedClock(NOW).layer)
    return `http://127.0.0.1:${port}/api/v1/exchange`
  })

const close = (actual: number | null, expected: number, what: string, tolerance = 1e-9) => {
  assert.isNotNull(actual, what)
  assert.closeTo(actual!, expected, tolerance, what)
}

/** Set SHOW_ANSWERS=1 to print each answer (the report's examples). */
const show = (what: string, data: unknown) => {
  if (process.env.SHOW_ANSWERS === "1") console.log(`${what}\n${JSON.stringify(data, null, 2)}`)
}

describe("cross-venue views", () => {
  it("reads an instrument's asset and a dated future's expiry from its symbol", () => {
    const assets: Array<[string, string]> = [
      ["BTCUSDT", "BTC"], ["BTC-PERPETUAL", "BTC"], ["BTCPERP", "BTC"], ["BTC-USDT-SWAP", "BTC"], ["MBTZ26", "BTC"], ["METZ26", "ETH"],
      ["ETH-USD-270326", "ETH"], ["ETHBTC", "ETH"], ["BTCDOMUSDT", "BTCDOM"], ["1000PEPEUSDT", "1000PEPE"], ["BTC", "BTC"], ["btcusdt", "BTC"]
    ]
    for (const [symbol, asset] of assets) assert.strictEqual(assetOf(symbol), asset, symbol)
    const expiries: Array<[string, string | undefined]> = [
      ["BTC-25DEC26", "2026-12-25T08:00:00.000Z"], // Deribit: the day named, 08:00 UTC
      ["BTCUSDT-25DEC26", "2026-12-25T08:00:00.000Z"], // Bybit linear
      ["BTCUSDT_261225", "2026-12-25T08:00:00.000Z"], // Binance: YYMMDD
      ["BTC-USD-270326", "2027-03-26T08:00:00.000Z"], // OKX
      // Bybit inverse: the last Friday of the month. 2026-12-31 is a Thursday, so Friday the 25th; 2027-03-31 a Wednesday, so the 26th.
      ["BTCUSDZ26", "2026-12-25T08:00:00.000Z"],
      ["BTCUSDH27", "2027-03-26T08:00:00.000Z"],
      ["BTC-PERPETUAL", undefined], ["BTCUSDT", undefined], ["BTC-USDT-SWAP", undefined], ["BTC-25DEC26-100000-C", undefined],
      ["BTCZ26", undefined], ["BTCUSDT_261345", undefined]
    ]
    for (const [symbol, expiry] of expiries) {
      const at = expiryOf(symbol)
      assert.strictEqual(at === undefined ? undefined : new Date(at).toISOString(), expiry, symbol)
    }
  })

  it.live("funding across venues: each on its own interval, OI-weighted, high-low spread, stale left out", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* seed
      const base = yield* serve()
      const data = yield* getData(`${base}/funding-comparison?symbol=BTC`)
      show("funding-comparison?symbol=BTC", data)
      assert.strictEqual(data.max_age_minutes, 60)
      assert.deepStrictEqual(data.assets.map((a: any) => a.asset), ["BTC"])
      const btc = data.assets[0]
      const venue = (exchange: string) => btc.venues.find((v: any) => v.exchange === exchange)
      assert.deepStrictEqual(btc.venues.map((v: any) => `${v.exchange}:${v.symbol}`), ["binance-futures:BTCUSDT", "bybit:BTCUSDT", "okx:BTC-USDT-SWAP"])
      // binance-futures, 8-hourly: 0.0001 per 8 h; 0.0001 x 24/8 x 365 = 0.0001 x 1095 = 0.1095 a year. Its latest reading, not the 0.0009 before.
      assert.strictEqual(venue("binance-futures").rate, 0.0001)
      close(venue("binance-futures").rate_8h, 0.0001, "binance 8h")
      close(venue("binance-futures").rate_annualized, 0.1095, "binance annualised")
      // Predicted 0.00012 x 1095 = 0.1314.
      close(venue("binance-futures").predicted_rate_annualized, 0.1314, "binance predicted annualised")
      // bybit, hourly: 0.00002 x 8 = 0.00016 per 8 h; 0.00002 x 24/1 x 365 = 0.00002 x 8760 = 0.1752 a year.
      assert.strictEqual(venue("bybit").interval_hours, 1)
      close(venue("bybit").rate_8h, 0.00016, "bybit 8h")
      close(venue("bybit").rate_annualized, 0.1752, "bybit annualised")
      // okx: 0.00015 x 1095 = 0.16425.
      close(venue("okx").rate_annualized, 0.16425, "okx annualised")
      // Weighted by open interest: binance 3,000,000 USD, bybit 1,000,000 USD (okx's is 3 h old: unweighted).
      // (0.1095 x 3,000,000 + 0.1752 x 1,000,000) / 4,000,000 = (328,500 + 175,200) / 4,000,000 = 0.125925 a year;
      // per 8 h: (0.0001 x 3 + 0.00016 x 1) / 4 = 0.000115.
      close(btc.open_interest_weighted.rate_annualized, 0.125925, "weighted annualised")
      close(btc.open_interest_weighted.rate_8h, 0.000115, "weighted 8h")
      assert.strictEqual(btc.open_interest_weighted.weight_usd, 4_000_000)
      assert.deepStrictEqual(btc.open_interest_weighted.unweighted.map((u: any) => u.exchange), ["okx"])
      // Simple mean of the three: (0.1095 + 0.1752 + 0.16425) / 3 = 0.44895 / 3 = 0.14965.
      close(btc.simple_average.rate_annualized, 0.14965, "simple average")
      // Spread: bybit 0.1752 - binance 0.1095 = 0.0657 a year; 0.00016 - 0.0001 = 0.00006 per 8 h.
      assert.strictEqual(btc.spread.high.exchange, "bybit")
      assert.strictEqual(btc.spread.low.exchange, "binance-futures")
      close(btc.spread.annualized, 0.0657, "spread annualised")
      close(btc.spread.per_8h, 0.00006, "spread 8h")
      // Deribit's reading is 2 h old: out, with its age (7,200 s, plus the seconds the test has run).
      assert.deepStrictEqual(btc.left_out.map((l: any) => l.exchange), ["deribit"])
      assert.closeTo(btc.left_out[0].age_seconds, 7200, 60)
      assert.strictEqual(btc.left_out[0].timestamp, "2026-12-04T10:00:30.000Z")

      // All assets: ETH too, 4-hourly: 0.0001 x 24/4 x 365 = 0.219; no open interest: unweighted, no average.
      const all = yield* getData(`${base}/funding-comparison`)
      assert.deepStrictEqual(all.assets.map((a: any) => a.asset), ["BTC", "ETH"])
      const eth = all.assets[1]
      close(eth.venues[0].rate_annualized, 0.219, "eth annualised")
      assert.isNull(eth.open_interest_weighted.rate_annualized)
      assert.isNull(eth.spread, "one venue: no spread")
      // An instrument's symbol, in any case, stands for its asset.
      const bySymbol = yield* getData(`${base}/funding-comparison?symbol=btcusdt`)
      assert.deepStrictEqual(bySymbol.assets.map((x: any) => [x.asset, x.venues.length]), [["BTC", 3]])
      // A longer max age takes deribit in: 0.0005 x 1095 = 0.5475, the new high; spread 0.5475 - 0.1095 = 0.438.
      const lenient = yield* getData(`${base}/funding-comparison?symbol=BTC&max_age_minutes=180`)
      assert.strictEqual(lenient.assets[0].spread.high.exchange, "deribit")
      close(lenient.assets[0].spread.annualized, 0.438, "lenient spread")
    })), { timeout: 60_000 })

  it.live("open interest across venues: coins and USD per venue, the total, a 5-minute history with carry-forward", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* seed
      const base = yield* serve()
      const data = yield* getData(`${base}/open-interest-aggregate?symbol=BTC&hours=1`)
      show("open-interest-aggregate?symbol=BTC&hours=1", data)
      const btc = data.assets[0]
      assert.strictEqual(btc.asset, "BTC")
      // Latest: binance 30 BTC / 3,000,000; bybit BTCUSDT 10 / 1,000,000; bybit BTCUSD ? / 200,000; deribit 5 / 500,000.
      // USD: 3,000,000 + 1,000,000 + 200,000 + 500,000 = 4,700,000. Coins: 30 + 10 + 5 = 45 (BTCUSD has none).
      assert.strictEqual(btc.total.open_interest_usd, 4_700_000)
      assert.strictEqual(btc.total.open_interest_base, 45)
      assert.strictEqual(btc.total.instruments, 4)
      assert.deepStrictEqual(btc.total.base_unknown, [{ exchange: "bybit", symbol: "BTCUSD" }])
      // bybit: 1,000,000 + 200,000 = 1,200,000 USD; coins unknown (BTCUSD).
      assert.deepStrictEqual(btc.by_exchange.find((e: any) => e.exchange === "bybit"), { exchange: "bybit", open_interest_base: null, open_interest_usd: 1_200_000, instruments: 2 })
      assert.deepStrictEqual(btc.by_exchange.find((e: any) => e.exchange === "binance-futures"), { exchange: "binance-futures", open_interest_base: 30, open_interest_usd: 3_000_000, instruments: 1 })
      // okx's is 3 h old: out.
      assert.deepStrictEqual(btc.left_out.map((l: any) => l.exchange), ["okx"])

      // History, 1 h to 12:00:30: buckets 11:00 .. 12:00; carry-forward 15 min (a reading counts until 15 min before a bucket's end).
      const point = (hhmm: string) => btc.history.find((p: any) => p.time === `2026-12-04T${hhmm}:00.000Z`)
      assert.strictEqual(btc.history.length, 13)
      assert.isTrue(btc.history.every((p: any) => p.resolution === "5m"))
      // 11:00-11:05: binance 11:02 (2,800,000, 28 BTC) + bybit's 10:58 carried (11:05 - 10:58 = 7 min): 3,700,000, 37 BTC.
      assert.deepStrictEqual(point("11:00"), { time: "2026-12-04T11:00:00.000Z", resolution: "5m", open_interest_usd: 3_700_000, open_interest_base: 37, instruments: 2, carried_forward: 1 })
      // 11:05-11:10: binance 11:02 carried (8 min) + bybit 11:07 (950,000, 9.5): 3,750,000, 37.5.
      assert.deepStrictEqual(point("11:05"), { time: "2026-12-04T11:05:00.000Z", resolution: "5m", open_interest_usd: 3_750_000, open_interest_base: 37.5, instruments: 2, carried_forward: 1 })
      // 11:10-11:15: binance's last in the bucket, 11:14 (2,950,000, 29.5), not 11:12; bybit 11:07 carried (8 min): 3,900,000, 39.
      assert.deepStrictEqual(point("11:10"), { time: "2026-12-04T11:10:00.000Z", resolution: "5m", open_interest_usd: 3_900_000, open_interest_base: 39, instruments: 2, carried_forward: 1 })
      // 11:15-11:20: both carried (6 and 13 min): 3,900,000.
      assert.deepStrictEqual(point("11:15"), { time: "2026-12-04T11:15:00.000Z", resolution: "5m", open_interest_usd: 3_900_000, open_interest_base: 39, instruments: 2, carried_forward: 2 })
      // 11:20-11:25: bybit's 11:07 is 18 min before the end: dropped; binance's 11:14 (11 min) alone: 2,950,000.
      assert.deepStrictEqual(point("11:20"), { time: "2026-12-04T11:20:00.000Z", resolution: "5m", open_interest_usd: 2_950_000, open_interest_base: 29.5, instruments: 1, carried_forward: 1 })
      // 11:25-11:30: binance's 11:14 is 16 min before the end: nothing, and nothing claimed.
      assert.deepStrictEqual(point("11:25"), { time: "2026-12-04T11:25:00.000Z", resolution: "5m", open_interest_usd: null, open_interest_base: null, instruments: 0, carried_forward: 0 })
      // 11:55-12:00: the four latest: 4,700,000; coins unknown (BTCUSD has none).
      assert.deepStrictEqual(point("11:55"), { time: "2026-12-04T11:55:00.000Z", resolution: "5m", open_interest_usd: 4_700_000, open_interest_base: null, instruments: 4, carried_forward: 0 })
      assert.deepStrictEqual(point("12:00"), { time: "2026-12-04T12:00:00.000Z", resolution: "5m", open_interest_usd: 4_700_000, open_interest_base: null, instruments: 4, carried_forward: 4 })
    })), { timeout: 60_000 })

  it.live("open-interest history beyond the 5-minute horizon comes from the hourly rollup", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* seed
      // 5-minute points for the last hour only: 3 h back to 09:00:30 gives hourly points 09:00 and 10:00, then 5-minute from 11:00.
      const base = yield* serve({ OI_HISTORY_5M_HOURS: "1" })
      const data = yield* getData(`${base}/open-interest-aggregate?symbol=BTC&hours=3`)
      const history = data.assets[0].history
      assert.strictEqual(data.five_minute_from, "2026-12-04T11:00:00.000Z")
      assert.strictEqual(history.length, 2 + 13)
      // 09:00-10:00: okx's 09:00:30 (2,000,000): the rollup keeps USD only, so no coins.
      assert.deepStrictEqual(history[0], { time: "2026-12-04T09:00:00.000Z", resolution: "1h", open_interest_usd: 2_000_000, open_interest_base: null, instruments: 1, carried_forward: 0 })
      // 10:00-11:00: okx's 09:00:30 is 119.5 min before the end: dropped; bybit 10:58 (900,000). That reading is also
      // read raw (the 5-minute part starts from each series' reading up to 15 min before it), so its 9 BTC are known.
      assert.deepStrictEqual(history[1], { time: "2026-12-04T10:00:00.000Z", resolution: "1h", open_interest_usd: 900_000, open_interest_base: 9, instruments: 1, carried_forward: 0 })
      // The 5-minute part is as before: 11:00 is 3,700,000 and 37 BTC (bybit's 10:58 raw row, with its coins).
      assert.deepStrictEqual(history[2], { time: "2026-12-04T11:00:00.000Z", resolution: "5m", open_interest_usd: 3_700_000, open_interest_base: 37, instruments: 2, carried_forward: 1 })
    })), { timeout: 60_000 })

  it.live("term structure: dated futures and perpetuals against the spot reference, by expiry", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* seed
      const base = yield* serve()
      const data = yield* getData(`${base}/term-structure?symbol=BTC`)
      show("term-structure?symbol=BTC", data)
      const btc = data.assets[0]
      assert.strictEqual(btc.spot.source, "coinbase:BTC-USD latest stored book mid")
      assert.strictEqual(btc.spot.price, 100_000)
      assert.closeTo(btc.spot.age_seconds, 40, 30)
      // bybit's perpetual is left out (below): its mark is 140 s from the spot reference.
      assert.deepStrictEqual(btc.curve.map((c: any) => `${c.exchange}:${c.symbol}`), [
        "binance-futures:BTCUSDT", "cme:BTCZ26", "deribit:BTC-25DEC26", "cme:BTCF27"
      ])
      assert.strictEqual(data.max_price_skew_seconds, 120)
      const entry = (symbol: string, exchange: string) => btc.curve.find((c: any) => c.symbol === symbol && c.exchange === exchange)
      // Perpetual, binance-futures: mark 100,050 - spot 100,000 = 50; 50 / 100,000 = 0.05 %; no expiry, no annualised figure.
      const perp = entry("BTCUSDT", "binance-futures")
      assert.strictEqual(perp.kind, "perpetual")
      close(perp.basis, 50, "perp basis")
      close(perp.basis_percent, 0.05, "perp basis %")
      assert.isNull(perp.annualized_basis_percent)
      // binance-futures' mark (11:58:30) and the spot (11:59:50) are 80 s apart: within 120 s, compared (above).
      // Deribit BTC-25DEC26, expiring 2026-12-25 08:00 UTC: mid 100,900 - 100,000 = 900, 0.9 %.
      // Days from 12-04 12:00:30: 20 d 19 h 59 min 30 s = 20 + 71,970 / 86,400 = 20.832986; 0.9 x 365 / 20.832986 = 15.76826 % a year.
      const deribit = entry("BTC-25DEC26", "deribit")
      close(deribit.basis, 900, "deribit basis")
      close(deribit.basis_percent, 0.9, "deribit basis %")
      close(deribit.days_to_expiry, 20.832986, "deribit days", 1e-3)
      close(deribit.annualized_basis_percent, 15.76826, "deribit annualised", 1e-3)
      // CME BTCF27 (settlement 101,500 only, expiring 2027-01-29): 1,500, 1.5 %;
      // days to 01-29 00:00 UTC: 56 - 12 h 0 min 30 s = 56 - 43,230 / 86,400 = 55.499653; 1.5 x 365 / 55.499653 = 9.864927 % a year.
      const f27 = entry("BTCF27", "cme")
      assert.strictEqual(f27.price_source, "settlement 2026-12-03")
      close(f27.basis, 1500, "BTCF27 basis")
      close(f27.basis_percent, 1.5, "BTCF27 basis %")
      close(f27.annualized_basis_percent, 9.864927, "BTCF27 annualised", 1e-3)
      // CME BTCZ26, from its basis row: 100,500 - 100,100 (the spot stored with it) = 400; 400 / 100,100 = 0.3996004 %;
      // 20.125 days at the row's moment: 0.3996004 x 365 / 20.125 = 7.247411 % a year.
      const z26 = entry("BTCZ26", "cme")
      assert.strictEqual(z26.spot_price, 100_100)
      close(z26.basis, 400, "BTCZ26 basis")
      close(z26.basis_percent, 0.3996004, "BTCZ26 basis %", 1e-6)
      close(z26.annualized_basis_percent, 7.247411, "BTCZ26 annualised", 1e-5)
      assert.strictEqual(z26.expiry, "2026-12-24T00:00:00.000Z")
      // Deribit's perpetual: its only price is the 2 h old funding mark: left out.
      // bybit's mark, 11:57:30, is fresh (3 min, within 60), and so is the spot (11:59:50, 40 s), but they are
      // 2 min 20 s = 140 s apart, over the 120 s TERM_STRUCTURE_MAX_PRICE_SKEW_SECONDS default: left out with both times.
      assert.deepStrictEqual(btc.left_out.map((l: any) => `${l.exchange}:${l.symbol}`), ["bybit:BTCUSDT", "deribit:BTC-PERPETUAL"])
      assert.deepStrictEqual(btc.left_out[0], {
        exchange: "bybit", symbol: "BTCUSDT", reason: "price and spot reference 140 s apart (limit 120 s)",
        price_time: "2026-12-04T11:57:30.000Z", spot_time: "2026-12-04T11:59:50.000Z"
      })

      // Both assets by default: ETH has no spot reference stored here, and so no curve.
      const both = yield* getData(`${base}/term-structure`)
      assert.deepStrictEqual(both.assets.map((a: any) => a.asset), ["BTC", "ETH"])
      assert.isNull(both.assets[1].spot)
      assert.deepStrictEqual(both.assets[1].curve, [])
    })), { timeout: 60_000 })
})
