/**
 * Minute bars from every trade: built by the real processor from known trades
 * and liquidations, written once their minute has closed, corrected by late
 * and repaired trades through the real writer into PostgreSQL (merged, never
 * added twice), `complete` as positive evidence (watched whole, no unrepaired
 * gap), and `GET /api/v1/exchange/bars` per instrument and aggregated across
 * venues. Every expected figure is worked out by hand in the comments.
 * Times are pinned: Monday 2026-01-05, around 12:00 UTC.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type Instrument, InstrumentRegistry } from "../src/domain/instruments.ts"
import { LargeTradeDetector } from "../src/domain/large-trades.ts"
import type { Liquidation, NormalizedRecord, Trade } from "../src/domain/records.ts"
import { RowBatch, type TradeBarRow } from "../src/domain/rows.ts"
import { ReferencePrices } from "../src/domain/valuation.ts"
import { GapLedger } from "../src/gaps/ledger.ts"
import { makeGapTracker } from "../src/gaps/tracker.ts"
import type { TradeContinuity } from "../src/gaps/continuity.ts"
import { RecordProcessor } from "../src/pipeline/processor.ts"
import { connectionOpened } from "../src/pipeline/venue-kit.ts"
import type { GapTracker } from "../src/gaps/tracker.ts"
import { FreshnessMonitor } from "../src/feed/freshness.ts"
import type { FeedStatus } from "../src/feed/status.ts"
import { embeddedLayer, postgresLayer } from "../src/storage/database.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { bars, streamReplay, streamStoredUpTo } from "../src/storage/queries.ts"
import { heldKey, heldKeys, isClientsOwn } from "../src/api/stream.ts"
import { Writer, type WriterOptions } from "../src/storage/writer.ts"
import { eventsOf, parseEventId, type StreamEvent } from "../src/stream/hub.ts"
import { pinnedClock } from "./support/clock.ts"
import { eventually, freePort, getData, postgresUrl, startService, truncateAll } from "./support/service.ts"

const noon = Date.UTC(2026, 0, 5, 12, 0, 0)
const at = (minute: number, second: number) => noon + minute * 60_000 + second * 1000
const iso = (ms: number) => new Date(ms).toISOString()

// A linear perpetual quoted in USDT (taken at par): size in coins, USD = price x size.
const btcusdt: Instrument = { venue: "binance-futures", symbol: "BTCUSDT", base: "BTC", quote: "USDT", kind: "perpetual", contractSize: 1, inverse: false }
// An inverse perpetual counted in USD: USD = size, coins = size / price.
const perpetual: Instrument = { venue: "deribit", symbol: "BTC-PERPETUAL", base: "BTC", quote: "USD", kind: "perpetual", contractSize: 1, inverse: true }

const processor = (instrument: Instrument, continuity?: TradeContinuity, runId = "run1") => {
  const instruments = new InstrumentRegistry()
  instruments.add(instrument)
  return new RecordProcessor({
    venue: instrument.venue,
    instruments,
    // The default thresholds (BTC 100,000 USD): none of these trades is large, every one is in its bar.
    detector: new LargeTradeDetector(instruments, new ReferencePrices(), { byAsset: { BTC: 100_000 }, otherAssets: 20_000 }),
    sequenceRule: undefined,
    bookDepth: 10,
    bookIntervalMs: 10_000,
    fundingSampleMs: 60_000,
    fundingIntervalHours: () => ({ hours: 8, source: "test" }),
    requestSnapshot: () => undefined,
    onResync: () => undefined,
    continuity,
    barRunId: runId
  })
}

const trade = (instrument: Instrument, tradeId: string, time: number, price: number, size: number, side: "buy" | "sell", extra: Partial<Trade> = {}): Trade => ({
  kind: "trade", venue: instrument.venue, symbol: instrument.symbol, tradeId, price, size, side, timestamp: time, details: {}, ...extra
})
const liquidation = (instrument: Instrument, id: string, time: number, side: "buy" | "sell", price: number, size: number, extra: Partial<Liquidation> = {}): Liquidation => ({
  kind: "liquidation", venue: instrument.venue, symbol: instrument.symbol, side, price, averagePrice: price, filledSize: size, timestamp: time, id, details: {}, ...extra
})

const run = (p: RecordProcessor, records: ReadonlyArray<NormalizedRecord>, now: number) => {
  const out = new RowBatch()
  p.process(records, now, out)
  return out
}
const ticked = (p: RecordProcessor, now: number) => {
  const out = new RowBatch()
  p.tick(now, out)
  return out
}

/** The fields a bar is judged by (the id and identity fields checked apart). */
const figures = (r: TradeBarRow) => ({
  open: r.open, high: r.high, low: r.low, close: r.close, volumeBase: r.volumeBase, volumeUsd: r.volumeUsd, buyVolumeUsd: r.buyVolumeUsd,
  sellVolumeUsd: r.sellVolumeUsd, tradeCount: r.tradeCount, longLiquidationsUsd: r.longLiquidationsUsd, shortLiquidationsUsd: r.shortLiquidationsUsd,
  liquidationCount: r.liquidationCount, observedWhole: r.observedWhole, partialReason: r.partialReason, correction: r.correction
})

