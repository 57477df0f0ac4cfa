/**
 * Alert rules without a service: the rules file (the README's example decodes;
 * every mistake is named by rule and field) and each rule kind firing on a
 * scenario and staying quiet on a calm one.
 */
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { writeFileSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type InstrumentFacts, type LiveView, RuleSet } from "../src/alerts/evaluate.ts"
import { AlertRulesError, decodeRules, loadRulesFile, type Rule } from "../src/alerts/rules.ts"
import { RowBatch, type FundingRateRow, type LargeTradeRow, type OpenInterestRow, type OrderBookRow, type FuturesBasisRow } from "../src/domain/rows.ts"
import type { Gap } from "../src/gaps/ledger.ts"

const t0 = Date.parse("2026-03-02T12:00:00Z")

const instruments: Record<string, InstrumentFacts> = {
  "binance:BTCUSDT": { base: "BTC", quote: "USDT", kind: "spot" },
  "binance-futures:BTCUSDT": { base: "BTC", quote: "USDT", kind: "perpetual" },
  "binance-futures:ETHUSDT": { base: "ETH", quote: "USDT", kind: "perpetual" },
  "coinbase:BTC-USD": { base: "BTC", quote: "USD", kind: "spot" },
  "deribit:BTC-PERPETUAL": { base: "BTC", quote: "USD", kind: "perpetual" },
  "cme:BTCZ6": { base: "BTC", quote: "USD", kind: "future" }
}
const lookup = (exchange: string, symbol: string) => instruments[`${exchange}:${symbol}`]

let n = 0
const trade = (exchange: string, symbol: string, valueUsd: number, at: number, extra: Partial<LargeTradeRow> = {}): LargeTradeRow => {
  const tradeId = String(++n)
  return {
    id: `${exchange}_${symbol}_${tradeId}`, exchange, symbol, side: "buy", price: 60_000, size: valueUsd / 60_000, sizeBase: null, sizeUnit: null, valueUsd,
    timestamp: at, tradeId, isLiquidation: false, metadata: {}, ...extra
  }
}
const batchOf = (fill: (b: RowBatch) => void) => {
  const b = new RowBatch()
  fill(b)
  return b
}
const rules = (list: ReadonlyArray<unknown>) => decodeRules({ rules: list }, {}).rules as ReadonlyArray<Rule>
const run = (set: RuleSet, batch: RowBatch) => set.onBatch(batch, lookup)

const messageOf = (f: () => unknown) => {
  try {
    f()
  } catch (error) {
    assert.instanceOf(error, AlertRulesError)
    return (error as AlertRulesError).message
  }
  return assert.fail("expected the rules to be refused")
}

describe("the alert rules file", () => {
  it("the README's example decodes, every rule kind in it", () => {
    const file = loadRulesFile(new URL("../examples/alert-rules.yaml", import.meta.url).pathname, { ALERT_WEBHOOK_SECRET: "s3cret" })
    assert.strictEqual(file.rules.length, 10)
    assert.sameMembers(file.rules.map((r) => r.kind), [
      "large_trade", "liquidation_cluster", "funding", "open_interest_change", "basis", "price_divergence", "stale_feed", "unrepaired_gap", "book_resyncs",
      "cross_venue_outlier"
    ])
    assert.strictEqual(file.webhooks[0]!.secret, "s3cret")
    assert.strictEqual(file.defaultCooldownSeconds, 300)
  })

  it("JSON works as well as YAML", () => {
    const dir = mkdtempSync(join(tmpdir(), "rules-"))
    writeFileSync(join(dir, "rules.json"), JSON.stringify({ rules: [{ name: "big", kind: "large_trade", min_value_usd: 1e6 }] }))
    assert.strictEqual(loadRulesFile(join(dir, "rules.json"), {}).rules[0]!.name, "big")
    writeFileSync(join(dir, "broken.yaml"), "rules: [ {name: big")
    assert.match(messageOf(() => loadRulesFile(join(dir, "broken.yaml"), {})), /broken\.yaml is not valid YAML/)
  })

  it("a mistake names the rule and the field", () => {
    const message = messageOf(() => decodeRules({ rules: [
      { name: "ok", kind: "large_trade", min_value_usd: 1 },
      { name: "whale", kind: "large_trade", min_value_usd: -5 },
      { name: "carry", kind: "funding", max_abs_annualised_percent: 50 },
      { name: "mystery", kind: "moon_alert" },
      { name: "ok", kind: "stale_feed", seconds: 10 },
      { name: "Bad Name", kind: "stale_feed", seconds: 10 },
      { name: "hooked", kind: "stale_feed", seconds: 10, webhooks: ["nowhere"] }
    ] }, {}))
    assert.match(message, /rule "whale" \(rules\[1\]\): min_value_usd: Expected a value greater than 0/)
    // A misspelt field is refused, not ignored (the rule would never fire).
    assert.match(message, /rule "carry" \(rules\[2\]\): max_abs_annualised_percent: Expected no excess property/)
    assert.match(message, /rule "carry" \(rules\[2\]\): .*max_abs_annualized_percent: Missing key/)
    assert.match(message, /rule "mystery" \(rules\[3\]\): kind: expected one of large_trade, .*got "moon_alert"/)
    assert.match(message, /rule "ok" \(rules\[4\]\): name: another rule is already called ok/)
    assert.match(message, /rule "Bad Name" \(rules\[5\]\): name: /)
    assert.match(message, /rule "hooked" \(rules\[6\]\): webhooks: no webhook is called nowhere/)
    assert.notMatch(message, /rules\[0\]/, "the good rule is not blamed")
  })

  it("a webhook whose secret is not in the environment is refused", () => {
    const message = messageOf(() => decodeRules({ webhooks: [{ name: "desk", url: "https://example.com/x", secret_env: "NOT_SET_ANYWHERE" }], rules: [] }, {}))
    assert.match(message, /webhook "desk" \(webhooks\[0\]\): secret_env: the environment variable NOT_SET_ANYWHERE is not set/)
  })
})

