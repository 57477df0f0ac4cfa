/**
 * Cross-venue arbitrage (issue 20.7) on real books: an opportunity that opens
 * after both taker fees (hand-computed edge, size and USD value), one whose
 * gross edge the fees eat, its peak and its close; a resyncing book never
 * opening one, and an open one closed by a book going stale or resyncing.
 * Then the whole service against PostgreSQL: the sampler's rows through the
 * real writer, /exchange/spreads and /exchange/arbitrage, a clean shutdown
 * closing the open one, and a restart closing one a crash left open.
 */
import { writeFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { closeLeftOpen } from "../src/analytics/sampler.ts"
import { arbitrage as arbitrageQuery } from "../src/storage/queries.ts"
import { edgeAfterFees, ArbitrageTracker, parseTakerFees, type TakerFees } from "../src/analytics/arbitrage.ts"
import { sampleAsset } from "../src/analytics/spreads.ts"
import { LiveBookRegistry, LiveBooks } from "../src/book/live.ts"
import { RowBatch } from "../src/domain/rows.ts"
import { eventsOf } from "../src/stream/hub.ts"
import { pinnedClock } from "./support/clock.ts"
import { fakeVenue } from "./support/books.ts"
import { eventually, freePort, getData, postgresUrl, startService, truncateAll } from "./support/service.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { SqlClient } from "effect/sql"
import type { ArbitrageRow } from "../src/domain/rows.ts"

const t0 = Date.parse("2026-03-02T12:00:00Z")
const fees = parseTakerFees("alpha:10,beta:5", 10) as TakerFees
/** An opportunity as stored at its open, for the restart test. */
const leftOpen: ArbitrageRow = {
  id: "", asset: "BTC", market: "spot", buyExchange: "alpha", buySymbol: "BTC-USDT", sellExchange: "beta", sellSymbol: "BTCUSDT",
  openedAt: 0, closedAt: null, closeReason: null, lastSeenAt: 0, openEdgeBps: 4.985, peakEdgeBps: 4.985, peakAt: 0,
  buyPrice: 100_000, sellPrice: 100_200, sizeBase: 0.25, sizeUsd: 25_000, buyFeeBps: 10, sellFeeBps: 5, metadata: null
}

const twoVenues = (registry: LiveBookRegistry) => ({
  alpha: fakeVenue(registry, "alpha", { "BTC-USDT": { base: "BTC", quote: "USDT", kind: "spot" } }),
  beta: fakeVenue(registry, "beta", { BTCUSDT: { base: "BTC", quote: "USDT", kind: "spot" } })
})
const sample = (registry: LiveBookRegistry, at: number) =>
  sampleAsset("BTC", registry.books(), (v, s) => registry.instrument(v, s), at, { maxBookAgeMs: 5_000 })

describe("the taker fees", () => {
  it("defaults from the venues' base tiers, replaced venue by venue; nonsense refused", () => {
    const parsed = parseTakerFees("coinbase:60, kraken:26", 10) as TakerFees
    assert.strictEqual(parsed.byVenue.get("coinbase"), 60)
    assert.strictEqual(parsed.byVenue.get("kraken"), 26)
    assert.strictEqual(parsed.byVenue.get("binance"), 10)
    assert.strictEqual(parsed.byVenue.get("binance-futures"), 5)
    assert.strictEqual(parsed.byVenue.get("bybit-derivatives"), 5.5)
    assert.isString(parseTakerFees("coinbase", 10))
    assert.isString(parseTakerFees("coinbase:-1", 10))
  })

  it("edge after fees: (bid x (1 - f_sell) - ask x (1 + f_buy)) / (ask x (1 + f_buy)) x 1e4", () => {
    // Ask 100 000 at 10 bps costs 100 100; bid 100 200 at 5 bps brings 100 149.9: 49.9 / 100 100 x 1e4 = 4.98501 bps.
    assert.closeTo(edgeAfterFees(100_000, 100_200, 10, 5), 4.985015, 1e-6)
  })
})

describe("an opportunity's life", () => {
  it("fees eat a 12 bps gross edge; then one opens, peaks, stays open without a new row, and closes when the edge is gone", () => {
    const registry = new LiveBookRegistry()
    const { alpha, beta } = twoVenues(registry)
    // alpha is received once, at t0: the legs' timing limits are wide here (they have their own test below).
    const tracker = new ArbitrageTracker(fees, { maxBookAgeMs: 5_000, maxLegSkewMs: 5_000 })
    alpha.book("BTC-USDT", [[99_990, 1]], [[100_000, 0.4]], t0)
    // Bid 100 120 > ask 100 000 (12 bps gross), but 100 120 x 0.9995 = 100 069.94 < 100 100: -3.003 bps after fees.
    beta.book("BTCUSDT", [[100_120, 0.25]], [[100_130, 1]], t0)
    assert.deepStrictEqual(tracker.observe(sample(registry, t0)), [])

    // Bid 100 200: 4.98501 bps after fees (above). Size min(0.4 ask, 0.25 bid) = 0.25 BTC, x 100 000 = 25 000 USD.
    beta.book("BTCUSDT", [[100_200, 0.25]], [[100_210, 1]], t0 + 1_000)
    const [opened, ...others] = tracker.observe(sample(registry, t0 + 1_000))
    assert.deepStrictEqual(others, [], "only alpha -> beta: the other way is (100 000 x 0.999 - 100 210 x 1.0005) / ... < 0")
    assert.deepInclude(opened!, {
      id: `BTC_alpha_BTC-USDT_beta_BTCUSDT_${t0 + 1_000}`, market: "spot", buyExchange: "alpha", sellExchange: "beta",
      openedAt: t0 + 1_000, closedAt: null, openEdgeBps: 4.985, peakEdgeBps: 4.985, buyPrice: 100_000, sellPrice: 100_200,
      sizeBase: 0.25, sizeUsd: 25_000, buyFeeBps: 10, sellFeeBps: 5
    })

    // Bid 100 300 (0.6 BTC): 100 300 x 0.9995 = 100 249.85; 149.85 / 100 100 x 1e4 = 14.97003 bps. Size min(0.4, 0.6) = 0.4: 40 000 USD.
    beta.book("BTCUSDT", [[100_300, 0.6]], [[100_310, 1]], t0 + 2_000)
    const [peak] = tracker.observe(sample(registry, t0 + 2_000))
    assert.deepInclude(peak!, { id: opened!.id, peakEdgeBps: 14.97, peakAt: t0 + 2_000, sizeBase: 0.4, sizeUsd: 40_000, openEdgeBps: 4.985, closedAt: null })

    // Bid 100 250: 9.97752 bps, still open, below the peak: nothing new to store.
    beta.book("BTCUSDT", [[100_250, 0.6]], [[100_260, 1]], t0 + 3_000)
    assert.deepStrictEqual(tracker.observe(sample(registry, t0 + 3_000)), [])
    assert.strictEqual(tracker.openRows().length, 1)

    // Bid 100 100: 100 049.95 - 100 100 = -50.05; / 100 100 x 1e4 = -5 bps: closed.
    beta.book("BTCUSDT", [[100_100, 0.6]], [[100_110, 1]], t0 + 4_000)
    const [closed] = tracker.observe(sample(registry, t0 + 4_000))
    assert.deepInclude(closed!, {
      id: opened!.id, openedAt: t0 + 1_000, closedAt: t0 + 4_000, peakEdgeBps: 14.97, peakAt: t0 + 2_000, sizeBase: 0.4, sizeUsd: 40_000,
      closeReason: "edge gone: -5 bps after fees (bid 100100 on beta BTCUSDT, ask 100000 on alpha BTC-USDT)"
    })
    assert.deepStrictEqual(tracker.openRows(), [])
  })

  it("only books quoted in the same currency are paired: a USD book against a USDT book 15 bps apart after fees makes none, two USDT books the same apart make one", () => {
    const registry = new LiveBookRegistry()
    const usd = fakeVenue(registry, "alpha", { "BTC-USD": { base: "BTC", quote: "USD", kind: "spot" } })
    const usdt = fakeVenue(registry, "beta", { BTCUSDT: { base: "BTC", quote: "USDT", kind: "spot" } })
    const tracker = new ArbitrageTracker(fees)
    // Buy alpha at 100 000 (10 bps): 100 100. Sell beta at 100 300.2 (5 bps): 100 300.2 x 0.9995 = 100 250.0499.
    // (100 250.0499 - 100 100) / 100 100 x 1e4 = 14.99 bps: a USDT premium, not executable without a USDT -> USD leg.
    usd.book("BTC-USD", [[99_990, 1]], [[100_000, 1]], t0)
    usdt.book("BTCUSDT", [[100_300.2, 1]], [[100_310, 1]], t0)
    const mixed = sample(registry, t0)
    assert.deepStrictEqual(mixed.quotes.map((q) => q.quote_basis), ["USD", "USDT at par"], "the spread sample still compares them at par, marked")
    assert.deepStrictEqual(tracker.observe(mixed), [])

    // The same books, both in USDT: one opportunity, 14.99 bps.
    const registry2 = new LiveBookRegistry()
    const usdt1 = fakeVenue(registry2, "alpha", { "BTC-USDT": { base: "BTC", quote: "USDT", kind: "spot" } })
    const usdt2 = fakeVenue(registry2, "beta", { BTCUSDT: { base: "BTC", quote: "USDT", kind: "spot" } })
    usdt1.book("BTC-USDT", [[99_990, 1]], [[100_000, 1]], t0)
    usdt2.book("BTCUSDT", [[100_300.2, 1]], [[100_310, 1]], t0)
    const same = tracker.observe(sample(registry2, t0))
    assert.deepStrictEqual(same.map((o) => [o.buyExchange, o.sellExchange, o.openEdgeBps]), [["alpha", "beta", 14.99]])
  })

  it("both tops current (1000 ms) and received within 500 ms of each other, or none opens; an open one closes when a leg stalls", () => {
    const registry = new LiveBookRegistry()
    const { alpha, beta } = twoVenues(registry)
    const tracker = new ArbitrageTracker(fees, { maxBookAgeMs: 1_000, maxLegSkewMs: 500 })
    // Bid 100 300 against ask 100 000: 14.97003 bps after fees (above), wide enough if the tops were of one moment.
    // beta received at t0, alpha at t0 + 600: at t0 + 700 they are 100 and 700 ms old, received 600 ms apart.
    beta.book("BTCUSDT", [[100_300, 1]], [[100_310, 1]], t0)
    alpha.book("BTC-USDT", [[99_990, 1]], [[100_000, 1]], t0 + 600)
    const skewed = sample(registry, t0 + 700)
    assert.strictEqual(skewed.quotes.length, 2, "both are usable for the spread sample (5 s limit)")
    assert.deepStrictEqual(tracker.observe(skewed), [])

    // beta re-received at t0 + 1 100 (alpha still at t0 + 600): 500 ms apart, 500 and 0 ms old at t0 + 1 100: opens.
    beta.book("BTCUSDT", [[100_300, 1]], [[100_310, 1]], t0 + 1_100)
    const [opened] = tracker.observe(sample(registry, t0 + 1_100))
    assert.deepInclude(opened!, { openedAt: t0 + 1_100, peakEdgeBps: 14.97, closedAt: null })

    // alpha's socket stalls: at t0 + 1 700 its top is 1 100 ms old (beta re-received at t0 + 1 650, 50 ms old): closed, saying so.
    beta.book("BTCUSDT", [[100_300, 1]], [[100_310, 1]], t0 + 1_650)
    const [closed] = tracker.observe(sample(registry, t0 + 1_700))
    assert.deepInclude(closed!, {
      id: opened!.id, closedAt: t0 + 1_700,
      closeReason: "alpha BTC-USDT top received 1100 ms before the sample (arbitrage limit 1000 ms)"
    })

    // Still stalled at t0 + 2 000 (1 400 ms; beta fresh): a stalled top never opens one.
    beta.book("BTCUSDT", [[100_300, 1]], [[100_310, 1]], t0 + 2_000)
    assert.deepStrictEqual(tracker.observe(sample(registry, t0 + 2_000)), [])
    // The skew alone closes one too: both re-received at t0 + 3 000, opens; beta again at t0 + 3 900, alpha not:
    // at t0 + 3 900 alpha is 900 ms old (within 1 000), beta 0 ms: 900 ms apart, over 500.
    alpha.book("BTC-USDT", [[99_990, 1]], [[100_000, 1]], t0 + 3_000)
    beta.book("BTCUSDT", [[100_300, 1]], [[100_310, 1]], t0 + 3_000)
    assert.strictEqual(tracker.observe(sample(registry, t0 + 3_000)).length, 1)
    beta.book("BTCUSDT", [[100_300, 1]], [[100_310, 1]], t0 + 3_900)
    const [skewClosed] = tracker.observe(sample(registry, t0 + 3_900))
    assert.strictEqual(skewClosed!.closeReason,
      "legs received 900 ms apart (alpha BTC-USDT 900 ms, beta BTCUSDT 0 ms old; limit 500 ms)")
  })

  it("a resyncing book never makes one, however wide its last top", () => {
    const registry = new LiveBookRegistry()
    const { alpha, beta } = twoVenues(registry)
    const tracker = new ArbitrageTracker(fees)
    alpha.book("BTC-USDT", [[99_990, 1]], [[100_000, 1]], t0)
    beta.book("BTCUSDT", [[101_000, 1]], [[101_010, 1]], t0)
    beta.gap("BTCUSDT", t0)
    const s = sample(registry, t0)
    assert.deepStrictEqual(s.excluded, [{ exchange: "beta", symbol: "BTCUSDT", reason: "book resyncing, not live" }])
    assert.deepStrictEqual(tracker.observe(s), [])
  })

  it("an open one closes when a book goes stale or resyncs, saying which and why", () => {
    const registry = new LiveBookRegistry()
    const { alpha, beta } = twoVenues(registry)
    const tracker = new ArbitrageTracker(fees)
    alpha.book("BTC-USDT", [[99_990, 1]], [[100_000, 1]], t0)
    beta.book("BTCUSDT", [[100_300, 1]], [[100_310, 1]], t0)
    assert.strictEqual(tracker.observe(sample(registry, t0)).length, 1)
    // alpha keeps updating; beta's last update is 6 s old at t0 + 6 s.
    alpha.book("BTC-USDT", [[99_990, 1]], [[100_000, 1]], t0 + 5_000)
    const [stale] = tracker.observe(sample(registry, t0 + 6_000))
    assert.strictEqual(stale!.closedAt, t0 + 6_000)
    assert.strictEqual(stale!.closeReason, "beta BTCUSDT not usable: stale: last update received 6000 ms before the sample (limit 5000 ms)")

    beta.book("BTCUSDT", [[100_300, 1]], [[100_310, 1]], t0 + 7_000)
    alpha.book("BTC-USDT", [[99_990, 1]], [[100_000, 1]], t0 + 7_000)
    const [again] = tracker.observe(sample(registry, t0 + 7_000))
    assert.strictEqual(again!.id, `BTC_alpha_BTC-USDT_beta_BTCUSDT_${t0 + 7_000}`, "a new opportunity: a new id")
    beta.gap("BTCUSDT", t0 + 8_000)
    const [resynced] = tracker.observe(sample(registry, t0 + 8_000))
    assert.strictEqual(resynced!.closeReason, "beta BTCUSDT not usable: book resyncing, not live")
  })
})

describe("arbitrage events on the stream", () => {
  it("each stored change is an event of its own, `<id>@<last seen ms>`, with its status and USD size", () => {
    const registry = new LiveBookRegistry()
    const { alpha, beta } = twoVenues(registry)
    const tracker = new ArbitrageTracker(fees)
    alpha.book("BTC-USDT", [[99_990, 1]], [[100_000, 0.4]], t0)
    beta.book("BTCUSDT", [[100_200, 0.25]], [[100_210, 1]], t0)
    const batch = new RowBatch()
    batch.arbitrage_opportunities.push(...tracker.observe(sample(registry, t0)))
    beta.book("BTCUSDT", [[100_100, 0.25]], [[100_110, 1]], t0 + 1_000)
    batch.arbitrage_opportunities.push(...tracker.observe(sample(registry, t0 + 1_000)))
    const events = eventsOf(batch)
    const id = `BTC_alpha_BTC-USDT_beta_BTCUSDT_${t0}`
    assert.deepStrictEqual(events.map((e) => [e.kind, e.rowId, e.valueUsd, JSON.parse(e.data).status]), [
      ["arbitrage", `${id}@${t0}`, 25_000, "open"],
      ["arbitrage", `${id}@${t0 + 1_000}`, 25_000, "closed"]
    ])
  })
})

describe("an opportunity nobody saw close", () => {
  it.effect("the start-up close asks the database again every 5 s until it answers (here after 20 refusals, past the old 12), and closes only rows opened before this start", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      let asked = 0
      const stored: Array<ArbitrageRow> = [
        { ...leftOpen, id: "previous-run", openedAt: t0 - 60_000, lastSeenAt: t0 - 50_000 },
        { ...leftOpen, id: "this-run", openedAt: t0 + 1_000, lastSeenAt: t0 + 1_000 }
      ]
      const readOpen = Effect.suspend(() => ++asked <= 20 ? Effect.fail("database away") : Effect.succeed(stored))
      const emitted: Array<ArbitrageRow> = []
      const fiber = yield* Effect.forkChild(closeLeftOpen(readOpen, (batch) => Effect.sync(() => { emitted.push(...batch.arbitrage_opportunities) }), t0))
      // 20 refusals: the first ask at t0, then one every 5 s: the 21st ask, which answers, at t0 + 20 x 5 s = t0 + 100 s.
      yield* TestClock.adjust("95 seconds")
      assert.strictEqual(asked, 20)
      assert.deepStrictEqual(emitted, [])
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      assert.strictEqual(asked, 21)
      assert.deepStrictEqual(emitted.map((r) => [r.id, r.closedAt]), [["previous-run", t0 - 50_000]], "closed at its last stored sample; this run's own row left to its tracker")
    }))

  it.live("the API serves a row stored open but not seen for over 15 s as unconfirmed, never as open", () =>
    Effect.gen(function*() {
      const db = postgresLayer(postgresUrl)
      yield* truncateAll.pipe(Effect.provide(db))
      const fresh = { ...leftOpen, id: "seen-14-s-ago", openedAt: t0 - 60_000, lastSeenAt: t0 - 14_000 }
      const silent = { ...leftOpen, id: "seen-16-s-ago", openedAt: t0 - 60_000, lastSeenAt: t0 - 16_000 }
      yield* insertRows("arbitrage_opportunities", [fresh, silent]).pipe(Effect.provide(db), Effect.scoped)
      // At t0 (the pinned clock runs on from t0: the query reads it a few ms later): 14 s is within the 10 s refresh + 5 s slack, 16 s is not.
      const answer = yield* arbitrageQuery({ hours: 24, limit: 10 }).pipe(Effect.provide(pinnedClock(t0).layer), Effect.provide(db), Effect.scoped)
      assert.deepStrictEqual(answer.open.map((o) => [o.id, o.status]), [["seen-14-s-ago", "open"]])
      assert.deepStrictEqual(answer.unconfirmed.map((o) => [o.id, o.status, o.last_seen_at]), [["seen-16-s-ago", "unconfirmed", new Date(t0 - 16_000).toISOString()]])
      assert.deepInclude(answer.summary, { open: 1, unconfirmed: 1, closed: 0 })
    }))
})

