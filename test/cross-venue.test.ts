/**
 * The live cross-venue check (issue 20.5): medians computed by hand, a venue
 * whose open interest starts arriving doubled (the Bybit both-sides error:
 * contracts and USD doubled together) flagged within one sampling period on
 * the TestClock, funding compared on the 8 h basis, nothing judged with fewer
 * than 3 venues or on stale figures, and the `cross_venue_outlier` rule.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Logger, Metric, References } from "effect"
import { TestClock } from "effect/testing"
import { CrossCheck, type CrossCheckSettings, CrossVenueState, median, type Outlier } from "../src/alerts/cross-venue.ts"
import { type InstrumentFacts, type LiveView, RuleSet } from "../src/alerts/evaluate.ts"
import { AlertRulesError, decodeRules, type Rule } from "../src/alerts/rules.ts"
import { RowBatch } from "../src/domain/rows.ts"

const t0 = Date.parse("2026-03-02T12:00:00Z")

// Four made-up venues, each with a BTC perpetual; venue-a also lists BTC spot (the same venue twice).
const instruments: Record<string, InstrumentFacts> = {
  "venue-a:BTC-PERP": { base: "BTC", quote: "USDT", kind: "perpetual" },
  "venue-a:BTC-SPOT": { base: "BTC", quote: "USDT", kind: "spot" },
  "venue-b:BTC-PERP": { base: "BTC", quote: "USDT", kind: "perpetual" },
  "venue-c:BTC-PERP": { base: "BTC", quote: "USD", kind: "perpetual" },
  "venue-d:BTC-PERP": { base: "BTC", quote: "USDC", kind: "perpetual" },
  "venue-d:BTC-DEC": { base: "BTC", quote: "USD", kind: "future" }
}
const lookup = (exchange: string, symbol: string) => instruments[`${exchange}:${symbol}`]

const settings = (overrides: Partial<CrossCheckSettings["maxDeviation"]> = {}, maxAgeMs = 60_000): CrossCheckSettings => ({
  maxAgeMs,
  maxDeviation: { mid: 1, open_interest: 25, funding: 0.001, ...overrides }
})

const book = (b: RowBatch, exchange: string, symbol: string, mid: number, at: number) =>
  b.exchange_orderbooks.push({
    id: `${exchange}_${symbol}_${at}`, exchange, symbol, bids: [[mid - 0.5, 1], [mid - 1, 2]], asks: [[mid + 0.5, 1], [mid + 1, 2]],
    timestamp: at, sequence: null, metadata: null
  })
const openInterest = (b: RowBatch, exchange: string, contracts: number, usd: number, at: number) =>
  b.open_interest.push({
    id: `${exchange}_BTC-PERP_${at}`, exchange, symbol: "BTC-PERP", openInterest: contracts, openInterestBase: null, openInterestUsd: usd, timestamp: at,
    metadata: { contract_size: 1 }
  })
const funding = (b: RowBatch, exchange: string, rate: number, intervalHours: number, at: number, nextFundingTime: number | null = null) =>
  b.funding_rates.push({
    id: `${exchange}_BTC-PERP_${at}`, exchange, symbol: "BTC-PERP", rate, predictedRate: null, timestamp: at, nextFundingTime,
    metadata: { interval_hours: intervalHours }
  })
const batchOf = (fill: (b: RowBatch) => void) => {
  const b = new RowBatch()
  fill(b)
  return b
}
const flagged = (outliers: ReadonlyArray<Outlier>) => outliers.map((o) => `${o.exchange}:${o.symbol}:${o.field}`).sort()

describe("the cross-venue median", () => {
  it("median: the middle value, or the mean of the two middle ones", () => {
    assert.strictEqual(median([130, 100, 99, 101]), 100.5)
    assert.strictEqual(median([3, 1, 2]), 2)
  })

  it("mid: four venues at 100, 101, 99 and 130 make a median of 100.5; 130 is 29.35 % away", () => {
    const state = new CrossVenueState(settings({ mid: 2 }))
    state.observe(batchOf((b) => {
      book(b, "venue-a", "BTC-PERP", 100, t0)
      book(b, "venue-b", "BTC-PERP", 101, t0)
      book(b, "venue-c", "BTC-PERP", 99, t0)
      book(b, "venue-d", "BTC-PERP", 130, t0)
    }), lookup)
    const found = state.sample(t0 + 1000)
    assert.deepStrictEqual(flagged(found), ["venue-d:BTC-PERP:mid"])
    assert.strictEqual(found[0]!.median, 100.5)
    assert.strictEqual(found[0]!.value, 130)
    // (130 - 100.5) / 100.5 = 29.353 %
    assert.closeTo(found[0]!.distance, 29.353, 0.001)
    assert.strictEqual(found[0]!.venues, 4)
    // At 1 %, 99 is (100.5 - 99) / 100.5 = 1.4925 % away: flagged too; 101 (0.4975 %) is not.
    const strict = new CrossVenueState(settings({ mid: 1 }))
    strict.observe(batchOf((b) => {
      book(b, "venue-a", "BTC-PERP", 100, t0)
      book(b, "venue-b", "BTC-PERP", 101, t0)
      book(b, "venue-c", "BTC-PERP", 99, t0)
      book(b, "venue-d", "BTC-PERP", 130, t0)
    }), lookup)
    assert.deepStrictEqual(flagged(strict.sample(t0 + 1000)), ["venue-c:BTC-PERP:mid", "venue-d:BTC-PERP:mid"])
  })

  it("mid: a venue speaks through the median of its instruments; a dated future's price is not a mid to compare", () => {
    const state = new CrossVenueState(settings({ mid: 2 }))
    state.observe(batchOf((b) => {
      // venue-a: spot 100 and perpetual 102 -> 101 for the venue; the others 100 and 100.
      book(b, "venue-a", "BTC-SPOT", 100, t0)
      book(b, "venue-a", "BTC-PERP", 102, t0)
      book(b, "venue-b", "BTC-PERP", 100, t0)
      book(b, "venue-c", "BTC-PERP", 100, t0)
      // A future 5 % over spot (its basis): not compared.
      book(b, "venue-d", "BTC-DEC", 105, t0)
    }), lookup)
    // Venues 101, 100, 100 -> median 100: nothing is 2 % away, and the future is not judged.
    assert.deepStrictEqual(state.sample(t0 + 1000), [])
  })

  it("mid: a venue listing two instruments does not outvote the rest", () => {
    const state = new CrossVenueState(settings({ mid: 3 }))
    state.observe(batchOf((b) => {
      book(b, "venue-a", "BTC-SPOT", 104, t0)
      book(b, "venue-a", "BTC-PERP", 104, t0)
      book(b, "venue-b", "BTC-PERP", 100, t0)
      book(b, "venue-c", "BTC-PERP", 100, t0)
    }), lookup)
    // Venues 104, 100, 100 -> median 100: both of venue-a's instruments are 4 % away. (Counted per instrument,
    // 104, 104, 100, 100 would make 102, and nothing would be 3 % away.)
    const found = state.sample(t0 + 1000)
    assert.deepStrictEqual(flagged(found), ["venue-a:BTC-PERP:mid", "venue-a:BTC-SPOT:mid"])
    assert.strictEqual(found[0]!.median, 100)
    assert.strictEqual(found[0]!.venues, 3)
  })

  it("funding on the 8 h basis: an hourly venue's 0.0001 is 0.0008 per 8 h, against a median of 0.00015", () => {
    const state = new CrossVenueState(settings({ funding: 0.0005 }))
    state.observe(batchOf((b) => {
      funding(b, "venue-a", 0.0001, 8, t0) // 0.0001 per 8 h
      funding(b, "venue-b", 0.0002, 8, t0) // 0.0002
      funding(b, "venue-c", 0.0001, 1, t0) // 0.0001 x 8 / 1 = 0.0008
      funding(b, "venue-d", 0.00005, 4, t0) // 0.00005 x 8 / 4 = 0.0001
    }), lookup)
    const found = state.sample(t0 + 1000)
    // Per 8 h: 0.0001, 0.0001, 0.0002, 0.0008 -> median (0.0001 + 0.0002) / 2 = 0.00015; venue-c is 0.00065 away.
    assert.deepStrictEqual(flagged(found), ["venue-c:BTC-PERP:funding"])
    assert.closeTo(found[0]!.value, 0.0008, 1e-12)
    assert.closeTo(found[0]!.median, 0.00015, 1e-12)
    assert.closeTo(found[0]!.distance, 0.00065, 1e-12)
  })

  it("fewer than 3 venues: nothing is judged, however far apart (two instruments of one venue are one venue)", () => {
    const state = new CrossVenueState(settings())
    state.observe(batchOf((b) => {
      book(b, "venue-a", "BTC-SPOT", 100, t0)
      book(b, "venue-a", "BTC-PERP", 100, t0)
      book(b, "venue-b", "BTC-PERP", 130, t0)
      funding(b, "venue-a", 0.0001, 8, t0)
      funding(b, "venue-b", 0.01, 8, t0)
    }), lookup)
    assert.deepStrictEqual(state.sample(t0 + 1000), [])
    // A third venue makes a median: venue-b's 130 against the venues' 100, 130, 100 -> 100.
    state.observe(batchOf((b) => book(b, "venue-c", "BTC-PERP", 100, t0 + 500)), lookup)
    assert.deepStrictEqual(flagged(state.sample(t0 + 1000)), ["venue-b:BTC-PERP:mid"])
  })

  it("stale figures are ignored: older than the age limit, a mid does not count, and the rest are fewer than 3", () => {
    const state = new CrossVenueState(settings({}, 60_000))
    state.observe(batchOf((b) => {
      book(b, "venue-a", "BTC-PERP", 100, t0 + 61_000)
      book(b, "venue-b", "BTC-PERP", 100, t0 + 61_000)
      book(b, "venue-c", "BTC-PERP", 100, t0 + 61_000)
      book(b, "venue-d", "BTC-PERP", 130, t0) // 61 s old at the sample
      funding(b, "venue-a", 0.0001, 8, t0 + 61_000)
      funding(b, "venue-b", 0.0001, 8, t0 + 61_000)
      funding(b, "venue-c", 0.01, 8, t0) // 61 s old, its interval over (no next funding time)
    }), lookup)
    assert.deepStrictEqual(state.sample(t0 + 61_000), [])
    // Exactly 60 s old (at the limit), the 130 counts.
    const younger = new CrossVenueState(settings({}, 60_000))
    younger.observe(batchOf((b) => {
      book(b, "venue-a", "BTC-PERP", 100, t0 + 61_000)
      book(b, "venue-b", "BTC-PERP", 100, t0 + 61_000)
      book(b, "venue-c", "BTC-PERP", 100, t0 + 61_000)
      book(b, "venue-d", "BTC-PERP", 130, t0 + 1000)
    }), lookup)
    assert.deepStrictEqual(flagged(younger.sample(t0 + 61_000)), ["venue-d:BTC-PERP:mid"])
  })

  it("funding: a reading older than the age limit still counts while its funding interval runs", () => {
    const state = new CrossVenueState(settings())
    state.observe(batchOf((b) => {
      funding(b, "venue-a", 0.0001, 8, t0, t0 + 8 * 3_600_000)
      funding(b, "venue-b", 0.0001, 8, t0, t0 + 8 * 3_600_000)
      funding(b, "venue-c", 0.0001, 8, t0, t0 + 8 * 3_600_000)
      funding(b, "venue-d", 0.003, 8, t0, t0 + 8 * 3_600_000)
    }), lookup)
    assert.deepStrictEqual(flagged(state.sample(t0 + 3_600_000)), ["venue-d:BTC-PERP:funding"])
    // After the interval, and beyond the age limit: no longer current.
    assert.deepStrictEqual(state.sample(t0 + 8 * 3_600_000), [])
  })

  it("open interest: honest venues of ten times each other's size are not flagged", () => {
    const state = new CrossVenueState(settings())
    const sizes = { "venue-a": 10_000_000_000, "venue-b": 1_000_000_000, "venue-c": 500_000_000, "venue-d": 100_000_000 }
    state.observe(batchOf((b) => {
      for (const [venue, usd] of Object.entries(sizes)) openInterest(b, venue, usd / 60_000, usd, t0)
    }), lookup)
    state.observe(batchOf((b) => {
      for (const [venue, usd] of Object.entries(sizes)) openInterest(b, venue, usd * 1.01 / 60_000, usd * 1.01, t0 + 5000)
    }), lookup)
    assert.deepStrictEqual(state.sample(t0 + 6000), [])
  })

  it("open interest: the reading before the newest must be within the age limit of it", () => {
    const state = new CrossVenueState(settings())
    state.observe(batchOf((b) => {
      for (const venue of ["venue-a", "venue-b", "venue-c"]) openInterest(b, venue, 1000, 60_000_000, t0 + 60_000)
      openInterest(b, "venue-d", 1000, 60_000_000, t0)
    }), lookup)
    state.observe(batchOf((b) => {
      for (const venue of ["venue-a", "venue-b", "venue-c"]) openInterest(b, venue, 1000, 60_000_000, t0 + 70_000)
      // 61 s after its previous reading: a doubling over that long is not a step of the same moment.
      openInterest(b, "venue-d", 2000, 120_000_000, t0 + 61_000)
    }), lookup)
    assert.deepStrictEqual(state.sample(t0 + 71_000), [])
  })
})

const counted = (venue: string, field: string) =>
  Effect.map(Metric.snapshot, (snapshots) => {
    const found = snapshots.find((m) => m.id === "cross_venue_outlier_total" && m.attributes?.venue === venue && m.attributes?.field === field)
    return found === undefined ? 0 : Number((found.state as { count: number }).count)
  })

describe("the sampler (CrossCheck)", () => {
  it.effect("a venue whose open interest starts arriving doubled (contracts and USD, as Bybit's both sides did) is flagged within one sampling period", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const env = { CROSS_CHECK_SECONDS: "10", CROSS_CHECK_MAX_DEVIATION_PCT_OPEN_INTEREST: "25" }
      const context = yield* Layer.build(CrossCheck.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))))
      const check = Context.get(context, CrossCheck)
      // Honest sizes differ tenfold; venue-c is the one that will double. Price 60,000 and contract size 1.
      const contracts = { "venue-a": 100_000, "venue-b": 20_000, "venue-c": 10_000, "venue-d": 5_000 }
      check.offer(batchOf((b) => {
        for (const [venue, n] of Object.entries(contracts)) openInterest(b, venue, n, n * 60_000, t0 + 1000)
      }), lookup)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(check.findings().sampledAt, t0 + 10_000)
      assert.deepStrictEqual(check.findings().outliers, [])
      // At t0 + 12 s: a, b, d move +1 %, +0.5 %, 0; venue-c reports both sides as one: contracts and USD doubled,
      // so its USD per contract (60,000) is still right.
      check.offer(batchOf((b) => {
        openInterest(b, "venue-a", 101_000, 101_000 * 60_000, t0 + 12_000)
        openInterest(b, "venue-b", 20_100, 20_100 * 60_000, t0 + 12_000)
        openInterest(b, "venue-c", 20_000, 20_000 * 60_000, t0 + 12_000)
        openInterest(b, "venue-d", 5_000, 5_000 * 60_000, t0 + 12_000)
      }), lookup)
      assert.strictEqual(yield* counted("venue-c", "open_interest"), 0)
      // The next sample, 8 s after the reading.
      yield* TestClock.adjust("10 seconds")
      const { sampledAt, outliers } = check.findings()
      assert.strictEqual(sampledAt, t0 + 20_000)
      assert.deepStrictEqual(flagged(outliers), ["venue-c:BTC-PERP:open_interest"])
      // Changes x1.01, x1.005, x2, x1 -> median (1.005 + 1.01) / 2 = 1.0075; x2 is (2 - 1.0075) / 1.0075 = 98.51 % away.
      assert.strictEqual(outliers[0]!.value, 2)
      assert.closeTo(outliers[0]!.median, 1.0075, 1e-12)
      assert.closeTo(outliers[0]!.distance, 98.511, 0.001)
      assert.strictEqual(yield* counted("venue-c", "open_interest"), 1)
      assert.strictEqual(yield* counted("venue-a", "open_interest"), 0)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map())))

  it.effect("each sample counts; the log line, with the venue's figure and the median, comes at most once a minute per venue and field", () => {
    const lines: Array<{ message: string; annotations: Record<string, unknown> }> = []
    const logger = Logger.make((options) => {
      const parts = Array.isArray(options.message) ? options.message : [options.message]
      const message = parts.map(String).join(" ")
      if (message.startsWith("cross-venue outlier")) lines.push({ message, annotations: options.fiber.getRef(References.CurrentLogAnnotations) })
    })
    return Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const context = yield* Layer.build(CrossCheck.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: {} })))))
      const check = Context.get(context, CrossCheck)
      // Seven samples, t0 + 10 s to t0 + 70 s, each after fresh books: venue-d's 130 against the venues' median 100.
      for (let i = 1; i <= 7; i++) {
        check.offer(batchOf((b) => {
          book(b, "venue-a", "BTC-PERP", 100, t0 + i * 10_000 - 1000)
          book(b, "venue-b", "BTC-PERP", 100, t0 + i * 10_000 - 1000)
          book(b, "venue-c", "BTC-PERP", 100, t0 + i * 10_000 - 1000)
          book(b, "venue-d", "BTC-PERP", 130, t0 + i * 10_000 - 1000)
        }), lookup)
        yield* TestClock.adjust("10 seconds")
      }
      assert.strictEqual(yield* counted("venue-d", "mid"), 7)
      // Logged at t0 + 10 s and again at t0 + 70 s, a minute later; not in between.
      assert.strictEqual(lines.length, 2)
      assert.include(lines[0]!.message, "venue-d BTC-PERP")
      assert.include(lines[0]!.message, "mid 130 against the median 100")
      assert.deepInclude(lines[0]!.annotations, { venue: "venue-d", field: "mid", value: 130, median: 100 })
    }).pipe(Effect.scoped, Effect.provide(Logger.layer([logger])), Effect.provideService(Metric.MetricRegistry, new Map()))
  })
})

describe("the cross_venue_outlier rule", () => {
  const rules = (list: ReadonlyArray<unknown>) => decodeRules({ rules: list }, {}).rules as ReadonlyArray<Rule>
  const outlier = (field: Outlier["field"], exchange: string, sampledAt: number): Outlier => ({
    field, asset: "BTC", exchange, symbol: "BTC-PERP", value: 2, median: 1.0075, distance: 98.51, maxDistance: 25, venues: 4,
    figureTime: sampledAt - 8000, sampledAt
  })
  const view = (now: number, outliers: ReadonlyArray<Outlier>): LiveView => ({ now, feeds: [], gaps: [], crossCheck: { sampledAt: now, outliers } })

  it("fires for the fields and instruments its filters pass, once per sample", () => {
    const set = new RuleSet(rules([{ name: "units", kind: "cross_venue_outlier", fields: ["open_interest"], assets: ["BTC"], exchanges: ["venue-c", "venue-d"] }]))
    const sample = [outlier("open_interest", "venue-c", t0), outlier("mid", "venue-c", t0), outlier("open_interest", "venue-a", t0)]
    const fired = set.onTick(view(t0, sample), lookup)
    assert.deepStrictEqual(fired.map((f) => f.key), ["venue-c:BTC-PERP:open_interest"])
    assert.strictEqual(fired[0]!.kind, "cross_venue_outlier")
    assert.strictEqual(fired[0]!.id, `units_venue-c_BTC-PERP_open_interest_${t0}`)
    assert.include(fired[0]!.message, "x2.0000")
    assert.include(fired[0]!.message, "x1.0075")
    assert.deepInclude(fired[0]!.details, { median: 1.0075, value: 2, venues: 4 })
    // The engine looks every second; the same sample does not fire twice. The next sample does (the cooldown judges it).
    assert.deepStrictEqual(set.onTick({ ...view(t0, sample), now: t0 + 1000 }, lookup), [])
    assert.strictEqual(set.onTick(view(t0 + 10_000, [outlier("open_interest", "venue-c", t0 + 10_000)]), lookup).length, 1)
    // An asset it does not watch: nothing.
    const eth = new RuleSet(rules([{ name: "eth", kind: "cross_venue_outlier", assets: ["ETH"] }]))
    assert.deepStrictEqual(eth.onTick(view(t0, sample), lookup), [])
  })

  it("every field without a field list; an unknown field is refused by name", () => {
    const set = new RuleSet(rules([{ name: "all", kind: "cross_venue_outlier" }]))
    assert.strictEqual(set.onTick(view(t0, [outlier("mid", "venue-a", t0), outlier("funding", "venue-b", t0)]), lookup).length, 2)
    try {
      decodeRules({ rules: [{ name: "bad", kind: "cross_venue_outlier", fields: ["volume"] }] }, {})
      assert.fail("expected the rule to be refused")
    } catch (error) {
      assert.instanceOf(error, AlertRulesError)
      assert.match((error as AlertRulesError).message, /rule "bad" \(rules\[0\]\): fields\[0\]/)
    }
  })
})