describe("minute bars in the processor", () => {
  it("builds each minute's bar from its trades and liquidations, written once the minute has closed", () => {
    const p = processor(btcusdt)
    // The processor first runs at 12:00:30: minute 12:00 was not watched from its start.
    assert.deepStrictEqual(run(p, [trade(btcusdt, "a", at(0, 20), 100, 1, "buy")], at(0, 30)).trade_bars, [])

    const minute1 = run(p, [
      trade(btcusdt, "t1", at(1, 10), 100, 2, "buy"), //   200 USD
      trade(btcusdt, "t2", at(1, 20), 110, 1, "sell"), //  110 USD
      trade(btcusdt, "t3", at(1, 5), 90, 1, "buy"), //     90 USD, arrives third but is the earliest: the open
      trade(btcusdt, "t4", at(1, 50), 105, 3, "sell"), //  315 USD
      trade(btcusdt, "t5", at(1, 50), 104, 1, "buy"), //   104 USD, the same time as t4 and later to arrive: the close
      liquidation(btcusdt, "L1", at(1, 30), "sell", 100, 0.5), // a sell order: a long liquidated, 50 USD
      liquidation(btcusdt, "L2", at(1, 40), "buy", 108, 0.25) //   a buy order: a short liquidated, 27 USD
    ], at(1, 55))
    // At 12:01:55 minute 12:00 is past its end and the 2 s grace: written. Minute 12:01 is not: no bar per trade.
    assert.deepStrictEqual(minute1.trade_bars.map((r) => [r.id, r.timestamp]), [[`binance-futures_BTCUSDT_${noon}`, noon]])
    assert.deepStrictEqual(figures(minute1.trade_bars[0]!), {
      open: 100, high: 100, low: 100, close: 100, volumeBase: 1, volumeUsd: 100, buyVolumeUsd: 100, sellVolumeUsd: 0, tradeCount: 1,
      longLiquidationsUsd: 0, shortLiquidationsUsd: 0, liquidationCount: 0, observedWhole: false,
      partialReason: "partial minute: collection started at 2026-01-05T12:00:30.000Z",
      correction: true // not watched from its start: to add to whatever a previous run wrote

    })
    assert.strictEqual(minute1.large_trades.length, 2, "the two liquidations are stored as ever; the trades are below 100,000 USD")

    // 12:02:01 is within the grace of minute 12:01 (it ends 12:02:00, due 12:02:02).
    assert.deepStrictEqual(ticked(p, at(2, 1)).trade_bars, [])
    const closed = ticked(p, at(2, 2)).trade_bars
    assert.strictEqual(closed.length, 1)
    const bar = closed[0]!
    assert.deepStrictEqual([bar.id, bar.exchange, bar.symbol, bar.base, bar.instrumentKind, bar.timestamp, bar.openTime, bar.closeTime], [
      `binance-futures_BTCUSDT_${at(1, 0)}`, "binance-futures", "BTCUSDT", "BTC", "perpetual", at(1, 0), at(1, 5), at(1, 50)
    ])
    assert.deepStrictEqual(figures(bar), {
      open: 90, //                               t3 at 12:01:05
      high: 110, //                              t2
      low: 90, //                                t3
      close: 104, //                             t5: 12:01:50 like t4, arrived after it
      volumeBase: 8, //                          2 + 1 + 1 + 3 + 1 coins
      volumeUsd: 819, //                         200 + 110 + 90 + 315 + 104
      buyVolumeUsd: 394, //                      200 + 90 + 104 (t1, t3, t5)
      sellVolumeUsd: 425, //                     110 + 315 (t2, t4): volume delta 394 - 425 = -31
      tradeCount: 5,
      longLiquidationsUsd: 50, //                L1: 100 x 0.5
      shortLiquidationsUsd: 27, //               L2: 108 x 0.25
      liquidationCount: 2,
      observedWhole: true,
      partialReason: null,
      correction: false
    })
    // Named by its run, its records' time range (12:01:05 .. 12:01:50), how many, its first and last record.
    assert.strictEqual(bar.contribution, `run1|${at(1, 5)}|${at(1, 50)}|7|t1|liquidation-L2`)

    // A trade of minute 12:01 arriving at 12:02:10, after its bar was written: a correction, at once. L1 again
    // (a venue repeating recent liquidations after a subscription) is not counted twice.
    const late = run(p, [trade(btcusdt, "t6", at(1, 30), 95, 1, "sell"), liquidation(btcusdt, "L1", at(1, 30), "sell", 100, 0.5)], at(2, 10)).trade_bars
    assert.deepStrictEqual(late.map((r) => [r.id, r.contribution]), [[bar.id, `run1|${at(1, 30)}|${at(1, 30)}|1|t6|t6`]])
    assert.strictEqual(p.bars.lateTrades, 1, "t6 (trade_bar_late_records_total)")
    assert.deepStrictEqual(figures(late[0]!), {
      open: 95, high: 95, low: 95, close: 95, volumeBase: 1, volumeUsd: 95, buyVolumeUsd: 0, sellVolumeUsd: 95, tradeCount: 1,
      longLiquidationsUsd: 0, shortLiquidationsUsd: 0, liquidationCount: 0, observedWhole: true, partialReason: null, correction: true
    })

    // The feed stops at 12:02:20 with minute 12:02 open: written, not watched to its end.
    run(p, [trade(btcusdt, "t7", at(2, 15), 100, 1, "buy")], at(2, 15))
    const stopped = new RowBatch()
    p.stop(at(2, 20), stopped)
    assert.deepStrictEqual(stopped.trade_bars.map((r) => [r.timestamp, r.tradeCount, r.observedWhole, r.partialReason]), [
      [at(2, 0), 1, false, "partial minute: feed stopped at 2026-01-05T12:02:20.000Z"]
    ])
  })

  it("a connection opened or resumed mid-minute leaves that minute, and the one it broke in, partial", () => {
    const p = processor(btcusdt)
    // The socket opens at 12:00:05 (venue-kit's connectionOpened says so), trades follow.
    p.bars.resumed(["BTCUSDT"], at(0, 5), false)
    run(p, [trade(btcusdt, "a", at(0, 10), 100, 1, "buy")], at(0, 10))
    const first = run(p, [trade(btcusdt, "b", at(1, 10), 100, 1, "buy")], at(1, 10)).trade_bars
    assert.deepStrictEqual(first.map((r) => [r.timestamp, r.observedWhole, r.partialReason]), [
      [at(0, 0), false, "partial minute: connection opened at 2026-01-05T12:00:05.000Z"]
    ])
    // It breaks; its replacement opens at 12:01:40: minute 12:01 was not watched to its end, nor from 12:01:40's start.
    p.bars.resumed(["BTCUSDT"], at(1, 40), true)
    run(p, [trade(btcusdt, "c", at(1, 45), 100, 1, "buy")], at(1, 45))
    const second = run(p, [trade(btcusdt, "d", at(2, 10), 100, 1, "buy")], at(2, 10)).trade_bars
    assert.deepStrictEqual(second.map((r) => [r.timestamp, r.tradeCount, r.observedWhole, r.partialReason]), [
      [at(1, 0), 2, false, "partial minute: connection interrupted before 2026-01-05T12:01:40.000Z"]
    ])
    // Minute 12:02 began after the connection came back: watched whole.
    assert.deepStrictEqual(ticked(p, at(3, 2)).trade_bars.map((r) => [r.timestamp, r.observedWhole]), [[at(2, 0), true]])
  })

  it("a venue that first connects minutes after start (no trades gap channel, as Bybit): the minute it connects in is partial", () => {
    const p = processor(btcusdt)
    const status: FeedStatus = {
      feed: "test", venue: "binance-futures", state: "connecting", connectedAt: null, lastMessageAt: null, messages: 0, reconnects: 0, rotations: 0,
      openSessions: 0, lastError: null, lastCause: null, books: () => [], freshness: null, carries: null
    }
    // The venue starts at 11:59:50 and ticks every second; its socket first opens at 12:02:10.
    for (let t = at(-1, 50); t < at(2, 10); t += 1000) assert.deepStrictEqual(ticked(p, t).trade_bars, [])
    // No reconnect: the gap tracker is not asked anything (connectionInterrupted is for reconnects only).
    const gaps = {} as GapTracker
    connectionOpened({ status, gaps, processor: p, monitor: new FreshnessMonitor(), symbols: ["BTCUSDT"], channels: ["book", "funding", "liquidations"], now: at(2, 10) })
    run(p, [trade(btcusdt, "a", at(2, 20), 100, 1, "buy")], at(2, 20))
    // 12:02 lacks its first 10 s: partial (before: "whole", the first tick at 11:59:50 taken as the start of watching).
    assert.deepStrictEqual(ticked(p, at(3, 2)).trade_bars.map((r) => [r.timestamp, r.observedWhole, r.partialReason]), [
      [at(2, 0), false, "partial minute: connection opened at 2026-01-05T12:02:10.000Z"]
    ])
    run(p, [trade(btcusdt, "b", at(3, 20), 100, 1, "buy")], at(3, 20))
    // 12:03 began after the connection opened: whole.
    assert.deepStrictEqual(ticked(p, at(4, 2)).trade_bars.map((r) => [r.timestamp, r.observedWhole]), [[at(3, 0), true]])
  })

  it("after a restart, the minute it came in and late trades of minutes the old process wrote are published to add, not to replace", () => {
    // A clean restart at 12:00:40: the old process wrote 11:59 and the first part of 12:00; this one knows nothing of them.
    const p = processor(btcusdt, undefined, "after")
    p.bars.resumed(["BTCUSDT"], at(0, 40), false)
    const first = run(p, [
      trade(btcusdt, "n1", at(0, 45), 100, 1, "buy"), // 12:00:45, this run's part of 12:00
      trade(btcusdt, "n2", at(-1, 50), 100, 1, "buy") //  11:59:50, late: its minute was written by the old process
    ], at(0, 46))
    // 11:59 is past its end and grace at 12:00:46: written at once, with the one trade this run saw.
    const wrote = (batch: RowBatch) => eventsOf(batch).map((e) => [e.rowId, JSON.parse(e.data).correction, JSON.parse(e.data).trade_count])
    assert.deepStrictEqual(wrote(first), [[`binance-futures_BTCUSDT_${at(-1, 0)}`, true, 1]])
    // 12:00 at 12:01:02: 12:00:40 .. 59 only, so "add" (before the fix: false, and clients dropped the old half).
    assert.deepStrictEqual(wrote(ticked(p, at(1, 2))), [[`binance-futures_BTCUSDT_${noon}`, true, 1]])
    run(p, [trade(btcusdt, "n3", at(1, 30), 100, 1, "buy")], at(1, 30))
    // 12:01 was watched from its start: the whole bar, to replace.
    assert.deepStrictEqual(wrote(ticked(p, at(2, 2))), [[`binance-futures_BTCUSDT_${at(1, 0)}`, false, 1]])
  })

  it("trades that cannot be valued yet are counted and make their bar partial, never silently left out", () => {
    // ETH quoted in BTC: valued only with a BTC price (here the venue's own rate on the trade), none at first.
    const ethbtc: Instrument = { venue: "binance", symbol: "ETHBTC", base: "ETH", quote: "BTC", kind: "spot", contractSize: 1, inverse: false }
    const p = processor(ethbtc)
    p.bars.resumed(["ETHBTC"], at(-1, 30), false)
    run(p, [
      trade(ethbtc, "u1", at(0, 10), 0.05, 1, "buy"), //                         no USD price: not valued
      trade(ethbtc, "v1", at(0, 20), 0.05, 2, "sell", { quoteUsdRate: 100 }), // 0.05 x 2 BTC x 100 USD = 10 USD
      trade(ethbtc, "u2", at(0, 30), 0.05, 3, "buy") //                          not valued
    ], at(0, 30))
    assert.strictEqual(p.counters.unvalued, 2)
    const [bar] = ticked(p, at(1, 2)).trade_bars
    assert.deepStrictEqual([bar!.tradeCount, bar!.volumeUsd, bar!.sellVolumeUsd, bar!.observedWhole, bar!.partialReason, bar!.unvaluedCount], [
      1, 10, 10, false, "partial: 2 trades not valued (no USD price yet), left out", 2 // watched whole, but 2 of its 3 trades are not in it
    ])
    assert.include(eventsOf(Object.assign(new RowBatch(), { trade_bars: [bar!] }))[0]!.data, `"observed_whole":false,`)
  })

  it("a bar holding liquidations from a sampled stream says so; one from a stream of every liquidation does not", () => {
    const p = processor(btcusdt)
    p.bars.resumed(["BTCUSDT"], at(-1, 30), false)
    // 12:00: a liquidation as Binance's forceOrder gives it (sampled: at most one per symbol per second).
    const batches = [
      run(p, [trade(btcusdt, "a", at(0, 5), 100, 1, "buy"), liquidation(btcusdt, "S", at(0, 10), "sell", 100, 1, { sampled: true })], at(0, 10)),
      // 12:01: a liquidation from a stream of all of them (Bybit allLiquidation: no flag); 12:02: trades only.
      run(p, [liquidation(btcusdt, "E", at(1, 10), "buy", 100, 1)], at(1, 10)),
      run(p, [trade(btcusdt, "b", at(2, 10), 100, 1, "buy")], at(2, 10)),
      ticked(p, at(3, 2))
    ]
    const written = batches.flatMap((b) => b.trade_bars)
    assert.deepStrictEqual(written.map((r) => [r.timestamp, r.liquidationCount, r.liquidationsSampled, r.observedWhole]), [
      [at(0, 0), 1, true, true], // lower bounds for liquidations; the trades still complete
      [at(1, 0), 1, false, true],
      [at(2, 0), 0, false, true]
    ])
    assert.include(eventsOf(Object.assign(new RowBatch(), { trade_bars: [written[0]!] }))[0]!.data, `"liquidations_sampled":true`)
  })

  it("inverse sizes count coins at the trade's price; a trade flagged as a liquidation counts by the liquidated side", () => {
    const p = processor(perpetual)
    run(p, [], at(0, 0))
    run(p, [
      trade(perpetual, "x1", at(0, 10), 100, 1000, "buy"), //                                      1,000 USD = 10 coins at 100
      trade(perpetual, "x2", at(0, 20), 125, 500, "sell", { liquidation: true, liquidatedSide: "buy" }), //  500 USD = 4 coins; a short
      trade(perpetual, "x3", at(0, 30), 80, 200, "buy", { liquidation: true, liquidatedSide: "both" }) //    200 USD = 2.5 coins; both
    ], at(0, 30))
    const [bar] = ticked(p, at(1, 2)).trade_bars
    assert.deepStrictEqual(figures(bar!), {
      open: 100, high: 125, low: 80, close: 80,
      volumeBase: 16.5, //           10 + 4 + 2.5
      volumeUsd: 1700, //            1,000 + 500 + 200
      buyVolumeUsd: 1200, //         x1 + x3
      sellVolumeUsd: 500, //         x2
      tradeCount: 3,
      longLiquidationsUsd: 200, //   x3 (both orders liquidated: one of them a long)
      shortLiquidationsUsd: 700, //  x2 500 + x3 200
      liquidationCount: 0, //        no liquidation record: flagged trades only
      observedWhole: true, partialReason: null, correction: false
    })
    // The stream's `bar` event carries the bar as the API shapes it.
    const events = eventsOf(Object.assign(new RowBatch(), { trade_bars: [bar!] }))
    assert.deepStrictEqual(events.map((e) => [e.kind, e.rowId, e.valueUsd, e.time]), [["bar", `deribit_BTC-PERPETUAL_${noon}`, 1700, noon]])
    assert.include(events[0]!.data, `"volume_delta_usd":700,`)
  })
})

