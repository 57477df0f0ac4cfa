/**
 * Validation at the edge: a record with a non-finite number, or a time before
 * 2009 or more than a day ahead of the receiving clock, never leaves the
 * normalizer's side of the pipeline. It is a counted decode error on every path
 * (frames, REST answers, repaired trades, replays), and the good records beside
 * it go on. OKX funding numbers are read strictly.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Result, Schema } from "effect"
import type { NormalizedRecord, Trade } from "../src/domain/records.ts"
import { NormalizedRecord as NormalizedRecordSchema } from "../src/domain/records.ts"
import { RowBatch } from "../src/domain/rows.ts"
import { eventTimeFields, invalidRecord, scheduledTimeFields } from "../src/domain/validate.ts"
import { defaultPipelineSettings, makeFrameHandler, makeProcessor, makeVenueRuntime, type PipelineSettings } from "../src/pipeline/runtime.ts"
import { emitRecords, emitRepaired } from "../src/pipeline/venue-kit.ts"
import { replayRecording } from "../src/replay/replay.ts"
import { RecentTrades } from "../src/venues/bybit/wire.ts"
import { deribit } from "../src/venues/deribit/index.ts"
import { okx } from "../src/venues/okx/index.ts"
import type { VenueDefinition } from "../src/venues/venue.ts"
import { pinnedClock } from "./support/clock.ts"

const now = Date.UTC(2026, 4, 1, 12, 0, 0)
const day = 86_400_000
const settings: PipelineSettings = { ...defaultPipelineSettings, thresholds: { byAsset: {}, otherAssets: 1 } }

const counterOf = (id: string, feed: string) =>
  Effect.map(Metric.snapshot, (snapshots) => {
    const found = snapshots.find((m) => m.id === id && m.attributes?.feed === feed)
    return found === undefined ? 0 : Number((found.state as { count: number }).count)
  })

const trade = (overrides: Partial<Trade> = {}): Trade => ({
  kind: "trade",
  venue: "test",
  symbol: "BTC-USD",
  tradeId: "1",
  price: 60_000,
  size: 2,
  side: "buy",
  timestamp: now - 1000,
  details: {},
  ...overrides
})

/** A Deribit trades push (the documented format) holding these trades. */
const deribitTrades = (trades: ReadonlyArray<string>) =>
  `{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.raw","data":[${trades.join(",")}]}}`
const deribitTrade = (seq: number, fields: { readonly price?: string; readonly amount?: string; readonly timestamp?: number }) =>
  `{"trade_seq":${seq},"trade_id":"T${seq}","timestamp":${fields.timestamp ?? now - 1000},"tick_direction":0,"price":${fields.price ?? "60000"},"mark_price":60000,"index_price":60000,"instrument_name":"BTC-PERPETUAL","direction":"buy","amount":${fields.amount ?? "1000"}}`
/** One good trade (T1) and four no venue could have meant, in one frame. */
const mixedFrame = deribitTrades([
  deribitTrade(1, {}),
  deribitTrade(2, { price: "1e400" }),
  deribitTrade(3, { amount: "1e400" }),
  deribitTrade(4, { timestamp: Date.UTC(2008, 5, 1) }),
  deribitTrade(5, { timestamp: now + 2 * day })
])

/** A test venue whose frames are records as JSON, with "NaN" and "Infinity" read as those numbers. */
const recordsVenue: VenueDefinition = {
  ...deribit,
  id: "test",
  decodeFrame: (frame, out) => {
    const records = JSON.parse(frame, (_, value) => (value === "NaN" ? Number.NaN : value === "Infinity" ? Number.POSITIVE_INFINITY : value))
    out.push(...(records as Array<NormalizedRecord>))
    return undefined
  },
  guessInstrument: (symbol) => ({ venue: "test", symbol, base: "BTC", quote: "USD", kind: "spot", contractSize: 1, inverse: false })
}

