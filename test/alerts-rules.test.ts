/**
 * Alert rules without a service: the rules file (the README's example decodes;
 * every mistake is named by rule and field) and each rule kind firing on a
 * scenario and staying quiet on a calm one.
 */
import { assert, describe, it } from "@effect/vitest"
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
    id: `${exchange}_${symbol}_${tradeId}`, exchange, symbol, side: "buy", price: 60_000, size: valueUsd / 60_000, valueUsd,
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
    assert.strictEqual(file.rules.length, 9)
    assert.sameMembers(file.rules.map((r) => r.kind), [
      "large_trade", "liquidation_cluster", "funding", "open_interest_change", "basis", "price_divergence", "stale_feed", "unrepaired_gap", "book_resyncs"
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
      id: `binance-futures_BTCUSDT_${at}`, exchange: "binance-futures", symbol: "BTCUSDT", openInterest: contracts, openInterestUsd: contracts * 60_000, timestamp: at, metadata: null
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
    assert.deepStrictEqual(set.onTick(view(t0 + 29_000, [feed(t0)])), [])
    const fired = set.onTick(view(t0 + 31_000, [feed(t0, { state: "backoff" })]))
    assert.strictEqual(fired.length, 1)
    assert.match(fired[0]!.message, /no message for 31 s \(state backoff/)
    assert.deepStrictEqual(set.onTick(view(t0 + 60_000, [feed(t0, { state: "backoff" })])), [], "the same silence fires once")
    // Messages resume, then a single stream goes quiet while the socket delivers.
    const stream = (age: number, stale: boolean) => ({ channel: "trades", symbol: "SUSHIUSDT", age_ms: age, usual_interval_ms: 200, stale })
    assert.deepStrictEqual(set.onTick(view(t0 + 90_000, [feed(t0 + 89_900, { streams: [stream(20_000, true)] })])), [])
    const streamFired = set.onTick(view(t0 + 100_000, [feed(t0 + 99_900, { streams: [stream(31_000, true)] })]))
    assert.strictEqual(streamFired.length, 1)
    assert.deepInclude(streamFired[0], { symbol: "SUSHIUSDT", exchange: "binance-futures" })
  })

  it("unrepaired_gap: unrecoverable at once, open only after its delay, verified never", () => {
    const set = new RuleSet(rules([{ name: "gaps", kind: "unrepaired_gap", after_seconds: 120 }]))
    const gap = (id: string, status: Gap["status"], start: number): Gap => ({
      id, exchange: "binance", channel: "trades", symbol: "BTCUSDT", start, end: start + 5000, cause: "disconnect", estimatedMissing: 12, status, repairedCount: 0, metadata: {}
    })
    const gaps = [gap("a", "verified", t0 - 600_000), gap("b", "open", t0 - 60_000), gap("c", "unrecoverable", t0 - 1000)]
    assert.deepStrictEqual(set.onTick(view(t0, [], gaps)).map((f) => f.details.gap_id), ["c"])
    assert.deepStrictEqual(set.onTick(view(t0 + 61_000, [], gaps)).map((f) => f.details.gap_id), ["b"])
    assert.deepStrictEqual(set.onTick(view(t0 + 62_000, [], gaps)), [], "each gap once")
  })

  it("book_resyncs: more than N within the window; old resyncs age out", () => {
    const set = new RuleSet(rules([{ name: "churn", kind: "book_resyncs", max_resyncs: 2, window_seconds: 60 }]))
    const book = (resyncs: number) => ({ symbol: "BTCUSDT", state: "live" as const, sequence: 1, bidLevels: 20, askLevels: 20, resyncs })
    const tick = (s: number, resyncs: number) => set.onTick(view(t0 + s * 1000, [feed(t0 + s * 1000, { books: [book(resyncs)] })]))
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

  it("windows stay bounded whatever arrives: a million liquidations on one key keep at most the sample cap", () => {
    const set = new RuleSet(rules([{ name: "cascade", kind: "liquidation_cluster", min_value_usd: 1e18, window_seconds: 7 * 86_400 }]))
    const before = process.memoryUsage().heapUsed
    for (let i = 0; i < 1_000_000; i += 1000) {
      run(set, batchOf((b) => {
        for (let j = 0; j < 1000; j++) b.large_trades.push(trade("binance-futures", "BTCUSDT", 1, t0 + i + j, { isLiquidation: true }))
      }))
    }
    global.gc?.()
    // 4,096 samples of two numbers: well under 16 MB even without a collection.
    assert.isBelow(process.memoryUsage().heapUsed - before, 64 * 1024 * 1024)
  })
})