const writerOptions: WriterOptions = {
  batchSize: 500,
  flushIntervalMs: 20,
  queueCapacity: 10_000,
  retryInitialMs: 50,
  retryMaxMs: 200,
  drainTimeoutMs: 5_000,
  suspectAttempts: 3
}

interface StoredBar {
  readonly trade_count: string | number
  readonly volume_usd: string
  readonly low: string
  readonly close: string
  readonly contributions: ReadonlyArray<string>
}
const storedBar = (id: string) =>
  SqlClient.SqlClient.use((sql) => sql<StoredBar>`SELECT trade_count, volume_usd, low, close, contributions FROM trade_bars WHERE id = ${id}`)
    .pipe(Effect.map((rows) => rows[0]))

describe("bars through the writer, the gap ledger and GET /bars", () => {
  it.live("late and repaired trades merge into the stored bar once; complete follows the gap; the aggregate leaves out what is incomplete", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const writer = yield* Writer.make(writerOptions)
      const ledger = yield* GapLedger
      const allowRepair = yield* Deferred.make<void>()

      // binance-futures BTCUSDT: trades numbered 1, 2, ...; 4 and 5 go missing live and come back over REST.
      const seq = (n: number, time: number, price: number, size: number, side: "buy" | "sell") =>
        trade(btcusdt, String(n), time, price, size, side, { sequence: n })
      const repaired = [seq(4, at(0, 25), 102, 1, "buy"), seq(5, at(0, 30), 98, 2, "sell")]
      let binance: RecordProcessor | undefined
      const tracker = yield* makeGapTracker({
        venue: "binance-futures",
        fetchTrades: () => Effect.as(Deferred.await(allowRepair), repaired),
        maxRepairTrades: 100,
        onRepaired: (trades) =>
          Effect.suspend(() => {
            const batch = new RowBatch()
            binance!.processRepaired(trades, at(3, 0), batch)
            return writer.offer(batch)
          })
      })
      binance = processor(btcusdt, tracker.continuity)
      const deribit = processor(perpetual)
      const offer = (batch: RowBatch) => writer.offer(batch)

      // Collection starts at 11:59:30: minute 11:59 is partial.
      yield* offer(run(binance, [seq(1, at(-1, 20), 100, 1, "buy")], at(-1, 30)))
      // Minute 12:00 live: 2, 3, then 6 (4 and 5 missing: a gap from 12:00:20 to 12:00:40, repairing).
      yield* offer(run(binance, [seq(2, at(0, 10), 100, 2, "buy"), seq(3, at(0, 20), 101, 1, "sell"), seq(6, at(0, 40), 103, 1, "buy")], at(0, 41)))
      yield* offer(ticked(binance, at(1, 5)))
      // 7 belongs to 12:00 and arrives at 12:01:10, after the bar was written: a correction.
      const late = run(binance, [seq(7, at(0, 58), 99, 1, "sell")], at(1, 10))
      assert.strictEqual(late.trade_bars.length, 1)
      yield* offer(late)
      // The same correction again, as the writer's retry of a batch whose commit it never heard back about: not added twice.
      yield* offer(late)
      yield* offer(run(binance, [seq(8, at(3, 10), 100, 1, "buy")], at(3, 11)))
      yield* offer(ticked(binance, at(4, 5)))

      // deribit BTC-PERPETUAL starts at 12:00:46: its minute 12:00 is partial, 12:02 whole.
      yield* offer(run(deribit, [trade(perpetual, "d1", at(0, 45), 100, 1000, "buy")], at(0, 46)))
      yield* offer(run(deribit, [trade(perpetual, "d2", at(2, 10), 102, 510, "sell")], at(2, 11)))
      yield* offer(ticked(deribit, at(3, 5)))

      const barA = `binance-futures_BTCUSDT_${noon}`
      yield* eventually("the bars and the gap stored", Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [n] = yield* sql<{ n: string }>`SELECT count(*)::text AS n FROM trade_bars`
        const [g] = yield* sql<{ n: string }>`SELECT count(*)::text AS n FROM data_gaps WHERE repair_status = 'repairing'`
        const a = yield* storedBar(barA)
        return n!.n === "5" && g!.n === "1" && a !== undefined && Number(a.trade_count) === 4 ? true : undefined
      }), 20_000)
      yield* Effect.sleep("300 millis")
      // Live 2, 3, 6 then 7: 4 trades, 200 + 101 + 103 + 99 = 503 USD, low and close 99 (7, the latest at 12:00:58).
      const merged = (yield* storedBar(barA))!
      assert.deepStrictEqual([Number(merged.trade_count), Number(merged.volume_usd), Number(merged.low), Number(merged.close)], [4, 503, 99, 99])
      assert.deepStrictEqual(merged.contributions, [`run1|${at(0, 10)}|${at(0, 40)}|3|2|6`, `run1|${at(0, 58)}|${at(0, 58)}|1|7|7`], "the second offer of 7's correction added nothing")

      const port = freePort()
      yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none" }, pinnedClock(at(6, 0)).layer)
      const url = (query: string) => `http://127.0.0.1:${port}/api/v1/exchange/bars?${query}`

      // Before the repair: the 12:00 bucket of binance has the open gap; deribit's has its partial first minute.
      const before = yield* getData(url("symbol=BTC&interval=5m&hours=1"))
      const byKey = (data: any) => Object.fromEntries(data.bars.map((b: any) => [`${b.exchange} ${b.start.slice(11, 16)}`, b]))
      const gapId = `binance-futures_trades_BTCUSDT_${at(0, 20)}_sequence_gap`
      assert.deepStrictEqual(Object.keys(byKey(before)).sort(), ["binance-futures 11:55", "binance-futures 12:00", "deribit 12:00"])
      assert.deepStrictEqual(byKey(before)["binance-futures 12:00"].incomplete.map((i: any) => [i.reason, i.gap_id]), [["gap", gapId]])
      assert.isFalse(byKey(before)["binance-futures 12:00"].complete)
      const aggregateBefore = yield* getData(url("symbol=BTC&interval=5m&hours=1&aggregate=true"))
      assert.deepStrictEqual(aggregateBefore.aggregates.map((a: any) => [a.start, a.venues.length, a.left_out.map((l: any) => l.exchange)]), [
        [iso(at(-5, 0)), 0, ["binance-futures"]],
        [iso(noon), 0, ["binance-futures", "deribit"]]
      ])

      // The repair: 4 and 5 come back over REST, the gap is verified and the bar rebuilt.
      yield* Deferred.succeed(allowRepair, undefined)
      yield* eventually("the repair merged and the gap verified", Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [g] = yield* sql<{ s: string }>`SELECT repair_status AS s FROM data_gaps WHERE id = ${gapId}`
        const a = yield* storedBar(barA)
        return g?.s === "verified" && Number(a?.trade_count) === 6 ? true : undefined
      }), 20_000)
      assert.strictEqual(ledger.recent().length, 1)
      assert.strictEqual(binance.bars.lateTrades, 1, "7 came late; 4 and 5 were repaired, late by design")

      // Minute 12:00 of binance, all of it: 2 (12:00:10, 100 x 2 buy), 3 (:20, 101 x 1 sell), 4 (:25, 102 x 1 buy),
      // 5 (:30, 98 x 2 sell), 6 (:40, 103 x 1 buy), 7 (:58, 99 x 1 sell).
      const minute = yield* getData(url("symbol=BTCUSDT&exchange=binance-futures&interval=1m&hours=1"))
      const bar = minute.bars.find((b: any) => b.start === iso(noon))
      assert.deepStrictEqual(
        [bar.open, bar.high, bar.low, bar.close, bar.volume_base, bar.volume_usd, bar.buy_volume_usd, bar.sell_volume_usd, bar.volume_delta_usd, bar.trade_count, bar.complete],
        [
          100, //  2, the earliest
          103, //  6
          98, //   5, from the repair
          99, //   7, the latest (12:00:58), from the late correction
          8, //    2 + 1 + 1 + 2 + 1 + 1 coins
          801, //  200 + 101 + 102 + 196 + 103 + 99
          405, //  200 + 102 + 103
          396, //  101 + 196 + 99
          9, //    405 - 396
          6,
          true
        ]
      )
      assert.strictEqual(bar.vwap, 100.125, "801 USD / 8 coins")

      const after = yield* getData(url("symbol=BTC&interval=5m&hours=1"))
      const rows = byKey(after)
      assert.isTrue(rows["binance-futures 12:00"].complete, "the gap is verified: nothing unrepaired overlaps it")
      assert.deepStrictEqual(rows["binance-futures 11:55"].incomplete.map((i: any) => [i.reason, i.minute, i.detail]), [
        ["partial_minute", iso(at(-1, 0)), "partial minute: collection started at 2026-01-05T11:59:30.000Z"]
      ])
      assert.deepStrictEqual(rows["deribit 12:00"].incomplete.map((i: any) => [i.reason, i.minute]), [["partial_minute", iso(noon)]])
      // deribit: d1 1,000 USD at 100 (10 coins, bought), d2 510 USD at 102 (5 coins, sold): VWAP 1,510 / 15 = 100.666666667.
      const d = rows["deribit 12:00"]
      assert.deepStrictEqual([d.open, d.close, d.volume_base, d.volume_usd, d.volume_delta_usd, d.vwap], [100, 102, 15, 1510, 490, 100.666666667])
      // binance's 12:00 bucket also holds minute 12:03 (8: 100 x 1 buy): 9 coins, 901 USD, 505 buy, 396 sell.
      assert.deepStrictEqual([rows["binance-futures 12:00"].minutes, rows["binance-futures 12:00"].volume_usd, rows["binance-futures 12:00"].trade_count], [2, 901, 7])

      const aggregate = yield* getData(url("symbol=BTC&interval=5m&hours=1&aggregate=true"))
      // BARS_PRINT=1 shows the answers (for the README's example).
      if (process.env.BARS_PRINT === "1") console.log(JSON.stringify({ bars: after, aggregate }))
      const [early, twelve] = aggregate.aggregates
      assert.deepStrictEqual([early.start, early.venues, early.complete], [iso(at(-5, 0)), [], false])
      assert.deepStrictEqual(twelve.venues, [{ exchange: "binance-futures", symbol: "BTCUSDT" }])
      assert.deepStrictEqual(twelve.left_out.map((l: any) => [l.exchange, l.symbol, l.incomplete.map((i: any) => i.reason)]), [
        ["deribit", "BTC-PERPETUAL", ["partial_minute"]]
      ])
      assert.deepStrictEqual(
        [twelve.asset, twelve.volume_base, twelve.volume_usd, twelve.buy_volume_usd, twelve.sell_volume_usd, twelve.volume_delta_usd, twelve.trade_count, twelve.vwap, twelve.complete],
        // binance only: 9 coins, 901 USD, 505 buy, 396 sell, delta 109, 7 trades; VWAP 901 / 9 = 100.111111111 (12 digits).
        ["BTC", 9, 901, 505, 396, 109, 7, 100.111111111, false]
      )

      // A stream client resuming from the database is sent the bars as stored: binance's 12:00 with every contribution.
      const replayed = yield* streamReplay({ start: { _tag: "InsertedSince", ms: 0 }, until: Date.now() + 60_000, earliest: at(-60, 0), kinds: new Set(["bar"]), limit: 100 })
      const replayedA = replayed.rows.find((r) => r.id === barA)!
      assert.deepStrictEqual(
        [replayedA.kind, replayedA.row.trade_count, replayedA.row.volume_usd, replayedA.row.correction, replayedA.row.unvalued_count, replayedA.row.liquidations_sampled],
        ["bar", 6, 801, false, 0, false] // the same fields as the live event's
      )
      assert.strictEqual(replayed.rows.length, 5)
    }).pipe(Effect.scoped, Effect.provide(Layer.provideMerge(GapLedger.layer, postgresLayer(postgresUrl)))), { timeout: 90_000 })
})

