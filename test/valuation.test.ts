/** USD notional per contract type, against hand-computed cases. */
import { assert, describe, it } from "@effect/vitest"
import { LargeTradeDetector } from "../src/domain/large-trades.ts"
import { type Instrument, InstrumentRegistry } from "../src/domain/instruments.ts"
import type { LargeTradeRow } from "../src/domain/rows.ts"
import { ReferencePrices, usdNotional } from "../src/domain/valuation.ts"

const instrument = (symbol: string, base: string, quote: string, extra: Partial<Instrument> = {}): Instrument => ({
  venue: "v",
  symbol,
  base,
  quote,
  kind: "spot",
  contractSize: 1,
  inverse: false,
  ...extra
})

describe("USD notional", () => {
  const prices = new ReferencePrices()
  const t = 1_700_000_000_000

  it("linear with a stablecoin quote: price x size, at par", () => {
    const value = usdNotional(instrument("BTCUSDT", "BTC", "USDT"), 50_000, 2.5, t, prices)!
    assert.strictEqual(value.usd, 125_000)
    assert.strictEqual(value.quoteUsdSource, "par")
  })

  it("BTC-quoted: converted at our own live BTC price", () => {
    const local = new ReferencePrices()
    local.observe(instrument("BTCUSDT", "BTC", "USDT"), 60_000, t)
    const value = usdNotional(instrument("ETHBTC", "ETH", "BTC"), 0.05, 10, t + 1000, local)!
    assert.closeTo(value.usd, 0.05 * 10 * 60_000, 1e-6)
    assert.strictEqual(value.quoteUsdSource, "reference:BTC")
  })

  it("EUR and GBP quotes: converted at a live cross rate from the same asset's USD price", () => {
    const local = new ReferencePrices()
    // Coinbase BTC-USD at 60,000 and BTC-EUR at 55,000 make 1 EUR = 60,000 / 55,000 USD.
    local.observe(instrument("BTC-USD", "BTC", "USD"), 60_000, t)
    local.observe(instrument("BTC-EUR", "BTC", "EUR"), 55_000, t + 10)
    const eur = usdNotional(instrument("ETH-EUR", "ETH", "EUR"), 2_000, 3, t + 20, local)!
    assert.closeTo(eur.usd, 2_000 * 3 * (60_000 / 55_000), 1e-6)
    assert.strictEqual(eur.quoteUsdSource, "reference:EUR")
    local.observe(instrument("BTC-GBP", "BTC", "GBP"), 48_000, t + 30)
    const gbp = usdNotional(instrument("BTC-GBP", "BTC", "GBP"), 48_000, 0.5, t + 40, local)!
    assert.closeTo(gbp.usd, 0.5 * 60_000, 1e-6)
    // No GBP cross seen: unconverted, not USD.
    assert.isUndefined(usdNotional(instrument("ETH-CHF", "ETH", "CHF"), 2_000, 1, t, local))
  })

  it("a quote with no live USD rate is not valued (never silently taken as USD)", () => {
    assert.isUndefined(usdNotional(instrument("BTCEUR", "BTC", "EUR"), 50_000, 1, t, prices))
    const stale = new ReferencePrices(60_000)
    stale.observe(instrument("BTCUSDT", "BTC", "USDT"), 60_000, t)
    assert.isUndefined(usdNotional(instrument("ETHBTC", "ETH", "BTC"), 0.05, 1, t + 120_000, stale))
  })

  it("inverse: contracts x contract value, whatever the price", () => {
    const perpetual = instrument("BTC-PERPETUAL", "BTC", "USD", { kind: "perpetual", inverse: true, contractSize: 10 })
    assert.strictEqual(usdNotional(perpetual, 50_000, 1_000, t, prices)!.usd, 10_000)
  })

  it("CME-style multiplier: contracts x multiplier x price", () => {
    const btc = instrument("BTCZ5", "BTC", "USD", { kind: "future", contractSize: 5 })
    const micro = instrument("MBTZ5", "BTC", "USD", { kind: "future", contractSize: 0.1 })
    assert.strictEqual(usdNotional(btc, 50_000, 3, t, prices)!.usd, 750_000)
    assert.closeTo(usdNotional(micro, 50_000, 3, t, prices)!.usd, 15_000, 1e-9)
  })
})

describe("large-trade detection", () => {
  const registry = new InstrumentRegistry()
  registry.add(instrument("BTCUSDT", "BTC", "USDT"))
  registry.add(instrument("SOLUSDT", "SOL", "USDT"))
  const detector = new LargeTradeDetector(registry, new ReferencePrices(), { byAsset: { BTC: 100_000, ETH: 50_000 }, otherAssets: 20_000 })
  const trade = (symbol: string, price: number, size: number) => ({
    kind: "trade" as const, venue: "v", symbol, tradeId: "1", price, size, side: "buy" as const, timestamp: 1, details: {}
  })

  it("applies each asset's threshold, inclusive", () => {
    const out: Array<LargeTradeRow> = []
    assert.strictEqual(detector.trade(trade("BTCUSDT", 50_000, 1.99), out), "below")
    assert.strictEqual(detector.trade(trade("BTCUSDT", 50_000, 2), out), "stored")
    assert.strictEqual(detector.trade(trade("SOLUSDT", 200, 100), out), "stored")
    assert.strictEqual(detector.trade(trade("NOPEUSDT", 1, 1e9), out), "unknown_instrument")
    assert.strictEqual(out[0]!.id, "v_BTCUSDT_1")
    assert.strictEqual(out[0]!.valueUsd, 100_000)
  })

  it("stores liquidations whatever their size", () => {
    const out: Array<LargeTradeRow> = []
    detector.liquidation({ kind: "liquidation", venue: "v", symbol: "SOLUSDT", side: "buy", price: 10, averagePrice: 10, filledSize: 1, timestamp: 5, details: {} }, out)
    assert.strictEqual(out.length, 1)
    assert.strictEqual(out[0]!.isLiquidation, true)
    assert.strictEqual(out[0]!.metadata.liquidated_position, "short")
  })

  it("gives two liquidations of one millisecond and side two ids, and the same one replayed the same id", () => {
    const out: Array<LargeTradeRow> = []
    const at = (filledSize: number) => ({ kind: "liquidation" as const, venue: "v", symbol: "SOLUSDT", side: "sell" as const, price: 10, averagePrice: 10, filledSize, timestamp: 5, details: {} })
    detector.liquidation(at(1), out)
    detector.liquidation(at(2), out)
    detector.liquidation(at(1), out)
    assert.deepStrictEqual(out.map((r) => r.id), ["v_SOLUSDT_liquidation-5-sell-10-1", "v_SOLUSDT_liquidation-5-sell-10-2", "v_SOLUSDT_liquidation-5-sell-10-1"])
  })
})
