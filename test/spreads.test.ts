/**
 * Cross-venue spreads (issue 20.6) from real books: made-up venues whose
 * RecordProcessors (their BookSyncs registered in the live view as in the
 * service) are set to known tops. Mids in USD, the pair spreads in bps, a EUR
 * book at our own cross rate, a USDT book at par, an inverse perpetual's
 * sizes in coins, and the books left out: stale (by receipt time), crossed,
 * resyncing. Then the sampler on the TestClock: one row a second, ids
 * `{asset}_{ms}`, `changed` only when a price or the set of books moves.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { sampleAsset } from "../src/analytics/spreads.ts"
import { CrossVenueAnalytics } from "../src/analytics/sampler.ts"
import { type BookView, LiveBookRegistry, LiveBooks } from "../src/book/live.ts"
import { RowBatch } from "../src/domain/rows.ts"
import { eventsOf } from "../src/stream/hub.ts"
import { fakeVenue } from "./support/books.ts"

const t0 = Date.parse("2026-03-02T12:00:00Z")
const settings = { maxBookAgeMs: 5_000 }

/** The scenario every test here starts from; each book received 1 s before the sample at t0 unless said. */
const scenario = (registry: LiveBookRegistry, at = t0 - 1_000) => {
  const alpha = fakeVenue(registry, "alpha", {
    "BTC-USD": { base: "BTC", quote: "USD", kind: "spot" },
    // Linear, 0.01 BTC a contract.
    "BTC-PERP": { base: "BTC", quote: "USDT", kind: "perpetual", contractSize: 0.01 },
    "BTC-0327": { base: "BTC", quote: "USD", kind: "future" }
  })
  const beta = fakeVenue(registry, "beta", {
    BTCUSDT: { base: "BTC", quote: "USDT", kind: "spot" },
    // Inverse, 100 USD a contract.
    "BTC-PERP": { base: "BTC", quote: "USD", kind: "perpetual", contractSize: 100, inverse: true }
  })
  const gamma = fakeVenue(registry, "gamma", {
    "BTC-EUR": { base: "BTC", quote: "EUR", kind: "spot" },
    "ETH-EUR": { base: "ETH", quote: "EUR", kind: "spot" },
    "ETH-USD": { base: "ETH", quote: "USD", kind: "spot" }
  })
  const delta = fakeVenue(registry, "delta", { "BTC-USD": { base: "BTC", quote: "USD", kind: "spot" } })
  const zeta = fakeVenue(registry, "zeta", { "BTC-USD": { base: "BTC", quote: "USD", kind: "spot" } })
  alpha.book("BTC-USD", [[100_000, 2], [99_990, 5]], [[100_010, 1.5], [100_020, 4]], at)
  alpha.book("BTC-PERP", [[100_050, 300]], [[100_060, 200]], at)
  alpha.book("BTC-0327", [[101_000, 1]], [[101_010, 1]], at)
  beta.book("BTCUSDT", [[100_020, 0.5]], [[100_030, 0.8]], at)
  beta.book("BTC-PERP", [[100_040, 1_000]], [[100_050, 2_000]], at)
  gamma.book("BTC-EUR", [[92_000, 1]], [[92_010, 1]], at)
  gamma.book("ETH-EUR", [[1_999.5, 10]], [[2_000.5, 10]], at)
  gamma.book("ETH-USD", [[2_169.5, 10]], [[2_170.5, 10]], at)
  // Last heard 6 s before the sample: past the 5 s limit.
  delta.book("BTC-USD", [[100_500, 1]], [[100_510, 1]], t0 - 6_000)
  // A sequence gap: resyncing, its last levels still held.
  zeta.book("BTC-USD", [[120_000, 1]], [[120_010, 1]], at)
  zeta.gap("BTC-USD", at)
  return { alpha, beta, gamma, delta, zeta }
}

/** A live book that is crossed: BookSync itself resyncs one at once, so only a source that misbehaves shows it live. */
const crossedSource = {
  views: (): ReadonlyArray<BookView> => [{
    exchange: "epsilon", symbol: "BTC-USD", state: "live", bestBid: 100_100, bidSize: 1, bestAsk: 100_090, askSize: 1,
    exchangeTime: t0 - 1_020, receivedAt: t0 - 1_000, crossed: true
  }]
}
const epsilonFacts = { venue: "epsilon", symbol: "BTC-USD", base: "BTC", quote: "USD", kind: "spot" as const, contractSize: 1, inverse: false }