const contribution = (id: string, parts: Partial<TradeBarRow>): TradeBarRow => ({
  id, exchange: "merge-test", symbol: "BTCUSDT", base: "BTC", instrumentKind: "perpetual", timestamp: noon, open: null, high: null, low: null, close: null,
  openTime: null, closeTime: null, volumeBase: 0, volumeUsd: 0, buyVolumeUsd: 0, sellVolumeUsd: 0, tradeCount: 0, longLiquidationsUsd: 0,
  shortLiquidationsUsd: 0, liquidationCount: 0, observedWhole: true, partialReason: null, contribution: "", correction: true, ...parts
})

const databases: ReadonlyArray<readonly [string, () => Layer.Layer<SqlClient.SqlClient, unknown>]> = [
  ["PostgreSQL", () => postgresLayer(postgresUrl)],
  ["the embedded database", () => embeddedLayer(undefined)]
]

describe.each(databases)("the merge of corrections on %s", (_name, database) => {
  it.live("adds each contribution once, keeps the earliest open and the latest close, and reads back through /bars' query", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      const sql = yield* SqlClient.SqlClient
      yield* sql`DELETE FROM trade_bars WHERE exchange = 'merge-test'`
      const id = `merge-test_BTCUSDT_${noon}`
      // The bar as written: 3 trades, open 100 at 12:00:10, close 102 at 12:00:50, 3 coins, 306 USD (200 buy, 106 sell).
      const live = contribution(id, {
        open: 100, high: 105, low: 99, close: 102, openTime: at(0, 10), closeTime: at(0, 50), volumeBase: 3, volumeUsd: 306, buyVolumeUsd: 200,
        sellVolumeUsd: 106, tradeCount: 3, contribution: `r1|${at(0, 10)}|${at(0, 50)}|3|a|c`, correction: false
      })
      // A late trade at 12:00:05, 98 x 1 sold: the new open and low.
      const late = contribution(id, { open: 98, high: 98, low: 98, close: 98, openTime: at(0, 5), closeTime: at(0, 5), volumeBase: 1, volumeUsd: 98, sellVolumeUsd: 98, tradeCount: 1, contribution: `r1|${at(0, 5)}|${at(0, 5)}|1|d|d` })
      // A liquidation alone (a long, 50 USD): no price.
      const liquidated = contribution(id, { longLiquidationsUsd: 50, liquidationCount: 1, liquidationsSampled: true, unvaluedCount: 1, contribution: `r1|${at(0, 30)}|${at(0, 30)}|1|liquidation-L|liquidation-L` })
      // A trade at 12:00:50 like the close, arriving later: 101 x 1 bought, the new close.
      const tie = contribution(id, { open: 101, high: 101, low: 101, close: 101, openTime: at(0, 50), closeTime: at(0, 50), volumeBase: 1, volumeUsd: 101, buyVolumeUsd: 101, tradeCount: 1, unvaluedCount: 2, contribution: `r1|${at(0, 50)}|${at(0, 50)}|1|e|e` })
      yield* insertRows("trade_bars", [live])
      const [first] = yield* sql<{ liquidations_sampled: boolean }>`SELECT liquidations_sampled FROM trade_bars WHERE id = ${id}`
      assert.strictEqual(first!.liquidations_sampled, false, "no liquidation yet")
      yield* insertRows("trade_bars", [late])
      yield* insertRows("trade_bars", [late]) // the same batch retried
      yield* insertRows("trade_bars", [liquidated, tie, liquidated]) // one batch, one contribution in it twice
      const [row] = yield* sql<Record<string, unknown>>`SELECT open, high, low, close, volume_base, volume_usd, buy_volume_usd, sell_volume_usd,
        trade_count, long_liquidations_usd, liquidation_count, contributions, liquidations_sampled, unvalued_count FROM trade_bars WHERE id = ${id}`
      assert.deepStrictEqual(
        [row!.open, row!.high, row!.low, row!.close, row!.volume_base, row!.volume_usd, row!.buy_volume_usd, row!.sell_volume_usd, row!.trade_count, row!.long_liquidations_usd, row!.liquidation_count].map(Number),
        // open 98 (12:00:05), high 105, low 98, close 101 (12:00:50, later), 3 + 1 + 1 coins, 306 + 98 + 101 USD,
        // buys 200 + 101, sells 106 + 98, 3 + 1 + 1 trades, one long liquidation of 50 USD.
        [98, 105, 98, 101, 5, 505, 301, 204, 5, 50, 1]
      )
      assert.deepStrictEqual(row!.contributions, [live, late, liquidated, tie].map((c) => c.contribution))
      assert.strictEqual(row!.liquidations_sampled, true, "the sampled liquidation's contribution marks the merged bar")
      assert.strictEqual(Number(row!.unvalued_count), 3, "unvalued: 1 (liquidated, once though in the batch twice) + 2 (tie)")

      // At 12:10 the latest 11 minutes are 12:00 .. 12:10.
      const answer = yield* bars({ symbol: "BTC", exchange: "merge-test", hours: 1, interval: "1m", aggregate: false, limit: 11 }).pipe(Effect.provide(pinnedClock(at(10, 0)).layer))
      assert.deepStrictEqual(answer.bars.map((b) => [b.start, b.open, b.close, b.vwap, b.volume_delta_usd, b.complete]), [
        [iso(noon), 98, 101, 101, 97, true] // VWAP 505 / 5 = 101; delta 301 - 204 = 97
      ])
      yield* sql`DELETE FROM trade_bars WHERE exchange = 'merge-test'`
    }).pipe(Effect.provide(Layer.fresh(database())), Effect.scoped), { timeout: 60_000 })
})

