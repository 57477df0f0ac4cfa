/**
 * Sizes in one unit: every trade, liquidation and open-interest row says its
 * size as the venue counts it, the same in the base asset, and the unit.
 * Instruments come from each venue's own listing code, records from its
 * decoders where one reads them from a frame; each expected value is worked
 * out by hand below from the venue's documented contract specification.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type Instrument, InstrumentRegistry } from "../src/domain/instruments.ts"
import { LargeTradeDetector } from "../src/domain/large-trades.ts"
import type { NormalizedRecord } from "../src/domain/records.ts"
import { type LargeTradeRow, type OpenInterestRow, RowBatch } from "../src/domain/rows.ts"
import { ReferencePrices } from "../src/domain/valuation.ts"
import { RecordProcessor } from "../src/pipeline/processor.ts"
import { embeddedLayer, postgresLayer } from "../src/storage/database.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { replayRejected } from "../src/storage/rejected.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { instrumentsFrom as binanceInstruments } from "../src/venues/binance/instruments.ts"
import { instrumentFrom as bybitInstrument } from "../src/venues/bybit/instruments.ts"
import { fromSymbol as cmeContract, products as cmeProducts } from "../src/venues/cme/contracts.ts"
import { type DeribitInstrument, instrumentFrom as deribitInstrument, openInterestFrom as deribitOpenInterest } from "../src/venues/deribit/instruments.ts"
import { decodeInstruments as decodeOkxInstruments, instrumentFrom as okxInstrument } from "../src/venues/okx/instruments.ts"
import { makeDecoder as okxDecoder } from "../src/venues/okx/normalize.ts"
import { recording } from "./support/fixtures.ts"
import { postgresUrl, truncateAll } from "./support/service.ts"

const at = Date.UTC(2026, 0, 5, 12)

// --- Instruments as each venue's listing code makes them ---------------------------------------

// Binance spot exchangeInfo: BTCUSDT, quantities in BTC (aggTrade `q` is the base quantity).
const [binanceSpot] = binanceInstruments("binance", { symbols: [{ symbol: "BTCUSDT", baseAsset: "BTC", quoteAsset: "USDT" }], rateLimits: [] })
// OKX /api/v5/public/instruments as recorded (OKX.0): BTC-USDT-SWAP is linear, ctVal 0.01 BTC; ETH-USDT-SWAP
// linear, ctVal 0.1 ETH; LTC-USDT-SWAP linear, ctVal 1 LTC; BTC-USD-SWAP inverse, ctVal 100 USD (ctMult 1 for all).
const okxSwaps = (() => {
  const answer = recording("OKX.0").rest.find((r) => r.url.endsWith("instType=SWAP"))!
  const decoded = decodeOkxInstruments(JSON.parse(answer.body))
  return decoded._tag === "Success" ? decoded.success.kept : []
})()
const okxSwap = (id: string) => okxInstrument("okx", okxSwaps.find((l) => l.instId === id)!)!
const okxLinear = okxSwap("BTC-USDT-SWAP")
const okxOneCoin = okxSwap("LTC-USDT-SWAP")
const okxEth = okxSwap("ETH-USDT-SWAP")
const okxInverse = okxSwap("BTC-USD-SWAP")
// Bybit inverse BTCUSD: "for inverse contracts, qty is in USD": one contract is 1 USD.
const bybitInverse = bybitInstrument("bybit-derivatives", "inverse", { symbol: "BTCUSD", baseCoin: "BTC", quoteCoin: "USD", contractType: "InversePerpetual" })
// Deribit get_instruments: BTC-PERPETUAL (reversed: amount in USD, contract_size 10 USD),
// an option (amount in BTC, contract_size 1 BTC).
const deribitPerpetualListing = {
  instrument_name: "BTC-PERPETUAL", kind: "future", base_currency: "BTC", quote_currency: "USD", contract_size: 10,
  expiration_timestamp: 32503708800000, settlement_period: "perpetual", future_type: "reversed"
} as DeribitInstrument
const deribitPerpetual = deribitInstrument("deribit", deribitPerpetualListing)
const deribitOption = deribitInstrument("deribit", {
  instrument_name: "BTC-27MAR26-80000-C", kind: "option", base_currency: "BTC", quote_currency: "BTC", contract_size: 1,
  expiration_timestamp: Date.UTC(2026, 2, 27, 8), settlement_period: "month", strike: 80_000, option_type: "call"
} as DeribitInstrument)

const registry = (...instruments: ReadonlyArray<Instrument>) => {
  const r = new InstrumentRegistry()
  for (const i of instruments) r.add(i)
  return r
}

const all = registry(binanceSpot!, okxLinear, okxOneCoin, okxEth, okxInverse, bybitInverse, deribitPerpetual, deribitOption)

const processor = (venue: string, instruments = all) =>
  new RecordProcessor({
    venue,
    instruments,
    // Every trade is stored (threshold 0): this test is about sizes, not about which trades are large.
    detector: new LargeTradeDetector(instruments, new ReferencePrices(), { byAsset: {}, otherAssets: 0 }),
    sequenceRule: undefined,
    bookDepth: 10,
    bookIntervalMs: 1000,
    fundingSampleMs: 60_000,
    fundingIntervalHours: () => ({ hours: 8, source: "test" }),
    requestSnapshot: () => undefined,
    onResync: () => undefined
  })

const run = (venue: string, records: ReadonlyArray<NormalizedRecord>) => {
  const out = new RowBatch()
  processor(venue).process(records, at, out)
  return out
}

const trade = (venue: string, symbol: string, price: number, size: number, extra: Record<string, unknown> = {}): NormalizedRecord =>
  ({ kind: "trade", venue, symbol, tradeId: `${symbol}-${size}`, price, size, side: "buy", timestamp: at, details: {}, ...extra }) as NormalizedRecord

const okxFrames = (...frames: ReadonlyArray<object>) => {
  const decode = okxDecoder("okx", { openInterestIntervalMs: 0 })
  const records: Array<NormalizedRecord> = []
  for (const frame of frames) assert.isUndefined(decode(JSON.stringify(frame), records))
  return records
}

describe("trade sizes in the base asset, per venue kind", () => {
  it("Binance spot: the size is BTC already", () => {
    // aggTrade q = 0.75 BTC at 60,000 USDT: 0.75 BTC, unit base.
    const [row] = run("binance", [trade("binance", "BTCUSDT", 60_000, 0.75)]).large_trades
    assert.deepInclude(row!, { size: 0.75, sizeBase: 0.75, sizeUnit: "base", valueUsd: 45_000 })
  })

  it("OKX linear swap: contracts x ctVal, read from the trades push", () => {
    // sz = 250 contracts of 0.01 BTC = 2.5 BTC; at 60,000 that is 150,000 USDT.
    const records = okxFrames({
      arg: { channel: "trades", instId: "BTC-USDT-SWAP" },
      data: [{ instId: "BTC-USDT-SWAP", tradeId: "900", px: "60000", sz: "250", side: "buy", ts: String(at) }]
    })
    const [row] = run("okx", records).large_trades
    assert.deepInclude(row!, { size: 250, sizeBase: 2.5, sizeUnit: "contracts", valueUsd: 150_000 })
  })

  it("OKX linear swap of 3 contracts of 0.1 ETH: 0.3 ETH, without binary noise", () => {
    // 3 x 0.1 = 0.3 ETH (in doubles 3 * 0.1 is 0.30000000000000004: the row says 0.3).
    const [row] = run("okx", [trade("okx", "ETH-USDT-SWAP", 4_000, 3)]).large_trades
    assert.deepInclude(row!, { sizeBase: 0.3, sizeUnit: "contracts" })
  })

  it("OKX linear swap of one coin a contract: the size still counts contracts, as OKX counts it", () => {
    // sz = 40 contracts of 1 LTC = 40 LTC at 70 USDT: 2,800 USDT. The number is the same; the unit is OKX's.
    const [row] = run("okx", [trade("okx", "LTC-USDT-SWAP", 70, 40)]).large_trades
    assert.deepInclude(row!, { size: 40, sizeBase: 40, sizeUnit: "contracts", valueUsd: 2_800 })
  })

  it("OKX inverse swap: contracts of 100 USD, divided by the price", () => {
    // sz = 1,500 contracts x 100 USD = 150,000 USD; / 60,000 USD per BTC = 2.5 BTC.
    const [row] = run("okx", [trade("okx", "BTC-USD-SWAP", 60_000, 1_500)]).large_trades
    assert.deepInclude(row!, { size: 1_500, sizeBase: 2.5, sizeUnit: "contracts", valueUsd: 150_000 })
  })

  it("Bybit inverse: qty in USD (1 USD a contract), divided by the price", () => {
    // qty = 120,000 USD at 48,000 USD per BTC = 2.5 BTC.
    const [row] = run("bybit-derivatives", [trade("bybit-derivatives", "BTCUSD", 48_000, 120_000)]).large_trades
    assert.deepInclude(row!, { size: 120_000, sizeBase: 2.5, sizeUnit: "usd", valueUsd: 120_000 })
  })

  it("Deribit perpetual: amount in USD, divided by the price", () => {
    // amount = 200,000 USD at 80,000 USD per BTC = 2.5 BTC.
    const [row] = run("deribit", [trade("deribit", "BTC-PERPETUAL", 80_000, 200_000)]).large_trades
    assert.deepInclude(row!, { size: 200_000, sizeBase: 2.5, sizeUnit: "usd", valueUsd: 200_000 })
  })

  it("Deribit option: amount in BTC, whatever the option's price", () => {
    // amount = 12 BTC of calls at 0.05 BTC each, index 60,000: 12 BTC; value 12 x 0.05 x 60,000 = 36,000 USD.
    const [row] = run("deribit", [trade("deribit", "BTC-27MAR26-80000-C", 0.05, 12, { quoteUsdRate: 60_000 })]).large_trades
    assert.deepInclude(row!, { size: 12, sizeBase: 12, sizeUnit: "base", valueUsd: 36_000 })
  })
})

describe("liquidation sizes, and the contract facts trade rows carry", () => {
  it("OKX liquidation-orders: sz in contracts, the row says the contract size and type", () => {
    // sz = 40 contracts of 0.01 BTC = 0.4 BTC at the bankruptcy price 50,000: 20,000 USDT.
    const records = okxFrames({
      arg: { channel: "liquidation-orders", instType: "SWAP" },
      data: [{ instId: "BTC-USDT-SWAP", details: [{ bkPx: "50000", side: "sell", posSide: "long", sz: "40", ts: String(at) }] }]
    })
    const [row] = run("okx", records).large_trades
    assert.deepInclude(row!, { isLiquidation: true, size: 40, sizeBase: 0.4, sizeUnit: "contracts", valueUsd: 20_000 })
    assert.deepInclude(row!.metadata, { contract_type: "linear", contract_size: 0.01, base: "BTC", quote: "USDT" })
  })

  it("Bybit inverse liquidation: USD contracts divided by the price; contract type inverse, size 1", () => {
    // v = 30,000 USD at 60,000 = 0.5 BTC.
    const [row] = run("bybit-derivatives", [{
      kind: "liquidation", venue: "bybit-derivatives", symbol: "BTCUSD", side: "sell", price: 60_000, averagePrice: 60_000,
      filledSize: 30_000, timestamp: at, id: "l1", details: {}
    }]).large_trades
    assert.deepInclude(row!, { size: 30_000, sizeBase: 0.5, sizeUnit: "usd", valueUsd: 30_000 })
    assert.deepInclude(row!.metadata, { contract_type: "inverse", contract_size: 1 })
  })
})

describe("open interest in the base asset", () => {
  it("OKX: oi in contracts, linear x ctVal, inverse x ctVal / mark", () => {
    // Linear: 1,000 contracts x 0.01 BTC = 10 BTC. Inverse: 30,000 contracts x 100 USD = 3,000,000 USD / 60,000 = 50 BTC.
    const records = okxFrames(
      { arg: { channel: "mark-price", instId: "BTC-USDT-SWAP" }, data: [{ instId: "BTC-USDT-SWAP", markPx: "60000", ts: String(at) }] },
      { arg: { channel: "mark-price", instId: "BTC-USD-SWAP" }, data: [{ instId: "BTC-USD-SWAP", markPx: "60000", ts: String(at) }] },
      { arg: { channel: "open-interest", instId: "BTC-USDT-SWAP" }, data: [{ instId: "BTC-USDT-SWAP", oi: "1000", ts: String(at) }] },
      { arg: { channel: "open-interest", instId: "BTC-USD-SWAP" }, data: [{ instId: "BTC-USD-SWAP", oi: "30000", ts: String(at) }] }
    )
    const rows = run("okx", records).open_interest
    assert.deepStrictEqual(rows.map((r) => [r.symbol, r.openInterest, r.openInterestBase, r.openInterestUsd]), [
      ["BTC-USDT-SWAP", 1_000, 10, 600_000],
      ["BTC-USD-SWAP", 30_000, 50, 3_000_000]
    ])
  })

  it("Deribit: the book summary's USD open interest, in contracts of 10 USD, at its own mark price", () => {
    // open_interest = 600,000,000 USD = 60,000,000 contracts of 10 USD; at the mark 60,000: 10,000 BTC.
    const record = deribitOpenInterest("deribit", deribitPerpetualListing, {
      instrument_name: "BTC-PERPETUAL", open_interest: 600_000_000, mark_price: 60_000, creation_timestamp: at
    })
    const [row] = run("deribit", [record]).open_interest
    assert.deepInclude(row!, { openInterest: 60_000_000, openInterestBase: 10_000, openInterestUsd: 600_000_000 })
  })

  it("Bybit inverse: USD contracts at the mark; no mark, no base (never a guess)", () => {
    // 1,200,000 USD at the mark 60,000 = 20 BTC.
    const rows = run("bybit-derivatives", [
      { kind: "mark_price", venue: "bybit-derivatives", symbol: "BTCUSD", markPrice: 60_000, indexPrice: null, timestamp: at },
      { kind: "open_interest", venue: "bybit-derivatives", symbol: "BTCUSD", openInterest: 1_200_000, timestamp: at }
    ]).open_interest
    assert.deepInclude(rows[0]!, { openInterestBase: 20, openInterestUsd: 1_200_000 })
    // A venue-stated USD value and no price anywhere: the coins are unknown.
    const out = new RowBatch()
    processor("bybit-derivatives").process([
      { kind: "open_interest", venue: "bybit-derivatives", symbol: "BTCUSD", openInterest: 1_200_000, valueUsd: 1_200_000, timestamp: at }
    ], at, out)
    assert.deepInclude(out.open_interest[0]!, { openInterestBase: null, openInterestUsd: 1_200_000 })
  })

  it("CME settlement: contracts x multiplier (BTC: 5 BTC a contract)", () => {
    // 2,000 contracts x 5 BTC = 10,000 BTC; at the settlement 60,000: 600,000,000 USD.
    const contract = cmeContract("BTCH6", at)!
    const product = cmeProducts[contract.root]!
    const out = new RowBatch()
    processor("cme", new InstrumentRegistry()).process([{
      kind: "settlement", venue: "cme", symbol: contract.symbol, root: contract.root, base: product.base, tradeDate: at, expiry: Date.UTC(2026, 2, 27),
      price: 60_000, volume: 100, openInterest: 2_000, contractSize: product.multiplier, source: "test", timestamp: at
    } as NormalizedRecord], at, out)
    assert.deepInclude(out.open_interest[0]!, { openInterest: 2_000, openInterestBase: 10_000, openInterestUsd: 600_000_000 })
  })
})

// --- Migration 0015 on rows stored before it ---------------------------------------------------

/** A trade or liquidation row as stored before 0015: no base amount, no unit; metadata as the detector wrote it then. */
const oldTrade = (id: string, exchange: string, symbol: string, price: number, size: number, metadata: Record<string, unknown>, isLiquidation = false): LargeTradeRow => ({
  id: `${exchange}_${symbol}_${id}`, exchange, symbol, side: "buy", price, size, sizeBase: null, sizeUnit: null, valueUsd: 1,
  timestamp: at, tradeId: id, isLiquidation, metadata
})
const oldOpenInterest = (id: string, exchange: string, symbol: string, openInterest: number, metadata: Record<string, unknown> | null): OpenInterestRow => ({
  id, exchange, symbol, openInterest, openInterestBase: null, openInterestUsd: 1, timestamp: at, metadata
})
const spec = (contract_type: string, contract_size: number) => ({ base: "BTC", quote: "USD", contract_type, contract_size })

