/** The Binance normalizer on every recorded real frame, and on documented formats the recordings lack. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { NormalizedRecord } from "../src/domain/records.ts"
import { RowBatch } from "../src/domain/rows.ts"
import { defaultPipelineSettings, makeProcessor, makeVenueRuntime } from "../src/pipeline/runtime.ts"
import { binance, binanceFutures } from "../src/venues/binance/index.ts"
import { binanceFutures as futuresRecording, binanceSpot as spotRecording } from "./support/fixtures.ts"

const decodeAll = (decode: typeof binance.decodeFrame, frames: ReadonlyArray<string>) => {
  const out: Array<NormalizedRecord> = []
  let errors = 0
  for (const frame of frames) if (decode(frame, out) !== undefined) errors++
  return { out, errors }
}

describe("binance normalizer", () => {
  it("decodes every recorded spot and futures frame without error", () => {
    for (const [venue, recording] of [[binance, spotRecording()], [binanceFutures, futuresRecording()]] as const) {
      const frames = recording.frames.map((f) => f.text)
      const { out, errors } = decodeAll(venue.decodeFrame, frames)
      assert.strictEqual(errors, 0)
      const depthFrames = frames.filter((f) => f.includes("@depth@100ms")).length
      const tradeFrames = frames.filter((f) => f.includes("@aggTrade")).length
      assert.strictEqual(out.filter((r) => r.kind === "book_delta").length, depthFrames)
      assert.strictEqual(out.filter((r) => r.kind === "trade").length, tradeFrames)
    }
  })

  it("maps an aggTrade field by field (recorded futures frame)", () => {
    const frame = futuresRecording().frames.map((f) => f.text).find((f) => f.includes("@aggTrade"))!
    const data = JSON.parse(frame).data
    const out: Array<NormalizedRecord> = []
    assert.isUndefined(binanceFutures.decodeFrame(frame, out))
    assert.deepStrictEqual(out, [{
      kind: "trade",
      venue: "binance-futures",
      symbol: data.s,
      tradeId: String(data.a),
      sequence: data.a,
      price: Number(data.p),
      size: Number(data.q),
      side: data.m ? "sell" : "buy",
      timestamp: data.T,
      details: { first_trade_id: data.f, last_trade_id: data.l, fills: data.l - data.f + 1, source: "aggTrade" }
    }])
  })

  it("keeps spot U/u and futures pu on depth deltas", () => {
    const spot = spotRecording().frames.map((f) => f.text).find((f) => f.includes("@depth@100ms"))!
    const futures = futuresRecording().frames.map((f) => f.text).find((f) => f.includes("@depth@100ms"))!
    const out: Array<NormalizedRecord> = []
    binance.decodeFrame(spot, out)
    binanceFutures.decodeFrame(futures, out)
    const [s, f] = out as Array<Extract<NormalizedRecord, { kind: "book_delta" }>>
    const sd = JSON.parse(spot).data
    const fd = JSON.parse(futures).data
    assert.strictEqual(s!.firstSequence, sd.U)
    assert.strictEqual(s!.lastSequence, sd.u)
    assert.isUndefined(s!.previousSequence)
    assert.strictEqual(f!.previousSequence, fd.pu)
    assert.deepStrictEqual(f!.bids, fd.b.map(([p, q]: [string, string]) => [Number(p), Number(q)]))
  })

  it("reads markPrice (documented format): rate yes, predicted rate never the settle price", () => {
    const frame = JSON.stringify({
      stream: "btcusdt@markPrice@1s",
      data: { e: "markPriceUpdate", E: 1562305380000, s: "BTCUSDT", p: "11794.15000000", i: "11784.62659091", P: "11784.25641265", r: "0.00038167", T: 1562306400000 }
    })
    const out: Array<NormalizedRecord> = []
    assert.isUndefined(binanceFutures.decodeFrame(frame, out))
    const funding = out[0] as Extract<NormalizedRecord, { kind: "funding" }>
    assert.strictEqual(funding.rate, 0.00038167)
    assert.strictEqual(funding.predictedRate, null)
    assert.strictEqual(funding.markPrice, 11794.15)
    assert.strictEqual(funding.nextFundingTime, 1562306400000)
    assert.strictEqual(funding.details.estimated_settle_price, 11784.25641265)
  })

  it("stores no funding for a dated contract: its markPrice carries r \"\" and T 0 (documented), a mark price only", () => {
    const frame = JSON.stringify({
      stream: "btcusdt_261225@markPrice@1s",
      data: { e: "markPriceUpdate", E: 1_790_000_000_000, s: "BTCUSDT_261225", p: "97000.10000000", i: "95000.20000000", P: "96950.00000000", r: "", T: 0 }
    })
    const out: Array<NormalizedRecord> = []
    assert.isUndefined(binanceFutures.decodeFrame(frame, out))
    assert.deepStrictEqual(out, [{ kind: "mark_price", venue: "binance-futures", symbol: "BTCUSDT_261225", markPrice: 97000.1, indexPrice: 95000.2, timestamp: 1_790_000_000_000 }])
    // Through the processor: no funding row, and the mark price values the contract's open interest.
    const runtime = makeVenueRuntime(defaultPipelineSettings, () => Effect.void)
    runtime.instruments.add({ venue: "binance-futures", symbol: "BTCUSDT_261225", base: "BTC", quote: "USDT", kind: "future", contractSize: 1, inverse: false })
    const processor = makeProcessor(runtime, "binance-futures", { sequenceRule: undefined, requestSnapshot: () => undefined })
    const batch = new RowBatch()
    processor.process([...out, { kind: "open_interest", venue: "binance-futures", symbol: "BTCUSDT_261225", openInterest: 2, timestamp: 1_790_000_000_500 }], 1_790_000_001_000, batch)
    assert.strictEqual(batch.funding_rates.length, 0)
    assert.strictEqual(batch.open_interest[0]!.openInterestUsd, 194_000.2)
  })

  it("reads forceOrder (documented format) as a liquidation sized by filled quantity", () => {
    const frame = JSON.stringify({
      stream: "btcusdt@forceOrder",
      data: {
        e: "forceOrder",
        E: 1568014460893,
        o: { s: "BTCUSDT", S: "SELL", o: "LIMIT", f: "IOC", q: "0.014", p: "9910", ap: "9910", X: "FILLED", l: "0.014", z: "0.014", T: 1568014460893 }
      }
    })
    const out: Array<NormalizedRecord> = []
    assert.isUndefined(binanceFutures.decodeFrame(frame, out))
    const liquidation = out[0] as Extract<NormalizedRecord, { kind: "liquidation" }>
    assert.strictEqual(liquidation.side, "sell")
    assert.strictEqual(liquidation.averagePrice, 9910)
    assert.strictEqual(liquidation.filledSize, 0.014)
    assert.strictEqual(liquidation.details.sampled, true)
    assert.strictEqual(liquidation.sampled, true, "the minute bars' liquidations_sampled")
  })

  it("turns malformed frames, unknown types and renamed fields into typed errors, and keeps going", () => {
    const good = futuresRecording().frames.map((f) => f.text).find((f) => f.includes("@aggTrade"))!
    const renamed = good.replace('"p":', '"price":')
    const cases = ["{not json", JSON.stringify({ stream: "x", data: { e: "somethingNew", s: "X" } }), renamed, "42"]
    const out: Array<NormalizedRecord> = []
    const errors = cases.map((frame) => binanceFutures.decodeFrame(frame, out))
    assert.deepStrictEqual(errors.map((e) => e?._tag), ["DecodeError", "DecodeError", "DecodeError", "DecodeError"])
    assert.deepStrictEqual(errors.map((e) => e?.channel), ["unknown", "somethingNew", "aggTrade", "unknown"])
    assert.strictEqual(out.length, 0)
    assert.isUndefined(binanceFutures.decodeFrame(good, out))
    assert.strictEqual(out.length, 1)
  })
})
