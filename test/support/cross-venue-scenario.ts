/**
 * A cross-venue scenario at pinned times (test/cross-venue-views.test.ts
 * works out its figures by hand; the dashboard test shows them): funding of
 * an 8-hourly, an hourly, an unweighted and a stale perpetual; open interest
 * of five instruments with a history; a spot book, a dated future's book, a
 * CME basis row and a CME settlement. Stored through the writer's inserts.
 */
import { Effect } from "effect"
import type { FundingRateRow, OpenInterestRow, OrderBookRow } from "../../src/domain/rows.ts"
import { postgresLayer } from "../../src/storage/database.ts"
import { insertRows } from "../../src/storage/inserts.ts"
import { postgresUrl, truncateAll } from "./service.ts"

/** Friday 2026-12-04 12:00:30 UTC. */
export const NOW = Date.UTC(2026, 11, 4, 12, 0, 30)
const at = (hh: number, mm: number, ss = 0) => Date.UTC(2026, 11, 4, hh, mm, ss)
const minute = 60_000

const funding = (exchange: string, symbol: string, rate: number, time: number, metadata: Record<string, unknown>, predictedRate: number | null = null): FundingRateRow => ({
  id: `${exchange}_${symbol}_${time}`, exchange, symbol, rate, predictedRate, timestamp: time, nextFundingTime: null, metadata
})
const oi = (exchange: string, symbol: string, usd: number, base: number | null, time: number): OpenInterestRow => ({
  id: `${exchange}_${symbol}_${time}`, exchange, symbol, openInterest: base ?? usd, openInterestBase: base, openInterestUsd: usd, timestamp: time, metadata: null
})
const book = (exchange: string, symbol: string, bid: number, ask: number, time: number): OrderBookRow => ({
  id: `${exchange}_${symbol}_${time}`, exchange, symbol, bids: [[bid, 1]], asks: [[ask, 1]], timestamp: time, sequence: null, metadata: null
})

/** Empties the tables and stores the scenario. */
export const seedCrossVenueScenario = Effect.gen(function*() {
  yield* truncateAll
  yield* insertRows("funding_rates", [
    // 8-hourly, fresh (2 min old), with a predicted rate and a mark.
    funding("binance-futures", "BTCUSDT", 0.0001, NOW - 2 * minute, { interval_hours: 8, interval_source: "configured", mark_price: 100_050 }, 0.00012),
    // Hourly, fresh (3 min old).
    funding("bybit", "BTCUSDT", 0.00002, NOW - 3 * minute, { interval_hours: 1, interval_source: "stated by the venue with the reading", mark_price: 100_020 }),
    // 8-hourly, fresh, but its open interest is stale: unweighted.
    funding("okx", "BTC-USDT-SWAP", 0.00015, NOW - 5 * minute, { interval_hours: 8 }),
    // Two hours old: past the 60-minute default, left out.
    funding("deribit", "BTC-PERPETUAL", 0.0005, NOW - 120 * minute, { interval_hours: 8, mark_price: 100_100 }),
    // An older reading of binance-futures: the latest one is the one compared.
    funding("binance-futures", "BTCUSDT", 0.0009, NOW - 30 * minute, { interval_hours: 8 }),
    funding("binance-futures", "ETHUSDT", 0.0001, NOW - minute, { interval_hours: 4 })
  ])
  yield* insertRows("open_interest", [
    // binance-futures BTCUSDT: 11:02, two in 11:10-11:15 (the later counts), latest 11:59:30.
    oi("binance-futures", "BTCUSDT", 2_800_000, 28, at(11, 2)),
    oi("binance-futures", "BTCUSDT", 2_900_000, 29, at(11, 12)),
    oi("binance-futures", "BTCUSDT", 2_950_000, 29.5, at(11, 14)),
    oi("binance-futures", "BTCUSDT", 3_000_000, 30, at(11, 59, 30)),
    // bybit BTCUSDT: 10:58 (before the 1-hour window: carried into its first bucket), 11:07, latest 11:59:30.
    oi("bybit", "BTCUSDT", 900_000, 9, at(10, 58)),
    oi("bybit", "BTCUSDT", 950_000, 9.5, at(11, 7)),
    oi("bybit", "BTCUSDT", 1_000_000, 10, at(11, 59, 30)),
    // bybit inverse BTCUSD: no coin figure.
    oi("bybit", "BTCUSD", 200_000, null, at(11, 58, 30)),
    oi("deribit", "BTC-PERPETUAL", 500_000, 5, at(11, 59, 30)),
    // okx: three hours old, left out (and so okx's funding is unweighted).
    oi("okx", "BTC-USDT-SWAP", 2_000_000, 20, at(9, 0, 30))
  ])
  yield* insertRows("exchange_orderbooks", [
    // The spot reference (CME_SPOT_SOURCES' default, coinbase:BTC-USD): mid (99,990 + 100,010) / 2 = 100,000, 40 s old.
    book("coinbase", "BTC-USD", 99_990, 100_010, at(11, 59, 50)),
    // Deribit's December future: mid (100,800 + 101,000) / 2 = 100,900.
    book("deribit", "BTC-25DEC26", 100_800, 101_000, at(11, 59)),
    // An option's book is no future.
    book("deribit", "BTC-25DEC26-100000-C", 5_000, 5_100, at(11, 59))
  ])
  // CME: BTCZ26 has a basis row (stored at its settlement, 21:00 UTC on the 3rd, with the spot of that moment);
  // BTCF27 only a settlement.
  yield* insertRows("futures_basis", [{
    id: "cme_BTCZ26_1", exchange: "cme", symbol: "BTCZ26", futuresPrice: 100_500, spotPrice: 100_100, spotSource: "coinbase:BTC-USD",
    basis: 400, basisPercent: 400 / 100_100 * 100, annualizedPercent: null, daysToExpiry: 20.125, timestamp: Date.UTC(2026, 11, 3, 21),
    metadata: { futures_price_source: "settlement 2026-12-03 (cme-website)" }
  }])
  yield* insertRows("futures_settlements", [
    { id: "cme_BTCZ26_2026-12-03", exchange: "cme", symbol: "BTCZ26", root: "BTC", tradeDate: Date.UTC(2026, 11, 3), expiry: Date.UTC(2026, 11, 24), price: 100_500, volume: 10, openInterest: 100, contractSize: 5, source: "cme-website", timestamp: Date.UTC(2026, 11, 3, 22), metadata: null },
    { id: "cme_BTCF27_2026-12-03", exchange: "cme", symbol: "BTCF27", root: "BTC", tradeDate: Date.UTC(2026, 11, 3), expiry: Date.UTC(2027, 0, 29), price: 101_500, volume: 5, openInterest: 50, contractSize: 5, source: "cme-website", timestamp: Date.UTC(2026, 11, 3, 22), metadata: null }
  ])
}).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