describe("through the writer into PostgreSQL and the API", () => {
  it.live("spreads sampled into exchange_spreads; an arbitrage served open, then closed; one open at shutdown closed by it; one left open by a crash closed on restart", () =>
    Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)))
      const clock = pinnedClock(t0)
      const env = (port: number) => ({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none", SPREAD_ASSETS: "BTC",
        SPREAD_SAMPLE_SECONDS: "0.5", ARBITRAGE_TAKER_FEES_BPS: "alpha:10,beta:5"
      })
      const port = freePort()
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      const answers: Record<string, unknown> = {}
      const openId = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* startService(env(port), clock.layer)
        const registry = Context.get(context, LiveBooks)
        const { alpha, beta } = twoVenues(registry)
        // Kept current: each book re-received every 200 ms until the scope ends.
        const tops = {
          alpha: { bids: [[99_990, 1]] as Array<[number, number]>, asks: [[100_000, 0.4]] as Array<[number, number]> },
          beta: { bids: [[100_200, 0.25]] as Array<[number, number]>, asks: [[100_210, 1]] as Array<[number, number]> }
        }
        yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sync(() => {
          alpha.book("BTC-USDT", tops.alpha.bids, tops.alpha.asks, clock.now())
          beta.book("BTCUSDT", tops.beta.bids, tops.beta.asks, clock.now())
        }), Effect.sleep("200 millis"))))
        const opened = yield* eventually("an open opportunity at the API", Effect.map(getData(`${base}/arbitrage?symbol=BTC`), (d: any) => d.open.length === 1 ? d : undefined))
        answers.arbitrage_open = opened
        const first = opened.open[0]
        assert.strictEqual(first.status, "open")
        // 4.98501 bps after fees; 0.25 BTC at 100 000 = 25 000 USD (hand-computed above).
        assert.deepInclude(first, { buy_exchange: "alpha", sell_exchange: "beta", open_edge_bps: 4.985, size_base: 0.25, size_usd: 25_000, buy_fee_bps: 10, sell_fee_bps: 5 })
        const spreads = yield* getData(`${base}/spreads?symbol=BTC&hours=1&limit=2`)
        answers.spreads = spreads
        assert.strictEqual(spreads.latest[0].asset, "BTC")
        // alpha mid (99 990 + 100 000) / 2 = 99 995; beta (100 200 + 100 210) / 2 = 100 205: (99 995 - 100 205) / 100 100 x 1e4 = -20.97902 bps.
        assert.closeTo(spreads.latest[0].pairs[0].spread_bps, -20.979, 1e-3)
        assert.deepStrictEqual(spreads.latest[0].quotes.map((q: any) => q.quote_basis), ["USDT at par", "USDT at par"])
        assert.isAtMost(spreads.history.length, 2)

        // The edge goes: bid 100 100 is -5 bps after fees.
        tops.beta.bids = [[100_100, 0.25]]
        const closed = yield* eventually("the opportunity closed at the API", Effect.map(getData(`${base}/arbitrage?exchange=beta`), (d: any) => d.closed.length === 1 && d.open.length === 0 ? d : undefined))
        answers.arbitrage_closed = closed
        assert.strictEqual(closed.closed[0].id, first.id)
        assert.match(closed.closed[0].close_reason, /^edge gone: -5 bps after fees/)

        // Open again, and the service stops with it open.
        tops.beta.bids = [[100_300, 0.25]]
        tops.beta.asks = [[100_310, 1]]
        const reopened = yield* eventually("a second opportunity open", Effect.map(getData(`${base}/arbitrage`), (d: any) => d.open.length === 1 ? d : undefined))
        return reopened.open[0].id as string
      }))

      // A clean shutdown closed the open one at its last sample.
      const [shut] = yield* SqlClient.SqlClient.use((sql) => sql<{ closed_at: Date | null; close_reason: string; last_seen_at: Date }>`
        SELECT closed_at, close_reason, last_seen_at FROM arbitrage_opportunities WHERE id = ${openId}`).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      assert.strictEqual(shut!.close_reason, "the service shut down while it was open: not observed after its last sample")
      assert.isNotNull(shut!.closed_at)

      // A process that ended without shutting down leaves one stored open (written as the writer would at open).
      const crashed = { ...leftOpen, id: `BTC_alpha_BTC-USDT_beta_BTCUSDT_${t0 - 60_000}`, openedAt: t0 - 60_000, peakAt: t0 - 60_000, lastSeenAt: t0 - 50_000 }
      yield* insertRows("arbitrage_opportunities", [crashed]).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const port2 = freePort()
      yield* Effect.scoped(Effect.gen(function*() {
        yield* startService(env(port2), clock.layer)
        const after = yield* eventually("the left-open opportunity closed on restart", Effect.map(
          getData(`http://127.0.0.1:${port2}/api/v1/exchange/arbitrage`),
          (d: any) => d.open.length === 0 && d.closed.some((o: any) => o.id === crashed.id) ? d : undefined
        ))
        const restarted = after.closed.find((o: any) => o.id === crashed.id)
        answers.arbitrage_after_restart = restarted
        assert.match(restarted.close_reason, /^the service stopped while it was open/)
        // Closed at its last stored sample, t0 - 50 s.
        assert.strictEqual(restarted.closed_at, new Date(t0 - 50_000).toISOString())
      }))
      if (process.env.ANSWERS_FILE !== undefined) writeFileSync(process.env.ANSWERS_FILE, JSON.stringify(answers, null, 2))
    }), { timeout: 90_000 })
})