describe("a spread sample from the live books", () => {
  it("mids in USD, pair spreads in bps, a EUR book at our cross rate, USDT at par; stale, crossed and resyncing books left out", () => {
    const registry = new LiveBookRegistry()
    const venues = scenario(registry)
    registry.register(crossedSource, (v, s) => (v === "epsilon" && s === "BTC-USD" ? epsilonFacts : undefined))
    const s = sampleAsset("BTC", registry.books(), (v, sym) => registry.instrument(v, sym), t0, settings)

    // The dated future is not in a sample (its distance to spot is basis); the ETH books are another asset's.
    assert.deepStrictEqual(s.quotes.map((q) => `${q.market} ${q.exchange}:${q.symbol}`), [
      "perpetual alpha:BTC-PERP", "perpetual beta:BTC-PERP", "spot alpha:BTC-USD", "spot beta:BTCUSDT", "spot gamma:BTC-EUR"
    ])
    const quote = (name: string) => s.quotes.find((q) => `${q.exchange}:${q.symbol}` === name)!
    // alpha BTC-USD: (100 000 + 100 010) / 2 = 100 005 USD.
    assert.deepInclude(quote("alpha:BTC-USD"), { bid: 100_000, ask: 100_010, mid: 100_005, bid_size: 2, ask_size: 1.5, quote_basis: "USD", usd_rate: 1, age_ms: 1_000, exchange_time: t0 - 1_020 })
    // beta BTCUSDT at par: (100 020 + 100 030) / 2 = 100 025.
    assert.deepInclude(quote("beta:BTCUSDT"), { bid: 100_020, ask: 100_030, mid: 100_025, quote_basis: "USDT at par", usd_rate: 1 })
    // EUR per USD from gamma's ETH books, not BTC's own: mid(ETH-USD) / mid(ETH-EUR) = 2 170 / 2 000 = 1.085.
    // BTC-EUR: bid 92 000 x 1.085 = 99 820; ask 92 010 x 1.085 = 99 830.85; mid 92 005 x 1.085 = 99 825.425.
    const eur = quote("gamma:BTC-EUR")
    assert.strictEqual(eur.usd_rate, 1.085)
    assert.closeTo(eur.bid, 99_820, 1e-6)
    assert.closeTo(eur.ask, 99_830.85, 1e-6)
    assert.closeTo(eur.mid, 99_825.425, 1e-6)
    assert.deepInclude(eur, { native_bid: 92_000, native_ask: 92_010, quote: "EUR" })
    assert.strictEqual(eur.quote_basis, "EUR at 1.085 (median of 1: gamma ETH-USD mid / ETH-EUR mid)")
    // Perpetual sizes in coins: alpha's linear 300 contracts x 0.01 = 3 BTC; beta's inverse 1 000 x 100 USD / 100 040 = 0.99960016 BTC.
    assert.deepInclude(quote("alpha:BTC-PERP"), { mid: 100_055, bid_size: 3, ask_size: 2, quote_basis: "USDT at par" })
    assert.closeTo(quote("beta:BTC-PERP").bid_size, 0.999600159936, 1e-9)
    // 2 000 x 100 / 100 050 = 1.99900049975.
    assert.closeTo(quote("beta:BTC-PERP").ask_size, 1.99900049975, 1e-9)

    const pair = (a: string, b: string) => s.pairs.find((p) => p.a === a && p.b === b)!.spread_bps
    assert.strictEqual(s.pairs.length, 4, "3 spot pairs and 1 perpetual pair; never spot against perpetual")
    // (100 005 - 100 025) / 100 015 x 1e4 = -1.99970 bps: alpha is cheaper.
    assert.closeTo(pair("alpha:BTC-USD", "beta:BTCUSDT"), -1.9997, 1e-4)
    // (100 005 - 99 825.425) / 99 915.2125 x 1e4 = 17.97274 bps.
    assert.closeTo(pair("alpha:BTC-USD", "gamma:BTC-EUR"), 17.9727, 1e-4)
    // (100 025 - 99 825.425) / 99 925.2125 x 1e4 = 19.97244 bps.
    assert.closeTo(pair("beta:BTCUSDT", "gamma:BTC-EUR"), 19.9724, 1e-4)
    // (100 055 - 100 045) / 100 050 x 1e4 = 0.99950 bps.
    assert.closeTo(pair("alpha:BTC-PERP", "beta:BTC-PERP"), 0.9995, 1e-4)

    assert.deepStrictEqual(s.excluded, [
      { exchange: "delta", symbol: "BTC-USD", reason: "stale: last update received 6000 ms before the sample (limit 5000 ms)" },
      { exchange: "epsilon", symbol: "BTC-USD", reason: "crossed book (bid 100100 >= ask 100090)" },
      { exchange: "zeta", symbol: "BTC-USD", reason: "book resyncing, not live" }
    ])
    assert.strictEqual(venues.zeta.processor.books!.stateOf("BTC-USD"), "resyncing")
  })

  it("a EUR book with no other asset's EUR and USD books on one venue has no cross rate: left out, saying so", () => {
    const registry = new LiveBookRegistry()
    const gamma = fakeVenue(registry, "gamma", { "BTC-EUR": { base: "BTC", quote: "EUR", kind: "spot" }, "BTC-USD": { base: "BTC", quote: "USD", kind: "spot" } })
    gamma.book("BTC-EUR", [[92_000, 1]], [[92_010, 1]], t0)
    gamma.book("BTC-USD", [[100_000, 1]], [[100_010, 1]], t0)
    const s = sampleAsset("BTC", registry.books(), (v, sym) => registry.instrument(v, sym), t0, settings)
    assert.deepStrictEqual(s.quotes.map((q) => q.symbol), ["BTC-USD"])
    assert.deepStrictEqual(s.excluded, [{ exchange: "gamma", symbol: "BTC-EUR", reason: "no EUR cross rate: no other asset has live EUR and USD spot books on one venue" }])
  })

  it("a book is current by our receipt of its last update: 5 000 ms old counts, 5 001 ms does not", () => {
    const registry = new LiveBookRegistry()
    const alpha = fakeVenue(registry, "alpha", { "BTC-USD": { base: "BTC", quote: "USD", kind: "spot" } })
    alpha.book("BTC-USD", [[100_000, 1]], [[100_010, 1]], t0 - 5_000)
    const lookup = (v: string, sym: string) => registry.instrument(v, sym)
    assert.strictEqual(sampleAsset("BTC", registry.books(), lookup, t0, settings).quotes.length, 1)
    assert.deepStrictEqual(sampleAsset("BTC", registry.books(), lookup, t0 + 1, settings).excluded.map((e) => e.reason), [
      "stale: last update received 5001 ms before the sample (limit 5000 ms)"
    ])
  })
})