describe("the shared check", () => {
  it("knows every time field of every record kind in records.ts", () => {
    const timeLike = new Set<string>()
    for (const member of NormalizedRecordSchema.members) {
      // A time is named so: `timestamp`, `...Time`, `...Date`, `expiry` (not `daysToExpiry`, a duration).
      for (const key of Object.keys(member.fields)) if (/^timestamp$|Time$|Date$|^expiry$/.test(key)) timeLike.add(key)
    }
    assert.sameMembers([...timeLike], [...eventTimeFields, ...scheduledTimeFields])
  })

  it("refuses non-finite numbers anywhere in a record and times outside 2009 .. a day ahead", () => {
    assert.isUndefined(invalidRecord(trade(), now))
    assert.strictEqual(invalidRecord(trade({ price: Number.NaN }), now), "price is NaN")
    assert.strictEqual(invalidRecord(trade({ size: Number.POSITIVE_INFINITY }), now), "size is Infinity")
    assert.strictEqual(invalidRecord(trade({ quoteUsdRate: Number.NaN }), now), "quoteUsdRate is NaN", "an optional field when present")
    assert.strictEqual(invalidRecord(trade({ details: { fills: Number.NaN } }), now), "details.fills is NaN")
    assert.match(invalidRecord(trade({ timestamp: Date.UTC(2008, 11, 31, 23, 59, 59) }), now)!, /before 2009/)
    assert.isUndefined(invalidRecord(trade({ timestamp: Date.UTC(2009, 0, 1) }), now))
    assert.match(invalidRecord(trade({ timestamp: now + 2 * day }), now)!, /ahead of the clock/)
    assert.isUndefined(invalidRecord(trade({ timestamp: now + day }), now), "a day of clock skew is allowed")
    assert.match(invalidRecord(trade({ timestamp: now + day + 1 }), now)!, /ahead/)
    assert.match(invalidRecord(trade({ timestamp: 0 }), now)!, /before 2009/)
    assert.match(invalidRecord(trade({ timestamp: -1 }), now)!, /before 2009/)
    // Beyond what a Date holds: described, not thrown.
    assert.match(invalidRecord(trade({ timestamp: 1e300 }), now)!, /1e\+300/)
    const book = { kind: "book_delta", venue: "test", symbol: "BTC-USD", firstSequence: 1, lastSequence: 1, bids: [[100, 1], [99, Number.POSITIVE_INFINITY]], asks: [], timestamp: now } as const
    assert.strictEqual(invalidRecord(book, now), "bids[1] is [99, Infinity]")
    assert.isUndefined(invalidRecord({ ...book, bids: [], timestamp: 0 }, now), "a book's 0 is a time not sent")
    const quote: NormalizedRecord = {
      kind: "option_quote", venue: "test", symbol: "BTC-26JUN26-60000-C", currency: "BTC", expiry: Date.UTC(2027, 11, 31), strike: 60_000, optionType: "call",
      markPrice: 0.05, markIv: 50, bidIv: null, askIv: null, bestBid: null, bestAsk: null,
      greeks: { delta: 0.5, gamma: Number.NaN, vega: 1, theta: -1, rho: 0.1 }, openInterest: 10, underlyingPrice: 60_000, underlyingIndex: null, indexPrice: 60_000, timestamp: now
    }
    assert.strictEqual(invalidRecord(quote, now), "greeks.gamma is NaN")
    assert.isUndefined(invalidRecord({ ...quote, greeks: null }, now), "an expiry a year and a half ahead is fine")
    assert.match(invalidRecord({ ...quote, greeks: null, expiry: Date.UTC(2008, 0, 1) }, now)!, /expiry .* before 2009/)
    assert.match(invalidRecord({ ...quote, greeks: null, expiry: now + 11 * 365 * day }, now)!, /expiry/)
    const funding: NormalizedRecord = { kind: "funding", venue: "test", symbol: "BTC-PERP", rate: 0.0001, predictedRate: null, markPrice: null, indexPrice: null, nextFundingTime: null, timestamp: now, details: {} }
    assert.isUndefined(invalidRecord(funding, now))
    assert.isUndefined(invalidRecord({ ...funding, nextFundingTime: now + 8 * 3_600_000 }, now))
    assert.strictEqual(invalidRecord({ ...funding, markPrice: Number.NaN }, now), "markPrice is NaN")
    assert.match(invalidRecord({ ...funding, nextFundingTime: Number.NaN }, now)!, /nextFundingTime is NaN/)
  })
})

