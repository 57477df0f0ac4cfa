/**
 * A cross-venue scenario at pinned times (test/cross-venue-views.test.ts
 * works out its figures by hand; the dashboard test shows them): funding of
 * an 8-hourly, an hourly, an unweighted and a stale perpetual; open interest
 * of five instruments with a history; a spot book, a dated future's book, a
 * CME basis row and a CME settlement. Stored through the writer's inserts.
 * For the dashboard (seedSpreadsAndBars, storeOpenArbitrage): two spread
 * samples, a closed and an open arbitrage opportunity, and minute bars of
 * three hours on two venues, one minute of them not watched whole.
 */
import { Effect } from "effect"
import type { ArbitrageRow, FundingRateRow, OpenInterestRow, OrderBookRow, SpreadQuote, TradeBarRow } from "../../src/domain/rows.ts"
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


const quote = (exchange: string, symbol: string, market: "spot" | "perpetual", quoteCurrency: string, bid: number, ask: number, ageMs: number): SpreadQuote => ({
  exchange, symbol, market, quote: quoteCurrency, quote_basis: quoteCurrency === "USD" ? "USD" : `${quoteCurrency} at par`, usd_rate: 1,
  bid, ask, mid: (bid + ask) / 2, bid_size: 1, ask_size: 1, native_bid: bid, native_ask: ask, age_ms: ageMs, exchange_time: NOW - 1000 - ageMs
})
const metadata = { max_book_age_ms: 5000, pair_spread: "(mid_a - mid_b) / ((mid_a + mid_b) / 2) x 1e4" }

/** The latest sample, 12:00:29 (pair spreads worked out by hand in the comments). */
export const SPREAD_AT = NOW - 1000
const latestSample = {
  id: `BTC_${SPREAD_AT}`, asset: "BTC", timestamp: SPREAD_AT, changed: true, metadata,
  quotes: [
    quote("binance", "BTCUSDT", "spot", "USDT", 99_985, 99_995, 40), // mid 99,990
    quote("coinbase", "BTC-USD", "spot", "USD", 100_005, 100_015, 250), // mid 100,010
    quote("binance-futures", "BTCUSDT", "perpetual", "USDT", 99_995, 100_005, 120), // mid 100,000
    quote("bybit", "BTCUSDT", "perpetual", "USDT", 100_015, 100_025, 300), // mid 100,020
    quote("okx", "BTC-USDT-SWAP", "perpetual", "USDT", 99_975, 99_985, 1_500) // mid 99,980
  ],
  pairs: [
    // (99,990 - 100,010) / 100,000 x 1e4 = -2 bps
    { market: "spot" as const, a: "binance:BTCUSDT", b: "coinbase:BTC-USD", spread_bps: -2 },
    // (100,000 - 100,020) / 100,010 x 1e4 = -1.9998 bps
    { market: "perpetual" as const, a: "binance-futures:BTCUSDT", b: "bybit:BTCUSDT", spread_bps: -1.9998 },
    // (100,000 - 99,980) / 99,990 x 1e4 = +2.0002 bps
    { market: "perpetual" as const, a: "binance-futures:BTCUSDT", b: "okx:BTC-USDT-SWAP", spread_bps: 2.0002 },
    // (100,020 - 99,980) / 100,000 x 1e4 = +4 bps
    { market: "perpetual" as const, a: "bybit:BTCUSDT", b: "okx:BTC-USDT-SWAP", spread_bps: 4 }
  ],
  excluded: [{ exchange: "deribit", symbol: "BTC-PERPETUAL", reason: "stale: last update received 6000 ms before the sample (limit 5000 ms)" }]
}
/** A minute older: not the one shown. */
const olderSample = {
  id: `BTC_${at(11, 59, 29)}`, asset: "BTC", timestamp: at(11, 59, 29), changed: true, metadata,
  quotes: [quote("binance-futures", "BTCUSDT", "perpetual", "USDT", 99_000, 99_010, 10), quote("bybit", "BTCUSDT", "perpetual", "USDT", 101_000, 101_010, 10)],
  pairs: [{ market: "perpetual" as const, a: "binance-futures:BTCUSDT", b: "bybit:BTCUSDT", spread_bps: -200.0 }],
  excluded: []
}