// A venue of its own, so these rows stay apart from the other tests' (deleted with exchange 'merge-test').
const replayed: Instrument = { ...btcusdt, venue: "merge-test", symbol: "REPLAY" }

describe.each(databases)("trades counted once across runs on %s", (_name, database) => {
  it.live("a replay of the same frames, a restart's second half, the venue's repeated liquidation and a writer retry", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      const sql = yield* SqlClient.SqlClient
      yield* sql`DELETE FROM trade_bars WHERE exchange = 'merge-test'`
      const store = (batch: RowBatch) => insertRows("trade_bars", batch.trade_bars)
      const stored = (minute: number) =>
        sql<{ trade_count: string; liquidation_count: string; volume_usd: string }>`SELECT trade_count, liquidation_count, volume_usd FROM trade_bars
          WHERE id = ${`merge-test_REPLAY_${minute}`}`.pipe(Effect.map((rows) => [Number(rows[0]!.trade_count), Number(rows[0]!.liquidation_count), Number(rows[0]!.volume_usd)]))
      const frames = {
        first: [trade(replayed, "1", at(0, 10), 100, 1, "buy"), trade(replayed, "2", at(0, 20), 101, 1, "sell")], // received 12:00:21
        late: [trade(replayed, "3", at(0, 30), 102, 1, "buy")] //                                                    received 12:01:10
      }

      // Live (run "live"): the tick at 12:01:05 writes 1..2 (2 trades), 3 comes late as a correction (1 trade).
      const live = processor(replayed, undefined, "live")
      yield* store(run(live, frames.first, at(0, 21)))
      const written = ticked(live, at(1, 5))
      assert.deepStrictEqual(written.trade_bars.map((r) => r.tradeCount), [2])
      yield* store(written)
      const correction = run(live, frames.late, at(1, 10))
      yield* store(correction)
      yield* store(correction) // the writer's retry of a batch whose commit it never heard back about
      // 3 trades: 100 + 101 + 102 = 303 USD.
      assert.deepStrictEqual(yield* stored(noon), [3, 0, 303])

      // A replay of the same frames (run "replay"): no tick in between, so 12:01:10 writes one bar of 1..3.
      const replay = processor(replayed, undefined, "replay")
      yield* store(run(replay, frames.first, at(0, 21)))
      const whole = run(replay, frames.late, at(1, 10))
      assert.deepStrictEqual(whole.trade_bars.map((r) => r.tradeCount), [3])
      yield* store(whole)
      assert.deepStrictEqual(yield* stored(noon), [3, 0, 303], "12:00:10 .. 12:00:30 overlaps the live run's: not added (6 before the fix)")

      // A restart in minute 12:02: the first run sees 12:02:05 and 12:02:15 and a liquidation at 12:02:10, stops at 12:02:20;
      // the second starts at 12:02:40 and sees 12:02:45 and 12:02:50. Halves disjoint in time: 2 + 2 trades.
      const before = processor(replayed, undefined, "before")
      yield* store(run(before, [
        trade(replayed, "20", at(2, 5), 100, 1, "buy"), liquidation(replayed, "L", at(2, 10), "sell", 100, 1), trade(replayed, "21", at(2, 15), 100, 1, "buy")
      ], at(2, 16)))
      const stopped = new RowBatch()
      before.stop(at(2, 20), stopped)
      yield* store(stopped)
      const after = processor(replayed, undefined, "after")
      yield* store(run(after, [trade(replayed, "22", at(2, 45), 100, 1, "sell"), trade(replayed, "23", at(2, 50), 100, 1, "sell")], at(2, 51)))
      yield* store(ticked(after, at(3, 5)))
      // 4 trades of 100 USD, 1 liquidation.
      assert.deepStrictEqual(yield* stored(at(2, 0)), [4, 1, 400])

      // The second run's new subscription repeats liquidation L (12:02:10, as OKX does): its bar for 12:02 holds L alone,
      // inside the first run's 12:02:05 .. 12:02:15: not added again.
      const repeated = run(after, [liquidation(replayed, "L", at(2, 10), "sell", 100, 1)], at(3, 10))
      assert.deepStrictEqual(repeated.trade_bars.map((r) => [r.liquidationCount, r.correction]), [[1, true]], "the second run never counted L")
      yield* store(repeated)
      assert.deepStrictEqual(yield* stored(at(2, 0)), [4, 1, 400])
      yield* sql`DELETE FROM trade_bars WHERE exchange = 'merge-test'`
    }).pipe(Effect.provide(Layer.fresh(database())), Effect.scoped), { timeout: 60_000 })
})