describe("every path counts a refused record as a decode error and keeps the good ones", () => {
  it.effect("frames: a real Deribit frame with a good trade and four impossible ones", () =>
    Effect.gen(function*() {
      const batches: Array<RowBatch> = []
      const emit = (batch: RowBatch) => Effect.sync(() => void batches.push(batch))
      const runtime = makeVenueRuntime(settings, emit)
      runtime.instruments.add(deribit.guessInstrument("BTC-PERPETUAL")!)
      const processor = makeProcessor(runtime, "deribit", { sequenceRule: deribit.sequenceRule, requestSnapshot: () => undefined })
      const feed = "deribit/validate-frames"
      yield* makeFrameHandler(deribit, processor, feed, emit)([mixedFrame], now)
      const stored = batches.flatMap((b) => b.large_trades)
      assert.deepStrictEqual(stored.map((r) => r.tradeId), ["T1"])
      assert.strictEqual(stored[0]!.price, 60_000)
      assert.strictEqual(stored[0]!.timestamp, now - 1000)
      assert.strictEqual(yield* counterOf("feed_decode_errors_total", feed), 4)
      assert.strictEqual(yield* counterOf("feed_records_total", feed), 1)
    }))

  it.effect("frames: NaN price, Infinity size, a 2008 time and a time two days ahead beside a good record of the same frame", () =>
    Effect.gen(function*() {
      const batches: Array<RowBatch> = []
      const emit = (batch: RowBatch) => Effect.sync(() => void batches.push(batch))
      const runtime = makeVenueRuntime(settings, emit)
      runtime.instruments.add(recordsVenue.guessInstrument("BTC-USD")!)
      const processor = makeProcessor(runtime, "test", { sequenceRule: undefined, requestSnapshot: () => undefined })
      const feed = "test/validate-nan"
      const frame = JSON.stringify([
        trade({ tradeId: "bad-price", price: "NaN" as unknown as number }),
        trade({ tradeId: "bad-size", size: "Infinity" as unknown as number }),
        trade({ tradeId: "2008", timestamp: Date.UTC(2008, 0, 1) }),
        trade({ tradeId: "ahead", timestamp: now + 2 * day }),
        trade({ tradeId: "good" })
      ])
      yield* makeFrameHandler(recordsVenue, processor, feed, emit)([frame], now)
      assert.deepStrictEqual(batches.flatMap((b) => b.large_trades).map((r) => r.tradeId), ["good"])
      assert.strictEqual(yield* counterOf("feed_decode_errors_total", feed), 4)
      assert.strictEqual(processor.counters.invalid, 4)
      assert.match(processor.lastRefused!.reason, /ahead of the clock/)
    }))

  it.effect("finite figures whose USD value overflows build no row: counted unvalued, the good trade stored", () =>
    Effect.gen(function*() {
      const batches: Array<RowBatch> = []
      const emit = (batch: RowBatch) => Effect.sync(() => void batches.push(batch))
      const runtime = makeVenueRuntime(settings, emit)
      runtime.instruments.add(recordsVenue.guessInstrument("BTC-USD")!)
      const processor = makeProcessor(runtime, "test", { sequenceRule: undefined, requestSnapshot: () => undefined })
      // 1e200 x 1e200 is past Number.MAX_VALUE (1.8e308): Infinity USD, which no column holds.
      const frame = JSON.stringify([trade({ tradeId: "huge", price: 1e200, size: 1e200 }), trade({ tradeId: "good" })])
      yield* makeFrameHandler(recordsVenue, processor, "test/validate-overflow", emit)([frame], now)
      assert.deepStrictEqual(batches.flatMap((b) => b.large_trades).map((r) => r.tradeId), ["good"])
      assert.strictEqual(processor.counters.unvalued, 1)
      assert.strictEqual(processor.counters.invalid, 0)
    }))

  it.live("REST answers and repaired trades, at the service's clock", () =>
    Effect.gen(function*() {
      const batches: Array<RowBatch> = []
      const runtime = makeVenueRuntime(settings, (batch) => Effect.sync(() => void batches.push(batch)))
      runtime.instruments.add(recordsVenue.guessInstrument("BTC-USD")!)
      const processor = makeProcessor(runtime, "test-rest", { sequenceRule: undefined, requestSnapshot: () => undefined })
      const funding = (symbol: string, markPrice: number): NormalizedRecord => ({
        kind: "funding", venue: "test-rest", symbol, rate: 0.0001, predictedRate: null, markPrice, indexPrice: null, nextFundingTime: now + 3_600_000, timestamp: now - 1000, details: {}
      })
      yield* emitRecords(processor, runtime, [funding("BAD", Number.NaN), funding("GOOD", 60_000)])
      assert.deepStrictEqual(batches.flatMap((b) => b.funding_rates).map((r) => r.symbol), ["GOOD"])
      assert.strictEqual(yield* counterOf("feed_decode_errors_total", "test-rest/rest"), 1)
      const repaired = [trade({ venue: "test-rest", tradeId: "ahead", timestamp: now + 3 * day }), trade({ venue: "test-rest", tradeId: "repaired" })]
      runtime.instruments.add({ ...recordsVenue.guessInstrument("BTC-USD")!, venue: "test-rest" })
      yield* emitRepaired(processor, runtime, repaired)
      assert.deepStrictEqual(batches.flatMap((b) => b.large_trades).map((r) => r.tradeId), ["repaired"])
      assert.strictEqual(yield* counterOf("feed_decode_errors_total", "test-rest/repair"), 1)
    }).pipe(Effect.provide(pinnedClock(now).layer)))

  it.effect("replay: the same frame recorded, refused records counted as decode errors", () =>
    Effect.gen(function*() {
      const built: Array<RowBatch> = []
      const stats = yield* replayRecording(deribit, { frames: [{ connection: "ws", receivedAt: now, text: mixedFrame }], sent: [], rest: [] }, settings, (batch) =>
        Effect.sync(() => void built.push(batch)))
      assert.strictEqual(stats.refusedRecords, 4)
      assert.strictEqual(stats.decodeErrors, 4)
      assert.strictEqual(stats.rows.large_trades, 1)
      assert.deepStrictEqual(built.flatMap((b) => b.large_trades).map((r) => r.tradeId), ["T1"])
    }))
})