const databases: Array<[string, () => Layer.Layer<SqlClient.SqlClient, unknown>]> = [
  ["postgres", () => postgresLayer(postgresUrl)],
  ["embedded", () => embeddedLayer(undefined)]
]

describe.each(databases)("migration 0015 on %s", (_name, database) => {
  it.live("fills size_base, size_unit and open_interest_base of old rows from their metadata; NULL where it says too little", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* truncateAll
      yield* insertRows("large_trades", [
        // 0.75 BTC spot: 0.75, base.
        oldTrade("1", "binance", "BTCUSDT", 60_000, 0.75, spec("spot", 1)),
        // Binance USD-M: one BTC a contract: 1.5, base.
        oldTrade("2", "binance-futures", "BTCUSDT", 60_000, 1.5, spec("linear", 1)),
        // OKX: 250 contracts x 0.01 BTC = 2.5; 40 contracts of 1 LTC = 40 (still contracts); 1,500 x 100 USD / 60,000 = 2.5.
        oldTrade("3", "okx", "BTC-USDT-SWAP", 60_000, 250, spec("linear", 0.01)),
        oldTrade("4", "okx", "LTC-USDT-SWAP", 70, 40, spec("linear", 1)),
        oldTrade("5", "okx", "BTC-USD-SWAP", 60_000, 1_500, spec("inverse", 100)),
        // Bybit inverse, 1 USD a contract: 120,000 / 48,000 = 2.5, usd. Deribit perpetual: 200,000 USD / 80,000 = 2.5, usd.
        oldTrade("6", "bybit-derivatives", "BTCUSD", 48_000, 120_000, spec("inverse", 1)),
        oldTrade("7", "deribit", "BTC-PERPETUAL", 80_000, 200_000, spec("inverse", 1)),
        // Deribit option: 12 BTC whatever its price of 0.05 BTC.
        oldTrade("8", "deribit", "BTC-27MAR26-80000-C", 0.05, 12, spec("option", 1)),
        // Old liquidations carried no contract facts: OKX's takes BTC-USDT-SWAP's from trade 3: 40 x 0.01 = 0.4.
        oldTrade("liquidation-1", "okx", "BTC-USDT-SWAP", 50_000, 40, { base: "BTC", quote: "USDT" }, true),
        // No trade row of its instrument: nothing to say it with.
        oldTrade("liquidation-2", "binance-futures", "ETHUSDT", 3_000, 7, { base: "ETH", quote: "USDT" }, true),
        // An unreadable contract size: NULL.
        oldTrade("9", "coinbase", "BTC-USD", 60_000, 1, { contract_type: "spot", contract_size: "one" })
      ])
      yield* insertRows("open_interest", [
        // OKX inverse: 30,000 x 100 USD / mark 60,000 = 50. OKX linear: 1,000 x 0.01 = 10.
        oldOpenInterest("oi1", "okx", "BTC-USD-SWAP", 30_000, { contract_size: 100, contract_unit: "USD", mark_price: 60_000 }),
        oldOpenInterest("oi2", "okx", "BTC-USDT-SWAP", 1_000, { contract_size: 0.01, contract_unit: "BTC", mark_price: 60_000 }),
        // Deribit inverse without a mark price: NULL.
        oldOpenInterest("oi3", "deribit", "BTC-PERPETUAL", 60_000_000, { contract_size: 10, contract_unit: "USD", mark_price: null }),
        // CME: 2,000 contracts x 5 BTC = 10,000.
        oldOpenInterest("oi4", "cme", "BTCH6", 2_000, { contract_size: 5, contract_unit: "BTC", usd_price_source: "settlement" }),
        oldOpenInterest("oi5", "binance-futures", "BTCUSDT", 9, null)
      ])
      const hourly = sql<{ n: string; usd: string }>`SELECT sum(trades)::text AS n, sum(total_value_usd)::text AS usd FROM large_trades_hourly`
      const rollupBefore = yield* hourly
      yield* sql`DELETE FROM effect_sql_migrations WHERE migration_id = 15`
      assert.deepStrictEqual((yield* runMigrations()).map(([id]) => id), [15])

      const trades = yield* sql<{ trade_id: string; base: number | null; unit: string | null }>`
        SELECT trade_id, size_base::float8 AS base, size_unit AS unit FROM large_trades ORDER BY trade_id`
      assert.deepStrictEqual(Object.fromEntries(trades.map((r) => [r.trade_id, [r.base, r.unit]])), {
        "1": [0.75, "base"], "2": [1.5, "base"], "3": [2.5, "contracts"], "4": [40, "contracts"], "5": [2.5, "contracts"],
        "6": [2.5, "usd"], "7": [2.5, "usd"], "8": [12, "base"], "9": [null, null],
        "liquidation-1": [0.4, "contracts"], "liquidation-2": [null, null]
      })
      const oi = yield* sql<{ id: string; base: number | null }>`SELECT id, open_interest_base::float8 AS base FROM open_interest ORDER BY id`
      assert.deepStrictEqual(Object.fromEntries(oi.map((r) => [r.id, r.base])), { oi1: 50, oi2: 10, oi3: null, oi4: 10_000, oi5: null })
      assert.deepStrictEqual(yield* hourly, rollupBefore, "the hourly rollup is unchanged")
      assert.deepStrictEqual(yield* runMigrations(), [], "nothing twice")
    }).pipe(Effect.provide(Layer.fresh(database())), Effect.scoped), { timeout: 120_000 })

  it.live("a dead letter kept before 0015 (no sizeBase, sizeUnit, openInterestBase) replays, with NULL for them", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* truncateAll
      const { sizeBase: _b, sizeUnit: _u, ...trade } = oldTrade("old", "binance", "BTCUSDT", 60_000, 2, spec("spot", 1))
      const { openInterestBase: _o, ...reading } = oldOpenInterest("oi-old", "okx", "BTC-USDT-SWAP", 5, null)
      for (const [table, row] of [["large_trades", trade], ["open_interest", reading]] as const) {
        yield* sql`INSERT INTO rejected_rows (table_name, row_id, sqlstate, message, row, rejected_at)
          VALUES (${table}, ${row.id}, '22003', 'numeric field overflow', ${JSON.stringify(row)}::jsonb, now())`
      }
      const result = yield* replayRejected
      assert.deepStrictEqual([result.stored, result.refused], [2, []])
      const [t] = yield* sql<{ size: number; base: unknown; unit: unknown }>`SELECT size::float8 AS size, size_base AS base, size_unit AS unit FROM large_trades`
      assert.deepStrictEqual(t, { size: 2, base: null, unit: null })
      const [o] = yield* sql<{ oi: number; base: unknown }>`SELECT open_interest::float8 AS oi, open_interest_base AS base FROM open_interest`
      assert.deepStrictEqual(o, { oi: 5, base: null })
    }).pipe(Effect.provide(Layer.fresh(database())), Effect.scoped), { timeout: 120_000 })
})