describe("a stream resume from the database and a bar corrected in place", () => {
  it.live("sends the corrected bar after the client's own event, and the ring's correction the database did not have yet", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      const sql = yield* SqlClient.SqlClient
      yield* sql`DELETE FROM trade_bars WHERE exchange = 'merge-test'`
      // The hub's events as it numbers them (epoch 1, seq n, arrived at `ms`).
      const live = (batch: RowBatch, seq: number, ms: number): StreamEvent => {
        const [input] = eventsOf(batch)
        return { ...input!, id: `1.${seq}.${ms}:bar:${input!.rowId}`, key: `bar:${input!.rowId}` }
      }
      const p = processor(replayed, undefined, "live")
      p.bars.resumed(["REPLAY"], at(-1, 30), false)
      run(p, [trade(replayed, "1", at(0, 10), 100, 1, "buy")], at(0, 10))
      const written = ticked(p, at(1, 2)) //                                         X: 1 trade, 100 USD, to replace
      const correction = run(p, [trade(replayed, "2", at(0, 30), 100, 2, "buy")], at(1, 10)) // X': 1 trade, 200 USD, to add
      const [original, late] = [live(written, 1, at(1, 2)), live(correction, 2, at(1, 10))]
      assert.deepStrictEqual([JSON.parse(original.data).correction, JSON.parse(late.data).correction], [false, true])
      const replay = () => streamReplay({ start: { _tag: "InsertedSince", ms: 0 }, until: Date.now() + 60_000, earliest: at(-60, 0), kinds: new Set(["bar"]), exchange: "merge-test", limit: 100 })

      yield* insertRows("trade_bars", written.trade_bars)
      const beforeMerge = yield* replay()
      const position = beforeMerge.rows[0]!.insertedMicros
      // B: the database gave X before X' was merged: of the ring's X and X', X' is still to send (before: both left out, by key).
      const given = heldKeys(beforeMerge.rows)
      assert.deepStrictEqual([original, late].filter((e) => !given.has(heldKey(e))).map((e) => e.id), [late.id])
      // The same from a database position (the client had X as stored at `position`): X' was not in it.
      const had = yield* streamStoredUpTo([original.key, late.key], position)
      assert.deepStrictEqual([original, late].filter((e) => !had.has(heldKey(e))).map((e) => e.id), [late.id])

      yield* insertRows("trade_bars", correction.trade_bars)
      const afterMerge = yield* replay()
      // A: the client's last event was X (live); X' merged, the ring rolled over: the stored X, 1 + 1 trades and
      // 100 + 200 USD, is sent (before: left out, its key the client's).
      const sent = afterMerge.rows.map((r): StreamEvent => ({
        id: `db.${r.insertedMicros}:bar:${r.id}`, key: `bar:${r.id}`, rowId: r.id, kind: "bar", exchange: r.exchange, symbol: r.symbol, valueUsd: r.valueUsd,
        time: r.time, data: JSON.stringify(r.row)
      })).filter((e) => !isClientsOwn(e, parseEventId(original.id!)!, original.id!))
      assert.deepStrictEqual(sent.map((e) => [JSON.parse(e.data).trade_count, JSON.parse(e.data).volume_usd, JSON.parse(e.data).correction]), [[2, 300, false]])
      // With X' merged, neither ring event is pending any more: the stored bar holds both.
      const held = heldKeys(afterMerge.rows)
      assert.deepStrictEqual([original, late].filter((e) => !held.has(heldKey(e))), [])
      // A client at the stored X's own position is not sent that version again; a later version it is.
      const own = `db.${position}:bar:${original.rowId}`
      assert.isTrue(isClientsOwn({ ...sent[0]!, id: own }, parseEventId(own)!, own))
      assert.isFalse(isClientsOwn(sent[0]!, parseEventId(own)!, own))
      yield* sql`DELETE FROM trade_bars WHERE exchange = 'merge-test'`
    }).pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped), { timeout: 60_000 })
})

