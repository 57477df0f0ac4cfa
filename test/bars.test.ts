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
import { Deferred, Effect, Layer } from "effect"
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
import { embeddedLayer, postgresLayer } from "../src/storage/database.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { bars, streamReplay } from "../src/storage/queries.ts"
import { Writer, type WriterOptions } from "../src/storage/writer.ts"
import { eventsOf } from "../src/stream/hub.ts"
import { pinnedClock } from "./support/clock.ts"
import { eventually, freePort, getData, postgresUrl, startService, truncateAll } from "./support/service.ts"

const noon = Date.UTC(2026, 0, 5, 12, 0, 0)
const at = (minute: number, second: number) => noon + minute * 60_000 + second * 1000
const iso = (ms: number) => new Date(ms).toISOString()

// A linear perpetual quoted in USDT (taken at par): size in coins, USD = price x size.
const btcusdt: Instrument = { venue: "binance-futures", symbol: "BTCUSDT", base: "BTC", quote: "USDT", kind: "perpetual", contractSize: 1, inverse: false }
// An inverse perpetual counted in USD: USD = size, coins = size / price.
const perpetual: Instrument = { venue: "deribit", symbol: "BTC-PERPETUAL", base: "BTC", quote: "USD", kind: "perpetual", contractSize: 1, inverse: true }

const processor = (instrument: Instrument, continuity?: TradeContinuity) => {
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
    continuity
  })
}

const trade = (instrument: Instrument, tradeId: string, time: number, price: number, size: number, side: "buy" | "sell", extra: Partial<Trade> = {}): Trade => ({
  kind: "trade", venue: instrument.venue, symbol: instrument.symbol, tradeId, price, size, side, timestamp: time, details: {}, ...extra
})
const liquidation = (instrument: Instrument, id: string, time: number, side: "buy" | "sell", price: number, size: number): Liquidation => ({
  kind: "liquidation", venue: instrument.venue, symbol: instrument.symbol, side, price, averagePrice: price, filledSize: size, timestamp: time, id, details: {}
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
      partialReason: "partial minute: collection started at 2026-01-05T12:00:30.000Z", correction: false
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
    // Named by its first and last record and how many: the same frames replayed make the same contribution.
    assert.strictEqual(bar.contribution, "t1|liquidation-L2|7")

    // A trade of minute 12:01 arriving at 12:02:10, after its bar was written: a correction, at once. L1 again
    // (a venue repeating recent liquidations after a subscription) is not counted twice.
    const late = run(p, [trade(btcusdt, "t6", at(1, 30), 95, 1, "sell"), liquidation(btcusdt, "L1", at(1, 30), "sell", 100, 0.5)], at(2, 10)).trade_bars
    assert.deepStrictEqual(late.map((r) => [r.id, r.contribution]), [[bar.id, "t6|t6|1"]])
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
      assert.deepStrictEqual(merged.contributions, ["2|6|3", "7|7|1"], "the second offer of 7's correction added nothing")

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
      assert.deepStrictEqual([replayedA.kind, replayedA.row.trade_count, replayedA.row.volume_usd, replayedA.row.correction], ["bar", 6, 801, false])
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
        sellVolumeUsd: 106, tradeCount: 3, contribution: "a|c|3", correction: false
      })
      // A late trade at 12:00:05, 98 x 1 sold: the new open and low.
      const late = contribution(id, { open: 98, high: 98, low: 98, close: 98, openTime: at(0, 5), closeTime: at(0, 5), volumeBase: 1, volumeUsd: 98, sellVolumeUsd: 98, tradeCount: 1, contribution: "d|d|1" })
      // A liquidation alone (a long, 50 USD): no price.
      const liquidated = contribution(id, { longLiquidationsUsd: 50, liquidationCount: 1, contribution: "liquidation-L|liquidation-L|1" })
      // A trade at 12:00:50 like the close, arriving later: 101 x 1 bought, the new close.
      const tie = contribution(id, { open: 101, high: 101, low: 101, close: 101, openTime: at(0, 50), closeTime: at(0, 50), volumeBase: 1, volumeUsd: 101, buyVolumeUsd: 101, tradeCount: 1, contribution: "e|e|1" })
      yield* insertRows("trade_bars", [live])
      yield* insertRows("trade_bars", [late])
      yield* insertRows("trade_bars", [late]) // the same batch retried
      yield* insertRows("trade_bars", [liquidated, tie, liquidated]) // one batch, one contribution in it twice
      const [row] = yield* sql<Record<string, unknown>>`SELECT open, high, low, close, volume_base, volume_usd, buy_volume_usd, sell_volume_usd,
        trade_count, long_liquidations_usd, liquidation_count, contributions FROM trade_bars WHERE id = ${id}`
      assert.deepStrictEqual(
        [row!.open, row!.high, row!.low, row!.close, row!.volume_base, row!.volume_usd, row!.buy_volume_usd, row!.sell_volume_usd, row!.trade_count, row!.long_liquidations_usd, row!.liquidation_count].map(Number),
        // open 98 (12:00:05), high 105, low 98, close 101 (12:00:50, later), 3 + 1 + 1 coins, 306 + 98 + 101 USD,
        // buys 200 + 101, sells 106 + 98, 3 + 1 + 1 trades, one long liquidation of 50 USD.
        [98, 105, 98, 101, 5, 505, 301, 204, 5, 50, 1]
      )
      assert.deepStrictEqual(row!.contributions, ["a|c|3", "d|d|1", "liquidation-L|liquidation-L|1", "e|e|1"])

      // At 12:10 the latest 11 minutes are 12:00 .. 12:10.
      const answer = yield* bars({ symbol: "BTC", exchange: "merge-test", hours: 1, interval: "1m", aggregate: false, limit: 11 }).pipe(Effect.provide(pinnedClock(at(10, 0)).layer))
      assert.deepStrictEqual(answer.bars.map((b) => [b.start, b.open, b.close, b.vwap, b.volume_delta_usd, b.complete]), [
        [iso(noon), 98, 101, 101, 97, true] // VWAP 505 / 5 = 101; delta 301 - 204 = 97
      ])
      yield* sql`DELETE FROM trade_bars WHERE exchange = 'merge-test'`
    }).pipe(Effect.provide(Layer.fresh(database())), Effect.scoped), { timeout: 60_000 })
})