describe("strict numbers in the venues' readers", () => {
  const funding = (ts: string) =>
    `{"arg":{"channel":"funding-rate","instId":"BTC-USD-SWAP"},"data":[{"fundingRate":"0.0001875","fundingTime":"1700726400000","instId":"BTC-USD-SWAP","instType":"SWAP","method":"next_period","nextFundingTime":"1700755200000","ts":"${ts}"}]}`

  it("OKX funding: \"ts\":\"oops\" is a decode error naming the field", () => {
    const out: Array<NormalizedRecord> = []
    const error = okx.decodeFrame(funding("oops"), out)
    assert.isDefined(error)
    assert.strictEqual(error!.channel, "funding-rate")
    assert.match(error!.detail, /ts/)
    assert.isUndefined(error!.dropped)
    assert.lengthOf(out, 0)
    for (const field of ["fundingRate", "fundingTime", "nextFundingTime"]) {
      const frame = funding("1700724675402").replace(new RegExp(`"${field}":"[^"]*"`), `"${field}":"oops"`)
      assert.match(okx.decodeFrame(frame, out)?.detail ?? "", new RegExp(field), field)
    }
    assert.lengthOf(out, 0)
  })

  it.effect("OKX funding replayed: \"ts\":\"oops\" then a valid frame; the first is a decode error, the second is stored", () =>
    Effect.gen(function*() {
      const built: Array<RowBatch> = []
      const recording = {
        frames: [
          { connection: "ws", receivedAt: 1700724675000, text: funding("oops") },
          { connection: "ws", receivedAt: 1700724676000, text: funding("1700724675402") }
        ],
        sent: [],
        rest: []
      }
      const stats = yield* replayRecording(okx, recording, settings, (batch) => Effect.sync(() => void built.push(batch)))
      assert.strictEqual(stats.decodeErrors, 1)
      const rows = built.flatMap((b) => b.funding_rates)
      assert.strictEqual(stats.rows.funding_rates, 1)
      assert.lengthOf(rows, 1)
      // Figures from the frame itself: rate 0.0001875, stamped at its ts, next settlement at fundingTime.
      assert.deepInclude(rows[0]!, { symbol: "BTC-USD-SWAP", rate: 0.0001875, timestamp: 1700724675402, nextFundingTime: 1700726400000 })
    }))

  it("OKX funding: one unreadable instrument in a push is dropped and counted, its neighbour kept; \"ts\":\"\" is not sent", () => {
    const element = (instId: string, rate: string, ts: string) =>
      `{"fundingRate":"${rate}","fundingTime":"1700726400000","instId":"${instId}","instType":"SWAP","method":"next_period","nextFundingTime":"1700755200000","ts":"${ts}"}`
    const out: Array<NormalizedRecord> = []
    const error = okx.decodeFrame(`{"arg":{"channel":"funding-rate"},"data":[${element("ETH-USD-SWAP", "", "1700724675402")},${element("BTC-USD-SWAP", "0.0001875", "")}]}`, out)
    assert.strictEqual(error?.dropped, 1, "the rate-less element, counted")
    assert.match(error!.detail, /fundingRate/)
    assert.lengthOf(out, 1)
    // "" is "not sent": 0 here, stamped at receipt by the shared check (tested below), never the next settlement.
    assert.deepInclude(out[0]!, { symbol: "BTC-USD-SWAP", rate: 0.0001875, timestamp: 0, nextFundingTime: 1700726400000 })
  })

  it.effect("a funding reading with next funding time 0 keeps its rate, with the time null (not published)", () =>
    Effect.gen(function*() {
      const runtime = makeVenueRuntime(settings, () => Effect.void)
      runtime.instruments.add(recordsVenue.guessInstrument("BTC-USD")!)
      const processor = makeProcessor(runtime, "test", { sequenceRule: undefined, requestSnapshot: () => undefined })
      const batch = new RowBatch()
      processor.process([{ kind: "funding", venue: "test", symbol: "BTC-USD", rate: 0.0001, predictedRate: null, markPrice: null, indexPrice: null, nextFundingTime: 0, timestamp: now - 1000, details: {} }], now, batch)
      assert.lengthOf(batch.funding_rates, 1)
      assert.deepInclude(batch.funding_rates[0]!, { rate: 0.0001, nextFundingTime: null })
    }))

  it("Bybit recent trades: a time that is not a number refuses the answer", () => {
    const answer = (time: string) => ({
      retCode: 0, retMsg: "OK",
      result: { category: "linear", list: [{ execId: "e1", symbol: "BTCUSDT", price: "65000", size: "0.1", side: "Buy", time, isBlockTrade: false }] }
    })
    const decode = Schema.decodeUnknownResult(RecentTrades)
    assert.isTrue(Result.isFailure(decode(answer("oops"))))
    const good = decode(answer("1715000000000"))
    assert.isTrue(Result.isSuccess(good))
    if (Result.isSuccess(good)) assert.strictEqual(good.success.result.list[0]!.time, 1715000000000)
  })
})