/** The Effect Clock stopped at `ms` (a query reads the time once): boundaries to the millisecond. */
const frozenClock = (ms: number) => {
  const real = Clock.Clock.defaultValue()
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: () => ms,
    currentTimeMillis: Effect.succeed(ms),
    currentTimeNanosUnsafe: () => BigInt(ms) * 1_000_000n,
    currentTimeNanos: Effect.succeed(BigInt(ms) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: real.monotonicTimeNanos,
    sleep: (duration) => real.sleep(duration)
  }
  return Layer.succeed(Clock.Clock, clock)
}

/** A stored minute bar watched whole: one buy of `usd` at `price`. */
const minuteBar = (exchange: string, symbol: string, minute: number, price: number, usd: number, parts: Partial<TradeBarRow> = {}): TradeBarRow => ({
  id: `${exchange}_${symbol}_${at(minute, 0)}`, exchange, symbol, base: "BTC", instrumentKind: "perpetual", timestamp: at(minute, 0),
  open: price, high: price, low: price, close: price, openTime: at(minute, 1), closeTime: at(minute, 2), volumeBase: usd / price, volumeUsd: usd,
  buyVolumeUsd: usd, sellVolumeUsd: 0, tradeCount: 1, longLiquidationsUsd: 0, shortLiquidationsUsd: 0, liquidationCount: 0,
  observedWhole: true, partialReason: null, contribution: `${exchange}-${minute}|${exchange}-${minute}|1`, correction: false, ...parts
})