describe("the sampler", () => {
  it.effect("one row per asset a second through the fan-out, id {asset}_{ms}; changed only when the books move", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const registry = new LiveBookRegistry()
      const env = { SPREAD_ASSETS: "BTC", SPREAD_SAMPLE_SECONDS: "1", SPREAD_MAX_BOOK_AGE_SECONDS: "5" }
      const context = yield* Layer.build(CrossVenueAnalytics.layer.pipe(
        Layer.provide(Layer.succeed(LiveBooks, registry)),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
      ))
      const venues = scenario(registry, t0)
      const batches: Array<RowBatch> = []
      yield* Context.get(context, CrossVenueAnalytics).attach((batch) => Effect.sync(() => void batches.push(batch)))
      yield* TestClock.adjust("0 millis")
      yield* TestClock.adjust("1 second")
      // At t0 + 2 s beta's spot book moves; at t0 + 6 s every book but beta's is 6 s old: stale.
      venues.beta.book("BTCUSDT", [[100_021, 0.5]], [[100_030, 0.8]], t0 + 2_000)
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("4 seconds")
      const rows = batches.flatMap((b) => b.exchange_spreads)
      assert.deepStrictEqual(rows.map((r) => r.id), [`BTC_${t0}`, `BTC_${t0 + 1_000}`, `BTC_${t0 + 2_000}`, `BTC_${t0 + 3_000}`, `BTC_${t0 + 4_000}`, `BTC_${t0 + 5_000}`, `BTC_${t0 + 6_000}`])
      assert.deepStrictEqual(rows.map((r) => r.changed), [true, false, true, false, false, false, true])
      // Stored: the first, and at t0 + 6 s (the books used changed). beta's move at t0 + 2 s is a change for the
      // stream, but its mid went from 100 025 to 100 025.5: 0.5 / 100 025 x 1e4 = 0.05 bps, under the 1 bps default.
      assert.deepStrictEqual(rows.map((r) => r.stored), [true, false, false, false, false, false, true])
      // The ages grow with the clock while the prices stand still.
      assert.deepStrictEqual(rows.slice(0, 2).map((r) => r.quotes.find((q) => q.exchange === "alpha" && q.symbol === "BTC-USD")!.age_ms), [0, 1_000])
      const last = rows.at(-1)!
      assert.deepStrictEqual(last.quotes.map((q) => `${q.exchange}:${q.symbol}`), ["beta:BTCUSDT"])
      assert.include(last.excluded.find((e) => e.exchange === "alpha" && e.symbol === "BTC-USD")!.reason, "stale: last update received 6000 ms")
    }).pipe(Effect.scoped))
})