// Fees: okx 5 bps, bybit 5.5 bps. Edge = (bid x (1 - 0.00055) - ask x 1.0005) / (ask x 1.0005) x 1e4.
const arbitrage = (parts: Partial<ArbitrageRow>): ArbitrageRow => ({
  id: "", asset: "BTC", market: "perpetual", buyExchange: "okx", buySymbol: "BTC-USDT-SWAP", sellExchange: "bybit", sellSymbol: "BTCUSDT",
  openedAt: 0, closedAt: null, closeReason: null, lastSeenAt: 0, openEdgeBps: 0, peakEdgeBps: 0, peakAt: 0, buyPrice: 0, sellPrice: 0,
  sizeBase: 0, sizeUsd: 0, buyFeeBps: 5, sellFeeBps: 5.5, metadata: { buy_quote_basis: "USDT at par", sell_quote_basis: "USDT at par" }, ...parts
})
/**
 * Open since 11:58:00: at open ask 99,920, bid 100,070: (100,014.9615 - 99,969.96) / 99,969.96 x 1e4 = 4.5015 bps;
 * its peak at 11:59:10, ask 99,900, bid 100,070: (100,014.9615 - 99,949.95) / 99,949.95 x 1e4 = 6.5044 bps,
 * min(ask size 0.8, bid size 1.5) = 0.8 coins, 0.8 x 99,900 = 79,920 USD.
 */
export const OPEN_ARBITRAGE = arbitrage({
  id: `BTC_okx_BTC-USDT-SWAP_bybit_BTCUSDT_${at(11, 58)}`, openedAt: at(11, 58), lastSeenAt: NOW - 1000, openEdgeBps: 4.502, peakEdgeBps: 6.504,
  peakAt: at(11, 59, 10), buyPrice: 99_900, sellPrice: 100_070, sizeBase: 0.8, sizeUsd: 79_920
})
/** Closed at 11:50 (edge gone): counted, not listed among the open. Peak 9.1 bps. */
const closedArbitrage = arbitrage({
  id: `BTC_binance-futures_BTCUSDT_bybit_BTCUSDT_${at(11, 40)}`, buyExchange: "binance-futures", buySymbol: "BTCUSDT", buyFeeBps: 5,
  openedAt: at(11, 40), closedAt: at(11, 50), closeReason: "edge gone", lastSeenAt: at(11, 50), openEdgeBps: 3, peakEdgeBps: 9.1, peakAt: at(11, 45),
  buyPrice: 99_800, sellPrice: 100_000, sizeBase: 0.5, sizeUsd: 49_900
})

/** A minute bar as the processor writes it: every trade at 100,000 USD (so coins = USD / 100,000). */
const bar = (exchange: string, minute: number, buyUsd: number, sellUsd: number, longUsd = 0, shortUsd = 0, partialReason: string | null = null): TradeBarRow => ({
  id: `${exchange}_BTCUSDT_${minute}`, exchange, symbol: "BTCUSDT", base: "BTC", instrumentKind: "perpetual", timestamp: minute,
  open: 100_000, high: 100_000, low: 100_000, close: 100_000, openTime: minute + 1000, closeTime: minute + 59_000,
  volumeBase: (buyUsd + sellUsd) / 100_000, volumeUsd: buyUsd + sellUsd, buyVolumeUsd: buyUsd, sellVolumeUsd: sellUsd, tradeCount: 10,
  longLiquidationsUsd: longUsd, shortLiquidationsUsd: shortUsd, liquidationCount: (longUsd > 0 ? 1 : 0) + (shortUsd > 0 ? 1 : 0),
  observedWhole: partialReason === null, partialReason, contribution: `${exchange}-${minute}-a|${exchange}-${minute}-j|10`, correction: false
})

/** After seedCrossVenueScenario: the spread samples, the closed opportunity and the bars. */
export const seedSpreadsAndBars = Effect.gen(function*() {
  yield* insertRows("exchange_spreads", [olderSample, latestSample])
  yield* insertRows("arbitrage_opportunities", [closedArbitrage])
  yield* insertRows("trade_bars", [
    // 09:00-10:00: buys 30,000 + 12,000 = 42,000, sells 10,000 + 20,000 = 30,000: delta +12,000; longs 5,000, shorts 2,000.
    bar("binance-futures", at(9, 10), 30_000, 10_000, 5_000, 0),
    bar("binance-futures", at(9, 40), 12_000, 20_000, 0, 2_000),
    // 10:00-11:00: buys 50,000 + 10,000 = 60,000, sells 20,000 + 25,000 = 45,000: delta +15,000; longs 3,000, shorts 1,500.
    bar("binance-futures", at(10, 5), 50_000, 20_000),
    bar("bybit", at(10, 20), 10_000, 25_000, 3_000, 1_500),
    // 11:00-12:00: binance-futures alone, buys 20,000, sells 26,000: delta -6,000; shorts 4,000.
    bar("binance-futures", at(11, 30), 20_000, 26_000, 0, 4_000),
    // bybit's 11:45 was not watched whole: its hour (100,000 bought) is left out.
    bar("bybit", at(11, 45), 100_000, 0, 0, 0, "partial minute: the connection broke at 2026-12-04T11:45:20.000Z")
  ])
}).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

/**
 * The open opportunity, stored once the service has started: at start the sampler closes what a
 * previous process left open (analytics/sampler.ts), so one stored before would be closed.
 */
export const storeOpenArbitrage = insertRows("arbitrage_opportunities", [OPEN_ARBITRAGE]).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