describe("each rule kind", () => {
  it("large_trade: fires at its threshold for its assets, not below it, not on liquidations unless asked", () => {
    const set = new RuleSet(rules([{ name: "whale", kind: "large_trade", min_value_usd: 1_000_000, assets: ["BTC"] }]))
    const calm = run(set, batchOf((b) => {
      b.large_trades.push(trade("binance", "BTCUSDT", 999_999, t0))
      b.large_trades.push(trade("binance-futures", "ETHUSDT", 5_000_000, t0))
      b.large_trades.push(trade("binance-futures", "BTCUSDT", 5_000_000, t0, { isLiquidation: true }))
    }))
    assert.deepStrictEqual(calm, [])
    const fired = run(set, batchOf((b) => b.large_trades.push(trade("coinbase", "BTC-USD", 1_000_000, t0))))
    assert.strictEqual(fired.length, 1)
    assert.deepInclude(fired[0], { rule: "whale", exchange: "coinbase", symbol: "BTC-USD", value: 1_000_000, threshold: 1_000_000 })
    assert.match(fired[0]!.message, /coinbase BTC-USD: buy .* = \$1,000,000/)
  })

  it("liquidation_cluster: sums an asset's liquidations across venues within the window only", () => {
    const set = new RuleSet(rules([{ name: "cascade", kind: "liquidation_cluster", min_value_usd: 1_000_000, window_seconds: 60 }]))
    const liq = (exchange: string, symbol: string, value: number, at: number) => trade(exchange, symbol, value, at, { isLiquidation: true, side: "sell" })
    // Spread out: never 1M within 60 s.
    const calm = [0, 61, 122, 183].flatMap((s) => run(set, batchOf((b) => b.large_trades.push(liq("binance-futures", "BTCUSDT", 400_000, t0 + s * 1000)))))
    assert.deepStrictEqual(calm, [])
    // Close together on two venues: 400k (t=183) + 300k + 350k within 60 s.
    assert.deepStrictEqual(run(set, batchOf((b) => b.large_trades.push(liq("deribit", "BTC-PERPETUAL", 300_000, t0 + 200_000)))), [])
    const fired = run(set, batchOf((b) => b.large_trades.push(liq("binance-futures", "BTCUSDT", 350_000, t0 + 210_000))))
    assert.strictEqual(fired.length, 1)
    assert.deepInclude(fired[0], { symbol: "BTC", exchange: null, value: 1_050_000 })
    assert.strictEqual(fired[0]!.details.count, 3)
    // Ordinary trades never count.
    const set2 = new RuleSet(rules([{ name: "cascade", kind: "liquidation_cluster", min_value_usd: 1, window_seconds: 60 }]))
    assert.deepStrictEqual(run(set2, batchOf((b) => b.large_trades.push(trade("binance", "BTCUSDT", 9e9, t0)))), [])
  })

  it("funding: compares annualised rates, so an hourly venue and an 8-hourly one meet the same bar", () => {
    const set = new RuleSet(rules([{ name: "carry", kind: "funding", max_abs_annualized_percent: 100 }]))
    const row = (symbol: string, rate: number, hours: number): FundingRateRow => ({
      id: `x_${symbol}_${rate}`, exchange: "binance-futures", symbol, rate, predictedRate: null, timestamp: t0, nextFundingTime: null,
      metadata: { interval_hours: hours }
    })
    // 0.0001 per 8 h = 10.95 %/yr; 0.0001 per 1 h = 87.6 %/yr: both calm.
    assert.deepStrictEqual(run(set, batchOf((b) => b.funding_rates.push(row("BTCUSDT", 0.0001, 8), row("ETHUSDT", 0.0001, 1)))), [])
    // 0.0002 per 1 h = 175.2 %/yr; -0.001 per 8 h = -109.5 %/yr.
    const fired = run(set, batchOf((b) => b.funding_rates.push(row("BTCUSDT", 0.0002, 1), row("ETHUSDT", -0.001, 8))))
    assert.deepStrictEqual(fired.map((f) => Math.round(f.value * 10) / 10), [175.2, -109.5])
  })

  it("open_interest_change: a build-up or an unwind within the window, in contracts", () => {
    const set = new RuleSet(rules([{ name: "oi", kind: "open_interest_change", min_change_percent: 5, window_seconds: 600 }]))
    const oi = (contracts: number, at: number): OpenInterestRow => ({
      id: `binance-futures_BTCUSDT_${at}`, exchange: "binance-futures", symbol: "BTCUSDT", openInterest: contracts, openInterestBase: null, openInterestUsd: contracts * 60_000, timestamp: at, metadata: null
    })
    // A slow drift: +4 % per 10 minutes never fires.
    const calm = [0, 1, 2, 3].flatMap((i) => run(set, batchOf((b) => b.open_interest.push(oi(1000 * 1.04 ** i, t0 + i * 601_000)))))
    assert.deepStrictEqual(calm, [])
    const up = run(set, batchOf((b) => b.open_interest.push(oi(1000 * 1.04 ** 3 * 1.06, t0 + 3 * 601_000 + 60_000))))
    assert.strictEqual(up.length, 1)
    assert.closeTo(up[0]!.value, 6, 1e-9)
    const down = run(set, batchOf((b) => b.open_interest.push(oi(1000 * 1.04 ** 3 * 0.99, t0 + 3 * 601_000 + 120_000))))
    assert.closeTo(down[0]!.value, (0.99 / 1.06 - 1) * 100, 1e-9)
  })

  it("basis: beyond the percent either way, or annualised when asked", () => {
    const row = (basisPercent: number, annualizedPercent: number | null): FuturesBasisRow => ({
      id: `cme_BTCZ6_${basisPercent}`, exchange: "cme", symbol: "BTCZ6", futuresPrice: 0, spotPrice: 0, spotSource: "coinbase", basis: 0,
      basisPercent, annualizedPercent, daysToExpiry: 30, timestamp: t0, metadata: null
    })
    const plain = new RuleSet(rules([{ name: "cme", kind: "basis", max_abs_percent: 2, exchanges: ["cme"] }]))
    assert.deepStrictEqual(run(plain, batchOf((b) => b.futures_basis.push(row(1.9, 23), row(-1.5, -18)))), [])
    assert.deepStrictEqual(run(plain, batchOf((b) => b.futures_basis.push(row(2.1, 25), row(-2.5, -30)))).map((f) => f.value), [2.1, -2.5])
    const annual = new RuleSet(rules([{ name: "cme-ann", kind: "basis", max_abs_percent: 20, measure: "annualized" }]))
    assert.deepStrictEqual(run(annual, batchOf((b) => b.futures_basis.push(row(1.9, 23), row(1, null)))).map((f) => f.value), [23])
  })

  it("price_divergence: two venues' fresh prices of one asset, apart by more than the bps", () => {
    const set = new RuleSet(rules([{ name: "div", kind: "price_divergence", max_bps: 20, max_age_seconds: 30 }]))
    const book = (exchange: string, symbol: string, bid: number, ask: number, at: number): OrderBookRow => ({
      id: `${exchange}_${symbol}_${at}`, exchange, symbol, bids: [[bid, 1], [bid - 1, 2]], asks: [[ask + 1, 2], [ask, 1]], timestamp: at, sequence: null, metadata: null
    })
    // 10 bps apart: calm. The CME future at +3 % is not a price of the asset (futures are the basis rule's).
    const calm = run(set, batchOf((b) => {
      b.exchange_orderbooks.push(book("binance", "BTCUSDT", 59_999, 60_001, t0))
      b.exchange_orderbooks.push(book("coinbase", "BTC-USD", 60_059, 60_061, t0))
      b.exchange_orderbooks.push(book("cme", "BTCZ6", 61_800, 61_810, t0))
    }))
    assert.deepStrictEqual(calm, [])
    // A stale quote does not count: binance's and coinbase's are 40 s old when deribit prints 61,000.
    assert.deepStrictEqual(run(set, batchOf((b) => b.large_trades.push(trade("deribit", "BTC-PERPETUAL", 1e6, t0 + 40_000, { price: 61_000 })))), [])
    // A fresh second venue, 29.6 bps below deribit.
    const fired = run(set, batchOf((b) => b.exchange_orderbooks.push(book("binance-futures", "BTCUSDT", 60_819, 60_821, t0 + 41_000))))
    assert.strictEqual(fired.length, 1)
    assert.deepInclude(fired[0], { symbol: "BTC", exchange: null })
    assert.closeTo(fired[0]!.value, (61_000 - 60_820) / 60_820 * 10_000, 1e-9)
    assert.deepInclude(fired[0]!.details.high as object, { exchange: "deribit", price: 61_000 })
    assert.deepInclude(fired[0]!.details.low as object, { exchange: "binance-futures", price: 60_820 })
  })

  const view = (now: number, feeds: LiveView["feeds"], gaps: ReadonlyArray<Gap> = []): LiveView => ({ now, feeds, gaps })
  const feed = (lastMessageAt: number, extra: Partial<LiveView["feeds"][number]> = {}): LiveView["feeds"][number] => ({
    feed: "binance-futures:market", venue: "binance-futures", state: "connected", lastMessageAt, books: [], streams: [], ...extra
  })

  it("stale_feed: a silent connection or a stale stream, once per silence", () => {
    const set = new RuleSet(rules([{ name: "silent", kind: "stale_feed", seconds: 30 }]))
    assert.deepStrictEqual(set.onTick(view(t0 + 29_000, [feed(t0)]), lookup), [])
    const fired = set.onTick(view(t0 + 31_000, [feed(t0, { state: "backoff" })]), lookup)
    assert.strictEqual(fired.length, 1)
    assert.match(fired[0]!.message, /no message for 31 s \(state backoff/)
    assert.deepStrictEqual(set.onTick(view(t0 + 60_000, [feed(t0, { state: "backoff" })]), lookup), [], "the same silence fires once")
    // Messages resume, then a single stream goes quiet while the socket delivers.
    const stream = (age: number, stale: boolean) => ({ channel: "trades", symbol: "SUSHIUSDT", age_ms: age, usual_interval_ms: 200, stale })
    assert.deepStrictEqual(set.onTick(view(t0 + 90_000, [feed(t0 + 89_900, { streams: [stream(20_000, true)] })]), lookup), [])
    const streamFired = set.onTick(view(t0 + 100_000, [feed(t0 + 99_900, { streams: [stream(31_000, true)] })]), lookup)
    assert.strictEqual(streamFired.length, 1)
    assert.deepInclude(streamFired[0], { symbol: "SUSHIUSDT", exchange: "binance-futures" })
  })

  it("unrepaired_gap: unrecoverable at once, open only after its delay, verified never", () => {
    const set = new RuleSet(rules([{ name: "gaps", kind: "unrepaired_gap", after_seconds: 120 }]))
    const gap = (id: string, status: Gap["status"], start: number): Gap => ({
      id, exchange: "binance", channel: "trades", symbol: "BTCUSDT", start, end: start + 5000, cause: "disconnect", estimatedMissing: 12, status, repairedCount: 0, metadata: {}
    })
    const gaps = [gap("a", "verified", t0 - 600_000), gap("b", "open", t0 - 60_000), gap("c", "unrecoverable", t0 - 1000)]
    assert.deepStrictEqual(set.onTick(view(t0, [], gaps), lookup).map((f) => f.details.gap_id), ["c"])
    assert.deepStrictEqual(set.onTick(view(t0 + 61_000, [], gaps), lookup).map((f) => f.details.gap_id), ["b"])
    assert.deepStrictEqual(set.onTick(view(t0 + 62_000, [], gaps), lookup), [], "each gap once")
  })

  it("book_resyncs: more than N within the window; old resyncs age out", () => {
    const set = new RuleSet(rules([{ name: "churn", kind: "book_resyncs", max_resyncs: 2, window_seconds: 60 }]))
    const book = (resyncs: number) => ({ symbol: "BTCUSDT", state: "live" as const, sequence: 1, bidLevels: 20, askLevels: 20, resyncs })
    const tick = (s: number, resyncs: number) => set.onTick(view(t0 + s * 1000, [feed(t0 + s * 1000, { books: [book(resyncs)] })]), lookup)
    assert.deepStrictEqual(tick(0, 5), [], "resyncs before the rule started do not count")
    assert.deepStrictEqual(tick(10, 6), [])
    assert.deepStrictEqual(tick(20, 7), [])
    // Two in the window is not more than two; these age out by t=81.
    assert.deepStrictEqual(tick(81, 8), [])
    assert.deepStrictEqual(tick(82, 9), [])
    const fired = tick(83, 10)
    assert.strictEqual(fired.length, 1)
    assert.strictEqual(fired[0]!.value, 3)
  })

  it("windows stay bounded whatever arrives: at most 4,096 samples per key and 10,000 keys per rule", () => {
    const set = new RuleSet(rules([
      { name: "cascade", kind: "liquidation_cluster", min_value_usd: 1e18, window_seconds: 7 * 86_400, group_by: "symbol" },
      { name: "oi", kind: "open_interest_change", min_change_percent: 1e6, window_seconds: 7 * 86_400 }
    ]))
    // A million liquidations on one instrument, all within the week-long window.
    for (let i = 0; i < 1_000_000; i += 1000) {
      run(set, batchOf((b) => {
        for (let j = 0; j < 1000; j++) b.large_trades.push(trade("binance-futures", "BTCUSDT", 1, t0 + i + j, { isLiquidation: true }))
      }))
    }
    // 5,000 open-interest samples of one instrument.
    run(set, batchOf((b) => {
      for (let i = 0; i < 5000; i++) {
        b.open_interest.push({ id: `oi_${i}`, exchange: "binance-futures", symbol: "BTCUSDT", openInterest: 1000 + i, openInterestBase: null, openInterestUsd: 0, timestamp: t0 + i * 1000, metadata: null })
      }
    }))
    assert.deepStrictEqual(set.footprint(), [{ rule: "cascade", keys: 1, largestWindow: 4096 }, { rule: "oi", keys: 1, largestWindow: 4096 }])
    // 12,000 instruments: the 10,000 most recently seen keep a window.
    run(set, batchOf((b) => {
      for (let i = 0; i < 12_000; i++) b.large_trades.push(trade("binance-futures", `COIN${i}USDT`, 1, t0 + 2_000_000, { isLiquidation: true }))
    }))
    assert.deepInclude(set.footprint()[0], { rule: "cascade", keys: 10_000 })
  })
})

describe("one filter for every rule kind: exchanges, symbols, assets", () => {
  /** What a scenario watches: one venue's instrument. Each scenario fires once with no filter. */
  interface Subject {
    readonly exchange: string
    readonly symbol: string
    readonly asset: string
  }
  const perp: Subject = { exchange: "binance-futures", symbol: "BTCUSDT", asset: "BTC" }
  const cmeFuture: Subject = { exchange: "cme", symbol: "BTCZ6", asset: "BTC" }
  const liq = (at: number, value: number) => trade(perp.exchange, perp.symbol, value, at, { isLiquidation: true, side: "sell" })
  const quietFeed = (symbol: string): LiveView["feeds"][number] => ({
    feed: "binance-futures:market", venue: "binance-futures", state: "connected", lastMessageAt: t0, streams: [],
    books: [{ symbol, state: "live", sequence: 1, bidLevels: 20, askLevels: 20, resyncs: 0 }]
  })
  const scenarios: ReadonlyArray<{ readonly kind: string; readonly subject: Subject; readonly rule: Record<string, unknown>; readonly run: (set: RuleSet) => ReadonlyArray<unknown> }> = [
    {
      kind: "large_trade", subject: perp, rule: { kind: "large_trade", min_value_usd: 1_000_000 },
      run: (set) => run(set, batchOf((b) => b.large_trades.push(trade(perp.exchange, perp.symbol, 2_000_000, t0))))
    },
    {
      // 600k + 600k within 10 s: 1.2M at the second.
      kind: "liquidation_cluster (by asset)", subject: perp, rule: { kind: "liquidation_cluster", min_value_usd: 1_000_000, window_seconds: 60 },
      run: (set) => [...run(set, batchOf((b) => b.large_trades.push(liq(t0, 600_000)))), ...run(set, batchOf((b) => b.large_trades.push(liq(t0 + 10_000, 600_000))))]
    },
    {
      kind: "liquidation_cluster (by symbol)", subject: perp, rule: { kind: "liquidation_cluster", min_value_usd: 1_000_000, window_seconds: 60, group_by: "symbol" },
      run: (set) => [...run(set, batchOf((b) => b.large_trades.push(liq(t0, 600_000)))), ...run(set, batchOf((b) => b.large_trades.push(liq(t0 + 10_000, 600_000))))]
    },
    {
      // 0.001 per 8 h = 109.5 % a year.
      kind: "funding", subject: perp, rule: { kind: "funding", max_abs_annualized_percent: 100 },
      run: (set) => run(set, batchOf((b) => b.funding_rates.push({
        id: "f1", exchange: perp.exchange, symbol: perp.symbol, rate: 0.001, predictedRate: null, timestamp: t0, nextFundingTime: null, metadata: { interval_hours: 8 }
      })))
    },
    {
      // 1000 to 1100 contracts in 5 minutes: +10 %.
      kind: "open_interest_change", subject: perp, rule: { kind: "open_interest_change", min_change_percent: 5, window_seconds: 600 },
      run: (set) => run(set, batchOf((b) => b.open_interest.push(
        { id: "oi1", exchange: perp.exchange, symbol: perp.symbol, openInterest: 1000, openInterestBase: null, openInterestUsd: 0, timestamp: t0, metadata: null },
        { id: "oi2", exchange: perp.exchange, symbol: perp.symbol, openInterest: 1100, openInterestBase: null, openInterestUsd: 0, timestamp: t0 + 300_000, metadata: null }
      )))
    },
    {
      kind: "basis", subject: cmeFuture, rule: { kind: "basis", max_abs_percent: 2 },
      run: (set) => run(set, batchOf((b) => b.futures_basis.push({
        id: "b1", exchange: cmeFuture.exchange, symbol: cmeFuture.symbol, futuresPrice: 61_800, spotPrice: 60_000, spotSource: "coinbase", basis: 1800,
        basisPercent: 3, annualizedPercent: 36, daysToExpiry: 30, timestamp: t0, metadata: null
      })))
    },
    {
      // The connection has said nothing for 60 s (limit 30).
      kind: "stale_feed (a silent connection)", subject: perp, rule: { kind: "stale_feed", seconds: 30 },
      run: (set) => set.onTick({ now: t0 + 60_000, feeds: [quietFeed(perp.symbol)], gaps: [] }, lookup)
    },
    {
      // The connection delivers; one stream has been stale for 40 s.
      kind: "stale_feed (a stale stream)", subject: perp, rule: { kind: "stale_feed", seconds: 30 },
      run: (set) => set.onTick({ now: t0 + 60_000, gaps: [], feeds: [{
        feed: "binance-futures:market", venue: "binance-futures", state: "connected", lastMessageAt: t0 + 59_900, books: [],
        streams: [{ channel: "trades", symbol: perp.symbol, age_ms: 40_000, usual_interval_ms: 200, stale: true }]
      }] }, lookup)
    },
    {
      kind: "unrepaired_gap", subject: perp, rule: { kind: "unrepaired_gap" },
      run: (set) => set.onTick({ now: t0, feeds: [], gaps: [{
        id: "g1", exchange: perp.exchange, channel: "trades", symbol: perp.symbol, start: t0 - 1000, end: t0, cause: "disconnect",
        estimatedMissing: 3, status: "unrecoverable", repairedCount: 0, metadata: {}
      }] }, lookup)
    },
    {
      // 0 resyncs, then 5 within 10 s (more than 2).
      kind: "book_resyncs", subject: perp, rule: { kind: "book_resyncs", max_resyncs: 2, window_seconds: 60 },
      run: (set) => {
        const at = (s: number, resyncs: number) => set.onTick({ now: t0 + s * 1000, gaps: [], feeds: [{
          feed: "binance-futures:market", venue: "binance-futures", state: "connected", lastMessageAt: t0 + s * 1000, streams: [],
          books: [{ symbol: perp.symbol, state: "live", sequence: 1, bidLevels: 20, askLevels: 20, resyncs }]
        }] }, lookup)
        return [...at(0, 0), ...at(10, 5)]
      }
    }
  ]
  /** Filters and whether the subject passes them, by the README's rule: every filter given must pass. */
  const filters = (s: Subject): ReadonlyArray<readonly [Record<string, unknown>, boolean]> => [
    [{}, true],
    [{ exchanges: [s.exchange] }, true],
    [{ exchanges: ["kraken"] }, false],
    [{ symbols: [s.symbol] }, true],
    [{ symbols: ["DOGEUSDT"] }, false],
    [{ assets: [s.asset] }, true],
    [{ assets: ["DOGE"] }, false],
    [{ exchanges: [s.exchange], symbols: [s.symbol], assets: [s.asset] }, true],
    [{ exchanges: ["kraken"], assets: [s.asset] }, false],
    [{ symbols: ["DOGEUSDT"], assets: [s.asset] }, false],
    [{ exchanges: [s.exchange], assets: ["DOGE"] }, false],
    [{ exchanges: [s.exchange, "kraken"], assets: ["DOGE", s.asset] }, true]
  ]
  for (const scenario of scenarios) {
    for (const [filter, fires] of filters(scenario.subject)) {
      it(`${scenario.kind} with ${JSON.stringify(filter)} ${fires ? "fires" : "stays quiet"}`, () => {
        const set = new RuleSet(rules([{ name: "r", ...scenario.rule, ...filter }]))
        assert.strictEqual(scenario.run(set).length, fires ? 1 : 0)
      })
    }
  }

  it("unrepaired_gap: channels and the instrument filters, both", () => {
    const gap = (channel: Gap["channel"]): Gap => ({
      id: `g-${channel}`, exchange: perp.exchange, channel, symbol: perp.symbol, start: t0 - 1000, end: t0, cause: "disconnect",
      estimatedMissing: 3, status: "unrecoverable", repairedCount: 0, metadata: {}
    })
    const fired = (filter: Record<string, unknown>) =>
      new RuleSet(rules([{ name: "r", kind: "unrepaired_gap", ...filter }])).onTick({ now: t0, feeds: [], gaps: [gap("trades"), gap("book")] }, lookup).map((f) => f.details.gap_id)
    assert.deepStrictEqual(fired({ channels: ["book"] }), ["g-book"])
    assert.deepStrictEqual(fired({ channels: ["book"], assets: ["BTC"] }), ["g-book"])
    assert.deepStrictEqual(fired({ channels: ["book"], assets: ["ETH"] }), [])
    assert.deepStrictEqual(fired({ channels: ["liquidations"], assets: ["BTC"] }), [])
  })

  it("price_divergence compares only the instruments its filters pass", () => {
    // binance BTCUSDT at 60,000 and coinbase BTC-USD at 60,300: 50 bps apart (limit 20).
    const fired = (filter: Record<string, unknown>) => {
      const set = new RuleSet(rules([{ name: "div", kind: "price_divergence", max_bps: 20, ...filter }]))
      return run(set, batchOf((b) => b.large_trades.push(
        trade("binance", "BTCUSDT", 1e6, t0, { price: 60_000 }),
        trade("coinbase", "BTC-USD", 1e6, t0, { price: 60_300 })
      ))).length
    }
    const table: ReadonlyArray<readonly [Record<string, unknown>, number]> = [
      [{}, 1],
      [{ exchanges: ["binance", "coinbase"] }, 1],
      [{ exchanges: ["binance"] }, 0], // one venue left: nothing to compare it with
      [{ symbols: ["BTCUSDT", "BTC-USD"] }, 1],
      [{ symbols: ["BTCUSDT"] }, 0],
      [{ assets: ["BTC"] }, 1],
      [{ assets: ["ETH"] }, 0],
      [{ exchanges: ["binance", "coinbase"], assets: ["ETH"] }, 0],
      [{ instrument_kinds: ["perpetual"] }, 0], // both are spot
      [{ instrument_kinds: ["spot"], assets: ["BTC"] }, 1]
    ]
    for (const [filter, expected] of table) assert.strictEqual(fired(filter), expected, JSON.stringify(filter))
  })
})

describe("windows by event time, whatever the arrival order", () => {
  const liq = (exchange: string, symbol: string, value: number, second: number) =>
    trade(exchange, symbol, value, t0 + second * 1000, { isLiquidation: true, side: "sell" })

  it("liquidation_cluster: a late venue's liquidations count in the window of their own time", () => {
    const set = new RuleSet(rules([{ name: "cascade", kind: "liquidation_cluster", min_value_usd: 1_000_000, window_seconds: 60 }]))
    const feed = (row: LargeTradeRow) => run(set, batchOf((b) => b.large_trades.push(row)))
    const at100 = liq("binance-futures", "BTCUSDT", 400_000, 100)
    assert.deepStrictEqual(feed(at100), [])
    // Deribit's arrive late. At 50 s: 300k alone in its window; the window ending at 100 s holds 700k.
    assert.deepStrictEqual(feed(liq("deribit", "BTC-PERPETUAL", 300_000, 50)), [])
    // 80 s late, more than a window: not judged. (It never shared 60 s with 1M anyway: 350k + 300k at most.)
    assert.deepStrictEqual(feed(liq("binance-futures", "BTCUSDT", 350_000, 20)), [])
    // At 95 s: its window [35 s, 95 s] holds 300k + 350k = 650k, but the window ending at 100 s now holds
    // 300k + 350k + 400k = 1,050,000: the cluster is completed by the liquidation at 100 s, as in time order.
    const fired = feed(liq("deribit", "BTC-PERPETUAL", 350_000, 95))
    assert.strictEqual(fired.length, 1)
    assert.deepInclude(fired[0], { id: `cascade_${at100.id}`, symbol: "BTC", exchange: null, value: 1_050_000, eventTime: t0 + 100_000 })
    assert.strictEqual(fired[0]!.details.count, 3)
    assert.strictEqual(fired[0]!.details.first, new Date(t0 + 50_000).toISOString())
    // 70 s later, alone in its window.
    assert.deepStrictEqual(feed(liq("binance-futures", "BTCUSDT", 100_000, 170)), [])
  })

  it("open_interest_change: a late sample is a move from it, not to it", () => {
    const set = new RuleSet(rules([{ name: "oi", kind: "open_interest_change", min_change_percent: 5, window_seconds: 600 }]))
    const oi = (contracts: number, second: number): OpenInterestRow => ({
      id: `binance-futures_BTCUSDT_oi_${second}`, exchange: "binance-futures", symbol: "BTCUSDT", openInterest: contracts, openInterestBase: null, openInterestUsd: contracts * 60_000, timestamp: t0 + second * 1000, metadata: null
    })
    const feed = (row: OpenInterestRow) => run(set, batchOf((b) => b.open_interest.push(row)))
    assert.deepStrictEqual(feed(oi(1100, 500)), [])
    // 1000 contracts at 100 s arrives after 1100 at 500 s: open interest rose 10 % (1000 to 1100) within 400 s.
    const fired = feed(oi(1000, 100))
    assert.strictEqual(fired.length, 1)
    assert.deepInclude(fired[0], { id: "oi_binance-futures_BTCUSDT_oi_500", eventTime: t0 + 500_000 })
    assert.closeTo(fired[0]!.value, 10, 1e-9)
    assert.deepInclude(fired[0]!.details, { from: 1000, to: 1100, from_time: new Date(t0 + 100_000).toISOString(), open_interest_usd: 1100 * 60_000 })
    // 1040 at 300 s: +4 % from 1000 in its own window; the window ending at 500 s had fired already. Nothing new.
    assert.deepStrictEqual(feed(oi(1040, 300)), [])
    // More than one window (600 s) behind the newest: not judged.
    assert.deepStrictEqual(feed(oi(500, -200)), [])
  })

  it("price_divergence: a late venue's price is compared with prices of its own time", () => {
    const set = new RuleSet(rules([{ name: "div", kind: "price_divergence", max_bps: 20, max_age_seconds: 30 }]))
    const feed = (row: LargeTradeRow) => run(set, batchOf((b) => b.large_trades.push(row)))
    const binance = trade("binance", "BTCUSDT", 1e6, t0 + 100_000, { price: 60_000 })
    assert.deepStrictEqual(feed(binance), [])
    // Coinbase at 50 s, 50 bps higher, arrives after binance's 100 s price: 50 s apart, beyond the 30 s age.
    assert.deepStrictEqual(feed(trade("coinbase", "BTC-USD", 1e6, t0 + 50_000, { price: 60_300 })), [])
    // Coinbase at 95 s: 5 s from binance's, (60,300 - 60,000) / 60,000 = 50 bps.
    const coinbase = trade("coinbase", "BTC-USD", 1e6, t0 + 95_000, { price: 60_300 })
    const fired = feed(coinbase)
    assert.strictEqual(fired.length, 1)
    assert.deepInclude(fired[0], { id: `div_${coinbase.id}_${binance.id}`, eventTime: t0 + 100_000 })
    assert.closeTo(fired[0]!.value, 50, 1e-9)
    // A third venue between them leaves the widest pair as it was: the same condition, not fired again.
    assert.deepStrictEqual(feed(trade("deribit", "BTC-PERPETUAL", 1e6, t0 + 96_000, { price: 60_100 })), [])
  })
})

describe("windows by event time: any arrival order less than a window late fires what time order fires", () => {
  // Samples at distinct seconds, each delayed by less than the 60 s window: arrival order is by time plus delay.
  const samples = fc.uniqueArray(fc.record({
    second: fc.integer({ min: 0, max: 400 }),
    delay: fc.integer({ min: 0, max: 59 }),
    value: fc.integer({ min: 1, max: 10 }),
    venue: fc.constantFrom(["binance-futures", "BTCUSDT"], ["deribit", "BTC-PERPETUAL"])
  }), { selector: (s) => s.second, minLength: 1, maxLength: 40 })
  type Drawn = { readonly second: number; readonly delay: number; readonly value: number; readonly venue: ReadonlyArray<string> }
  const inTimeOrder = (drawn: ReadonlyArray<Drawn>) => [...drawn].sort((a, b) => a.second - b.second)
  const asArrived = (drawn: ReadonlyArray<Drawn>) => [...drawn].sort((a, b) => a.second + a.delay - (b.second + b.delay) || a.second - b.second)
  const firedIds = (rule: unknown, order: ReadonlyArray<Drawn>, row: (d: Drawn) => (b: RowBatch) => void) => {
    const set = new RuleSet(rules([rule]))
    return order.flatMap((d) => run(set, batchOf(row(d))).map((f) => f.id)).sort()
  }

  it("liquidation_cluster", () => {
    const rule = { name: "cascade", kind: "liquidation_cluster", min_value_usd: 25, window_seconds: 60 }
    const row = (d: Drawn) => (b: RowBatch) => {
      b.large_trades.push({
        id: `${d.venue[0]}_${d.venue[1]}_liq-${d.second}`, exchange: d.venue[0]!, symbol: d.venue[1]!, side: "sell", price: 1, size: d.value, sizeBase: null, sizeUnit: null, valueUsd: d.value,
        timestamp: t0 + d.second * 1000, tradeId: `liq-${d.second}`, isLiquidation: true, metadata: {}
      })
    }
    fc.assert(fc.property(samples, (drawn) => {
      assert.deepStrictEqual(firedIds(rule, asArrived(drawn), row), firedIds(rule, inTimeOrder(drawn), row))
    }), { seed: 19, numRuns: 300 })
  })

  it("open_interest_change", () => {
    const rule = { name: "oi", kind: "open_interest_change", min_change_percent: 50, window_seconds: 60 }
    const row = (d: Drawn) => (b: RowBatch) => {
      b.open_interest.push({ id: `oi_${d.second}`, exchange: "binance-futures", symbol: "BTCUSDT", openInterest: d.value, openInterestBase: null, openInterestUsd: 0, timestamp: t0 + d.second * 1000, metadata: null })
    }
    fc.assert(fc.property(samples, (drawn) => {
      assert.deepStrictEqual(firedIds(rule, asArrived(drawn), row), firedIds(rule, inTimeOrder(drawn), row))
    }), { seed: 19, numRuns: 300 })
  })
})

describe("alert ids: deterministic, and one per firing", () => {
  it("a gap open too long, then known unrecoverable, is two alerts", () => {
    const set = new RuleSet(rules([{ name: "gaps", kind: "unrepaired_gap", after_seconds: 60 }]))
    const gap = (status: Gap["status"]): Gap => ({
      id: "binance-futures_trades_BTCUSDT_1", exchange: "binance-futures", channel: "trades", symbol: "BTCUSDT", start: t0, end: null, cause: "disconnect",
      estimatedMissing: null, status, repairedCount: 0, metadata: {}
    })
    const open = set.onTick({ now: t0 + 61_000, feeds: [], gaps: [gap("open")] }, lookup)
    const final = set.onTick({ now: t0 + 62_000, feeds: [], gaps: [gap("unrecoverable")] }, lookup)
    assert.deepStrictEqual([...open, ...final].map((f) => f.id), ["gaps_binance-futures_trades_BTCUSDT_1_open", "gaps_binance-futures_trades_BTCUSDT_1_final"])
  })

  it("two liquidations in the same millisecond are two alerts", () => {
    for (const groupBy of ["asset", "symbol"]) {
      const set = new RuleSet(rules([{ name: "cascade", kind: "liquidation_cluster", min_value_usd: 1, window_seconds: 60, group_by: groupBy }]))
      const first = trade("binance-futures", "BTCUSDT", 10, t0, { isLiquidation: true })
      const second = trade(groupBy === "asset" ? "deribit" : "binance-futures", groupBy === "asset" ? "BTC-PERPETUAL" : "BTCUSDT", 10, t0, { isLiquidation: true })
      const fired = run(set, batchOf((b) => b.large_trades.push(first, second)))
      assert.deepStrictEqual(fired.map((f) => f.id), [`cascade_${first.id}`, `cascade_${second.id}`], groupBy)
      // The same rows again (a replay) name the same alerts: the store keeps each once.
      const again = new RuleSet(rules([{ name: "cascade", kind: "liquidation_cluster", min_value_usd: 1, window_seconds: 60, group_by: groupBy }]))
      assert.deepStrictEqual(run(again, batchOf((b) => b.large_trades.push(first, second))).map((f) => f.id), fired.map((f) => f.id))
    }
  })
})