describe("what the sampler stores", () => {
  it.effect("a sample is stored when the books change, a mid moves 1 bps or more since the last stored one, or 10 s after it; every sample still reaches the fan-out", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const registry = new LiveBookRegistry()
      const env = { SPREAD_ASSETS: "BTC", SPREAD_SAMPLE_SECONDS: "1" }
      const context = yield* Layer.build(CrossVenueAnalytics.layer.pipe(
        Layer.provide(Layer.succeed(LiveBooks, registry)),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
      ))
      const alpha = fakeVenue(registry, "alpha", { "BTC-USD": { base: "BTC", quote: "USD", kind: "spot" } })
      const beta = fakeVenue(registry, "beta", { BTCUSDT: { base: "BTC", quote: "USDT", kind: "spot" } })
      // alpha's mid by second (both books re-received every second, so never stale).
      const alphaMid: Record<number, number> = { 0: 100_005, 1: 100_009, 2: 100_015, 3: 100_016 }
      const batches: Array<RowBatch> = []
      yield* Context.get(context, CrossVenueAnalytics).attach((batch) => Effect.sync(() => void batches.push(batch)))
      for (let second = 0; second <= 14; second++) {
        const mid = alphaMid[second] ?? 100_016
        alpha.book("BTC-USD", [[mid - 5, 1]], [[mid + 5, 1]], t0 + second * 1_000)
        beta.book("BTCUSDT", [[100_020, 1]], [[100_030, 1]], t0 + second * 1_000)
        yield* TestClock.adjust(second === 0 ? "0 millis" : "1 second")
      }
      const rows = batches.flatMap((b) => b.exchange_spreads)
      assert.strictEqual(rows.length, 15, "one sample a second, all in the batches")
      // 0 s: first. 1 s: 4 / 100 005 x 1e4 = 0.39998 bps. 2 s: 10 / 100 005 x 1e4 = 0.99995 bps, still under 1.
      // 3 s: 11 / 100 005 x 1e4 = 1.09995 bps: stored. Then unchanged: stored again 10 s later, at 13 s.
      assert.deepStrictEqual(rows.filter((r) => r.stored).map((r) => [(r.timestamp - t0) / 1_000, r.metadata?.stored_because]), [
        [0, "first sample"], [3, "alpha:BTC-USD mid moved"], [13, "interval"]
      ])
    }).pipe(Effect.scoped))
})

describe("spread events on the stream", () => {
  it("only a changed sample is an event; every sample is a row", () => {
    const batch = new RowBatch()
    const row = { asset: "BTC", quotes: [], pairs: [{ market: "spot" as const, a: "alpha:BTC-USD", b: "beta:BTCUSDT", spread_bps: -2 }], excluded: [], metadata: null }
    batch.exchange_spreads.push({ ...row, id: `BTC_${t0}`, timestamp: t0, changed: true }, { ...row, id: `BTC_${t0 + 1_000}`, timestamp: t0 + 1_000, changed: false })
    const events = eventsOf(batch)
    assert.deepStrictEqual(events.map((e) => [e.kind, e.rowId, e.symbol]), [["spread", `BTC_${t0}`, "BTC"]])
    assert.deepStrictEqual(JSON.parse(events[0]!.data).pairs, row.pairs)
  })
})