describe("what /bars calls complete", () => {
  const fiveMinutes = (aggregate: boolean, now: number) =>
    bars({ symbol: "BTC", hours: 1, interval: "5m", aggregate, limit: 10 }).pipe(Effect.provide(frozenClock(now)))

  it.live("a bucket is in progress until its last minute bar can have been written: end + grace + a tick + 2 writer flushes", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* truncateAll
      // alpha wrote minutes 12:00 .. 12:04; beta 12:00 .. 12:03, its 12:04 bar still waiting out the grace and the writer.
      yield* insertRows("trade_bars", [0, 1, 2, 3, 4].map((m) => minuteBar("alpha", "BTCUSDT", m, 100, 1000)))
      yield* insertRows("trade_bars", [0, 1, 2, 3].map((m) => minuteBar("beta", "BTCUSDT", m, 100, 1000)))
      // The 12:00 5-minute bucket ends at 12:05:00; its last bar may land until 12:05:00 + 2 s (BAR_GRACE_SECONDS)
      // + 1 s (the processor's tick) + 2 x 50 ms (WRITER_FLUSH_MS) = 12:05:03.100.
      const settled = iso(at(5, 3) + 100)
      for (const now of [at(5, 1), at(5, 3) + 99]) {
        const per = yield* fiveMinutes(false, now)
        assert.deepStrictEqual(per.bars.map((b) => [b.exchange, b.minutes, b.complete, b.incomplete.map((i) => [i.reason, i.detail])]), [
          ["alpha", 5, false, [["in_progress", `the bucket is over; its last minute bar may be written until ${settled}`]]],
          ["beta", 4, false, [["in_progress", `the bucket is over; its last minute bar may be written until ${settled}`]]]
        ], `at ${iso(now)}`)
        const [aggregate] = (yield* fiveMinutes(true, now)).aggregates
        assert.deepStrictEqual([aggregate!.complete, aggregate!.venues, aggregate!.left_out.map((l) => l.exchange)], [false, [], ["alpha", "beta"]])
      }
      // From 12:05:03.100 the bars are in: alpha 5 x 1,000 USD, beta 4 x 1,000 (12:04 had no trade): 9,000 USD, 90 coins.
      const [aggregate] = (yield* fiveMinutes(true, at(5, 3) + 100)).aggregates
      assert.deepStrictEqual([aggregate!.complete, aggregate!.venues.map((v) => v.exchange), aggregate!.volume_usd, aggregate!.volume_base], [true, ["alpha", "beta"], 9000, 90])
    }).pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped), { timeout: 60_000 })

  it.live("an instrument the ledger or the coverage expects and that has no bar is left out, never silently missing", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* truncateAll
      const sql = yield* SqlClient.SqlClient
      yield* insertRows("trade_bars", [0, 1, 2, 3, 4].map((m) => minuteBar("alpha", "BTCUSDT", m, 100, 1000)))
      yield* insertRows("trade_bars", [0, 1, 2, 3, 4].map((m) => minuteBar("beta", "BTCUSDT", m, 100, 1000)))
      // gamma: disconnected since 11:58, an OPEN trades gap, no bar at all (never one: placed by its symbol's pattern).
      yield* sql`INSERT INTO data_gaps (id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata)
        VALUES ('gamma-open', 'gamma', 'trades', 'BTCUSDT', '2026-01-05 11:58:00', NULL, 'disconnect', NULL, 'open', 0, '{}'::jsonb)`
      // delta: its trades stream disconnected 12:01:30 .. 12:02:30 by the coverage, no gap in the ledger yet (it never
      // came back), its last bar at 11:59 (so its base is known: BTC). Its 12:00 bucket has no bar.
      yield* insertRows("trade_bars", [minuteBar("delta", "BTC-USD-SWAP", -1, 100, 500)])
      yield* sql`INSERT INTO stream_coverage (id, run_id, exchange, channel, symbol, state, detail, since, until, closed)
        VALUES ('run1_delta_down', 'run1', 'delta', 'trades', 'BTC-USD-SWAP', 'disconnected', 'socket closed', '2026-01-05 12:01:30', '2026-01-05 12:02:30', TRUE)`
      // An option's gap stays out of the aggregate (options are no price of the asset).
      yield* sql`INSERT INTO data_gaps (id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata)
        VALUES ('option-open', 'deribit', 'trades', 'BTC-27DEC26-100000-C', '2026-01-05 12:01:00', NULL, 'disconnect', NULL, 'open', 0, '{}'::jsonb)`

      // At 12:06, 12:00 .. 12:05 is over and settled (12:05:03.100).
      const now = at(6, 0)
      const aggregates = (yield* fiveMinutes(true, now)).aggregates
      const twelve = aggregates.find((a) => a.start === iso(noon))!
      if (process.env.BARS_PRINT === "1") console.log(JSON.stringify(twelve))
      assert.deepStrictEqual(twelve.venues, [{ exchange: "alpha", symbol: "BTCUSDT" }, { exchange: "beta", symbol: "BTCUSDT" }])
      assert.deepStrictEqual(twelve.left_out.map((l) => [l.exchange, l.symbol, l.incomplete.map((i) => [i.reason, i.gap_id, i.detail])]), [
        ["delta", "BTC-USD-SWAP", [["not_live", null, "trades stream disconnected (socket closed) from 2026-01-05T12:01:30.000Z to 2026-01-05T12:02:30.000Z (stream coverage)"]]],
        ["gamma", "BTCUSDT", [["gap", "gamma-open", "trades gap (disconnect), open, from 2026-01-05T11:58:00.000Z to now (open)"]]]
      ])
      // alpha and beta: 5 x 1,000 USD each = 10,000 USD, 100 coins; but not complete: gamma and delta are missing.
      assert.deepStrictEqual([twelve.complete, twelve.volume_usd, twelve.volume_base], [false, 10_000, 100])
      // gamma's open gap also reaches 11:55 (from 11:58) and 12:05 (the bucket in progress): it is left out there too;
      // delta's 11:55 bucket is its 11:59 bar, whole.
      assert.deepStrictEqual(aggregates.map((a) => [a.start, a.venues.map((v) => v.exchange), a.left_out.map((l) => l.exchange), a.complete]), [
        [iso(at(-5, 0)), ["delta"], ["gamma"], false],
        [iso(noon), ["alpha", "beta"], ["delta", "gamma"], false],
        [iso(at(5, 0)), [], ["gamma"], false]
      ])

      // Per instrument, gamma's and delta's 12:00 buckets are there, with no minute, and say why.
      const per = (yield* fiveMinutes(false, now)).bars.filter((b) => b.start === iso(noon))
      assert.deepStrictEqual(per.map((b) => [b.exchange, b.symbol, b.base, b.minutes, b.volume_usd, b.complete, b.incomplete.map((i) => i.reason)]), [
        ["alpha", "BTCUSDT", "BTC", 5, 5000, true, []],
        ["beta", "BTCUSDT", "BTC", 5, 5000, true, []],
        ["delta", "BTC-USD-SWAP", "BTC", 0, 0, false, ["not_live"]],
        ["deribit", "BTC-27DEC26-100000-C", "BTC", 0, 0, false, ["gap"]],
        ["gamma", "BTCUSDT", "BTC", 0, 0, false, ["gap"]]
      ])

      // delta's outage repaired and verified over 12:01:20 .. 12:02:40 (its trades fetched back, none in 12:00 .. 12:05):
      // the coverage's hole is filled, delta drops out of 12:00's left_out.
      yield* sql`INSERT INTO data_gaps (id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata)
        VALUES ('delta-verified', 'delta', 'trades', 'BTC-USD-SWAP', '2026-01-05 12:01:20', '2026-01-05 12:02:40', 'disconnect', 0, 'verified', 0, '{}'::jsonb)`
      // kappa: down 12:01:00 .. 12:01:30, its verified gap ending at the first trade after, stamped 12:01:29 by the
      // venue: within the 2 s grace of the reconnect (12:01:30 - 2 s = 12:01:28), so the repair covers the outage too.
      yield* sql`INSERT INTO stream_coverage (id, run_id, exchange, channel, symbol, state, detail, since, until, closed)
        VALUES ('run1_kappa_down', 'run1', 'kappa', 'trades', 'BTCUSDT', 'disconnected', NULL, '2026-01-05 12:01:00', '2026-01-05 12:01:30', TRUE)`
      yield* sql`INSERT INTO data_gaps (id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata)
        VALUES ('kappa-verified', 'kappa', 'trades', 'BTCUSDT', '2026-01-05 12:00:50', '2026-01-05 12:01:29', 'disconnect', 0, 'verified', 0, '{}'::jsonb)`
      const repaired = (yield* fiveMinutes(true, now)).aggregates.find((a) => a.start === iso(noon))!
      assert.deepStrictEqual(repaired.left_out.map((l) => l.exchange), ["gamma"])
      // The same outage with its gap ending at 12:01:27, beyond the grace: kappa is left out, not live.
      yield* sql`UPDATE data_gaps SET gap_end = '2026-01-05 12:01:27' WHERE id = 'kappa-verified'`
      const short = (yield* fiveMinutes(true, now)).aggregates.find((a) => a.start === iso(noon))!
      assert.deepStrictEqual(short.left_out.map((l) => [l.exchange, l.incomplete.map((i) => i.reason)]), [["gamma", ["gap"]], ["kappa", ["not_live"]]])
    }).pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped), { timeout: 60_000 })

  it.live("a minute partial only by a reconnect is complete once a verified trades gap spans it from its start to the reconnect", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* truncateAll
      const sql = yield* SqlClient.SqlClient
      // Each venue's connection came back at 12:01:20: its 12:01 bar was watched from then only.
      const resumed = "partial minute: connection resumed at 2026-01-05T12:01:20.000Z"
      // As the processor writes it: a connection back at 12:01:20 after one broke, a trade at 12:01:25.
      const live = processor(btcusdt)
      live.bars.resumed(["BTCUSDT"], at(1, 20), true)
      run(live, [trade(btcusdt, "r1", at(1, 25), 100, 1, "buy")], at(1, 26))
      assert.deepStrictEqual(ticked(live, at(2, 5)).trade_bars.map((r) => [r.observedWhole, r.partialReason]), [[false, resumed]])
      const venues = ["epsilon", "zeta", "eta", "theta"]
      yield* insertRows("trade_bars", venues.map((v) => minuteBar(v, "BTCUSDT", 1, 100, 1000, { observedWhole: false, partialReason: resumed })))
      // The reconnect's trades gaps: from the last trade before the drop to the first after it.
      const gap = (venue: string, from: string, to: string) =>
        sql`INSERT INTO data_gaps (id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata)
          VALUES (${`${venue}-gap`}, ${venue}, 'trades', 'BTCUSDT', ${from}::timestamp, ${to}::timestamp, 'disconnect', 3, 'open', 0, '{}'::jsonb)`
      yield* gap("epsilon", "2026-01-05 12:00:45", "2026-01-05 12:01:21") // spans 12:01:00 .. 12:01:20
      yield* gap("zeta", "2026-01-05 12:01:05", "2026-01-05 12:01:21") //    starts after the minute: 12:01:00 .. 12:01:05 is not in it
      yield* gap("eta", "2026-01-05 12:00:45", "2026-01-05 12:01:17") //     ends 3 s before the reconnect: more than the 2 s grace
      yield* gap("theta", "2026-01-05 12:00:45", "2026-01-05 12:01:19") //   its first trade stamped 1 s before the reconnect: within the grace
      const minute12h01 = (now: number) =>
        bars({ symbol: "BTC", hours: 1, interval: "1m", aggregate: false, limit: 20 }).pipe(
          Effect.provide(frozenClock(now)),
          Effect.map((answer) => answer.bars.filter((b) => b.start === iso(at(1, 0))))
        )

      // While the gaps are open, every 12:01 is partial and overlapped by its gap.
      const open = yield* minute12h01(at(10, 0))
      assert.deepStrictEqual(open.map((b) => [b.exchange, b.complete, b.incomplete.map((i) => [i.reason, i.gap_id]), b.repaired]), [...venues].sort().map((v) => [
        v, false, [["partial_minute", null], ["gap", `${v}-gap`]], []
      ]))

      // The repairs fetched every trade of the gaps back (merged by the writer: the bars' figures are not this test's).
      yield* sql`UPDATE data_gaps SET repair_status = 'verified', repaired_count = 3`
      const verified = yield* minute12h01(at(10, 0))
      assert.deepStrictEqual(verified.map((b) => [b.exchange, b.complete, b.incomplete.map((i) => i.reason), b.repaired.map((r) => r.gap_id)]), [
        ["epsilon", true, [], ["epsilon-gap"]],
        ["eta", false, ["partial_minute"], []], //   12:01:17 < 12:01:20 - 2 s = 12:01:18
        ["theta", true, [], ["theta-gap"]], //      12:01:19 >= 12:01:18
        ["zeta", false, ["partial_minute"], []] //  12:01:05 > 12:01:00
      ])
      if (process.env.BARS_PRINT === "1") console.log(JSON.stringify(verified[0]))
      assert.deepStrictEqual(verified[0]!.repaired, [{
        minute: iso(at(1, 0)),
        gap_id: "epsilon-gap",
        detail: `${resumed}; its unobserved part 2026-01-05T12:01:00.000Z .. 2026-01-05T12:01:20.000Z lies in trades gap ` +
          "2026-01-05T12:00:45.000Z .. 2026-01-05T12:01:21.000Z, verified: its trades were fetched back and merged"
      }])
      // The aggregate of 12:01 sums the two made whole: 2 x 1,000 USD.
      const [aggregate] = (yield* bars({ symbol: "BTC", hours: 1, interval: "1m", aggregate: true, limit: 20 }).pipe(Effect.provide(frozenClock(at(10, 0))))).aggregates
      assert.deepStrictEqual([aggregate!.start, aggregate!.venues.map((v) => v.exchange), aggregate!.left_out.map((l) => l.exchange), aggregate!.volume_usd], [
        iso(at(1, 0)), ["epsilon", "theta"], ["eta", "zeta"], 2000
      ])
    }).pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped), { timeout: 60_000 })
})
