/**
 * The Bybit normalizer on the real v5 session of 2026-08-09
 * (sessions/BYBIT.jsonl.zst: linear on connection 2, spot on connection 3),
 * and on Bybit's documented formats where the session has no example
 * (liquidations, a service-restart reset, refused subscriptions). Checks
 * against Bybit's own figures: the books rebuilt from the session agree with
 * the same session's ticker best bid/ask, and our USD open interest
 * (one-sided contracts x mark) with the ticker's `singleOpenInterestValue`.
 */
import { assert, describe, it } from "@effect/vitest"
import { BookSync } from "../src/book/sync.ts"
import type { NormalizedRecord } from "../src/domain/records.ts"
import { baseAssetPattern } from "../src/storage/queries.ts"
import { decodeInstrumentsPage, instrumentFrom } from "../src/venues/bybit/instruments.ts"
import { makeDecoder } from "../src/venues/bybit/normalize.ts"
import { updateIdRule } from "../src/venues/bybit/rules.ts"
import { session } from "./support/fixtures.ts"

const recording = () => session("BYBIT.jsonl.zst")
const framesOf = (connection: string) => recording().frames.filter((f) => f.connection === connection).map((f) => f.text)
const linearFrames = () => framesOf("BYBIT.ws.2")
const spotFrames = () => framesOf("BYBIT.ws.3")

const decodeAll = (venue: string, frames: ReadonlyArray<string>) => {
  const decode = makeDecoder(venue, { openInterestIntervalMs: 0 })
  const records: Array<NormalizedRecord> = []
  const errors: Array<string> = []
  for (const frame of frames) {
    const error = decode(frame, records)
    if (error !== undefined) errors.push(`${error.channel}: ${error.detail}`)
  }
  return { records, errors }
}

const count = (records: ReadonlyArray<NormalizedRecord>, kind: string) => records.filter((r) => r.kind === kind).length

describe("bybit normalizer on the real 2026 session", () => {
  it("the session's connections are the ones we think: 2 is /linear, 3 is /spot", () => {
    const sent = recording().sent
    assert.isTrue(sent.some((s) => s.connection === "BYBIT.ws.2" && s.text.includes("tickers.SOLUSDT")))
    assert.isFalse(sent.some((s) => s.connection === "BYBIT.ws.3" && s.text.includes("SOLUSDT")), "spot subscribed BTC and ETH only")
  })

  it("decodes every frame of both connections without error", () => {
    const linear = decodeAll("bybit-derivatives", linearFrames())
    assert.deepStrictEqual(linear.errors, [])
    assert.strictEqual(count(linear.records, "book_snapshot"), 4)
    assert.strictEqual(count(linear.records, "book_delta"), 1594)
    assert.strictEqual(count(linear.records, "trade"), 327)
    assert.isAbove(count(linear.records, "funding"), 700)
    const spot = decodeAll("bybit", spotFrames())
    assert.deepStrictEqual(spot.errors, [])
    assert.strictEqual(count(spot.records, "book_snapshot"), 2)
    assert.strictEqual(count(spot.records, "book_delta"), 548)
    assert.strictEqual(count(spot.records, "trade"), 20)
    assert.strictEqual(count(spot.records, "funding"), 0, "spot tickers carry no funding")
  })

  it("maps a trade field by field: S is the taker's side", () => {
    const frame = linearFrames().find((f) => f.includes("a9188a0a-82bc-50de-be60-03eedbe3cdd7"))!
    const out: Array<NormalizedRecord> = []
    assert.isUndefined(makeDecoder("bybit-derivatives")(frame, out))
    assert.deepStrictEqual(out, [{
      kind: "trade",
      venue: "bybit-derivatives",
      symbol: "BTCUSDT",
      tradeId: "a9188a0a-82bc-50de-be60-03eedbe3cdd7",
      price: 65114.2,
      size: 0.004,
      side: "sell",
      timestamp: 1786310819680,
      details: { seq: 753843954913 }
    }])
    const block: Array<NormalizedRecord> = []
    makeDecoder("bybit-derivatives")(frame.replace('"BT":false', '"BT":true'), block)
    assert.deepInclude((block[0] as any).details, { block_trade: true })
  })

  it("every book delta follows its predecessor by update id; the books agree with Bybit's own ticker best bid/ask", () => {
    const decode = makeDecoder("bybit-derivatives")
    const resyncs: Array<string> = []
    const books = new BookSync({ venue: "bybit-derivatives", rule: updateIdRule, depth: 20, snapshotIntervalMs: 1e12, maxBuffered: 1000, requestSnapshot: () => undefined, onResync: (s, r) => resyncs.push(`${s}: ${r}`) })
    const tops = new Map<string, Array<{ at: number; bid: number; ask: number }>>()
    const quotes: Array<{ symbol: string; at: number; bid: number; ask: number }> = []
    const merged = new Map<string, Record<string, string>>()
    for (const frame of linearFrames()) {
      const out: Array<NormalizedRecord> = []
      decode(frame, out)
      for (const r of out) {
        if (r.kind !== "book_snapshot" && r.kind !== "book_delta") continue
        if (r.kind === "book_snapshot") books.onSnapshot(r)
        else books.onDelta(r)
        const book = books.status().find((b) => b.symbol === r.symbol)!
        assert.strictEqual(book.state, "live")
        const book2 = books.bookOf(r.symbol)!
        tops.set(r.symbol, [...(tops.get(r.symbol) ?? []), { at: r.timestamp, bid: book2.bids.best()!, ask: book2.asks.best()! }])
      }
      // The ticker's bid1/ask1, merged like every ticker field (a delta carries only what changed).
      const message = JSON.parse(frame)
      if (typeof message.topic === "string" && message.topic.startsWith("tickers.")) {
        const state = { ...(message.type === "snapshot" ? {} : merged.get(message.data.symbol)), ...message.data }
        merged.set(message.data.symbol, state)
        if (message.data.bid1Price !== undefined || message.data.ask1Price !== undefined) {
          quotes.push({ symbol: message.data.symbol, at: message.ts, bid: Number(state.bid1Price), ask: Number(state.ask1Price) })
        }
      }
    }
    assert.deepStrictEqual(resyncs, [], "no delta ever skipped an update id")
    // The two streams are not synchronised: a quote matches the book as it stood within `window` ms of the quote's time.
    const agreeing = (window: number) => quotes.filter((q) => (tops.get(q.symbol) ?? []).some((t) => Math.abs(t.at - q.at) <= window && t.bid === q.bid && t.ask === q.ask)).length
    const comparable = quotes.filter((q) => (tops.get(q.symbol)?.[0]?.at ?? Infinity) <= q.at)
    assert.isAbove(comparable.length, 600)
    assert.strictEqual(agreeing(100), comparable.length, "every ticker quote equals the book within 100 ms (the book's push interval)")
    console.log(`bybit book vs ticker: ${agreeing(0)} of ${comparable.length} quotes equal the book at the same ms, ${agreeing(50)} within 50 ms, ${agreeing(100)} within 100 ms`)
  })

  it("our USD open interest (one-sided contracts x mark) agrees with Bybit's singleOpenInterestValue within 0.1 %", () => {
    const decode = makeDecoder("bybit-derivatives", { openInterestIntervalMs: 0 })
    const merged = new Map<string, Record<string, string>>()
    let checked = 0
    let worst = 0
    for (const frame of linearFrames()) {
      const out: Array<NormalizedRecord> = []
      decode(frame, out)
      const message = JSON.parse(frame)
      if (typeof message.topic !== "string" || !message.topic.startsWith("tickers.")) continue
      const state = { ...(message.type === "snapshot" ? {} : merged.get(message.data.symbol)), ...message.data }
      merged.set(message.data.symbol, state)
      const oi = out.find((r) => r.kind === "open_interest")
      const funding = out.find((r) => r.kind === "funding")
      if (oi === undefined || funding === undefined || funding.kind !== "funding" || oi.kind !== "open_interest") continue
      // What the processor stores for a linear contract (contract size 1 coin).
      const ours = oi.openInterest * 1 * funding.markPrice!
      // One side, as stored (openInterestValue is both sides: twice this).
      const theirs = Number(state.singleOpenInterestValue)
      worst = Math.max(worst, Math.abs(ours - theirs) / theirs)
      checked++
    }
    assert.isAbove(checked, 50)
    assert.isBelow(worst, 0.001)
    console.log(`bybit open interest: ${checked} readings, worst difference from singleOpenInterestValue ${(worst * 100).toFixed(4)} %`)
  })

  it("merges ticker deltas: a delta with only the mark price keeps the funding rate and next funding time", () => {
    const decode = makeDecoder("bybit-derivatives", { openInterestIntervalMs: 60_000 })
    const out: Array<NormalizedRecord> = []
    decode(JSON.stringify({ topic: "tickers.BTCUSDT", type: "snapshot", ts: 1000, cs: 1, data: { symbol: "BTCUSDT", markPrice: "60000", indexPrice: "60010", openInterest: "100", openInterestValue: "6000000", fundingRate: "0.0001", nextFundingTime: "28800000", fundingIntervalHour: "8" } }), out)
    decode(JSON.stringify({ topic: "tickers.BTCUSDT", type: "delta", ts: 2000, cs: 2, data: { symbol: "BTCUSDT", markPrice: "60100" } }), out)
    decode(JSON.stringify({ topic: "tickers.BTCUSDT", type: "delta", ts: 62_000, cs: 3, data: { symbol: "BTCUSDT", openInterest: "110" } }), out)
    const funding = out.filter((r) => r.kind === "funding") as Array<Extract<NormalizedRecord, { kind: "funding" }>>
    assert.deepStrictEqual(funding.map((f) => [f.rate, f.markPrice, f.nextFundingTime]), [[0.0001, 60000, 28800000], [0.0001, 60100, 28800000], [0.0001, 60100, 28800000]])
    const oi = out.filter((r) => r.kind === "open_interest")
    // These frames carry only the both-sides openInterest (no singleOpenInterest): half of it is stored.
    assert.deepStrictEqual(oi.map((r) => [r.timestamp, (r as any).openInterest]), [[1000, 50], [62_000, 55]], "open interest at most once a minute")
    // A dated future: empty funding fields are no funding; its mark still values open interest.
    const future: Array<NormalizedRecord> = []
    decode(JSON.stringify({ topic: "tickers.BTC-26DEC26", type: "snapshot", ts: 1000, data: { symbol: "BTC-26DEC26", markPrice: "61000", openInterest: "5", fundingRate: "", nextFundingTime: "" } }), future)
    assert.deepStrictEqual(future.map((r) => r.kind), ["mark_price", "open_interest"])
  })

  it("allLiquidation: S is the position's side, so the liquidation order is the opposite; each event its own id", () => {
    const out: Array<NormalizedRecord> = []
    makeDecoder("bybit-derivatives")(JSON.stringify({
      topic: "allLiquidation.BTCUSDT", type: "snapshot", ts: 1739502303204,
      data: [{ T: 1739502302929, s: "BTCUSDT", S: "Buy", v: "0.2", p: "96000.5" }, { T: 1739502302929, s: "BTCUSDT", S: "Buy", v: "0.3", p: "96000.5" }, { T: 1739502302930, s: "BTCUSDT", S: "Sell", v: "1", p: "96100" }]
    }), out)
    assert.deepStrictEqual(out.map((r) => (r as any).side), ["sell", "sell", "buy"], "a long liquidated is a sell")
    assert.deepStrictEqual(out.map((r) => (r as any).details.position_side), ["long", "long", "short"])
    assert.strictEqual(new Set(out.map((r) => (r as any).id)).size, 3, "two liquidations in the same ms and side stay two")
    assert.deepInclude((out[0] as any).details, { price_kind: "bankruptcy" })
  })

  it("a snapshot with u = 1 (Bybit restarted its service) replaces the book: a reset, not a gap", () => {
    const resyncs: Array<string> = []
    const books = new BookSync({ venue: "bybit", rule: updateIdRule, depth: 5, snapshotIntervalMs: 1e12, maxBuffered: 100, requestSnapshot: () => undefined, onResync: (s, r) => resyncs.push(r) })
    const decode = makeDecoder("bybit")
    const feed = (m: object) => {
      const out: Array<NormalizedRecord> = []
      assert.isUndefined(decode(JSON.stringify(m), out))
      for (const r of out) r.kind === "book_snapshot" ? books.onSnapshot(r) : r.kind === "book_delta" ? books.onDelta(r) : undefined
    }
    feed({ topic: "orderbook.50.BTCUSDT", type: "snapshot", ts: 1, data: { s: "BTCUSDT", b: [["100", "1"]], a: [["101", "1"]], u: 500, seq: 1 } })
    feed({ topic: "orderbook.50.BTCUSDT", type: "delta", ts: 2, data: { s: "BTCUSDT", b: [["100.5", "2"]], a: [], u: 501, seq: 2 } })
    feed({ topic: "orderbook.50.BTCUSDT", type: "snapshot", ts: 3, data: { s: "BTCUSDT", b: [["99", "3"]], a: [["102", "3"]], u: 1, seq: 3 } })
    feed({ topic: "orderbook.50.BTCUSDT", type: "delta", ts: 4, data: { s: "BTCUSDT", b: [["99.5", "1"]], a: [], u: 2, seq: 4 } })
    assert.deepStrictEqual(resyncs, [])
    assert.deepStrictEqual(books.bookOf("BTCUSDT")!.bids.top(5), [[99.5, 1], [99, 3]])
    // A skipped update id is a gap.
    feed({ topic: "orderbook.50.BTCUSDT", type: "delta", ts: 5, data: { s: "BTCUSDT", b: [], a: [["103", "1"]], u: 4, seq: 5 } })
    assert.deepStrictEqual(resyncs, ["sequence gap"])
  })

  it("operation answers: a refused subscription is an error naming Bybit's message; pongs of both kinds are fine", () => {
    const decode = makeDecoder("bybit")
    const out: Array<NormalizedRecord> = []
    const refused = decode('{"success":false,"ret_msg":"error:handler not found,topic:orderbook.200.NOPEUSDT","conn_id":"x","req_id":"","op":"subscribe"}', out)
    assert.strictEqual(refused?.channel, "subscribe")
    assert.include(refused?.detail, "handler not found")
    assert.isUndefined(decode('{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"","op":"ping"}', out))
    assert.isUndefined(decode('{"req_id":"","op":"pong","args":["1786310819000"],"conn_id":"x"}', out))
    assert.strictEqual(decode('{"topic":"spread.BTCUSDT","type":"snapshot","ts":1,"data":{}}', out)?.detail, "unknown topic")
    assert.strictEqual(decode("not json", out)?.detail, "frame is not JSON")
    assert.deepStrictEqual(out, [])
  })

  it("instruments: the session's listings; linear and spot contracts are coins, inverse ones are 1 USD", () => {
    const rest = recording().rest
    const linear = decodeInstrumentsPage(JSON.parse(rest.find((r) => r.url.includes("category=linear"))!.body))
    assert.strictEqual(linear._tag, "Success")
    if (linear._tag !== "Success") return
    assert.strictEqual(linear.success.dropped, 0)
    const btc = linear.success.kept.find((i) => i.symbol === "BTCUSDT")!
    assert.deepStrictEqual(instrumentFrom("bybit-derivatives", "linear", btc), {
      venue: "bybit-derivatives", symbol: "BTCUSDT", base: "BTC", quote: "USDT", kind: "perpetual", contractSize: 1, inverse: false
    })
    assert.strictEqual(btc.fundingInterval, 480)
    const spot = decodeInstrumentsPage(JSON.parse(rest.find((r) => r.url.includes("category=spot"))!.body))
    assert.strictEqual(spot._tag === "Success" ? instrumentFrom("bybit", "spot", spot.success.kept.find((i) => i.symbol === "ETHUSDT")!).kind : undefined, "spot")
    const inverse = instrumentFrom("bybit-derivatives", "inverse", { symbol: "BTCUSDZ26", baseCoin: "BTC", quoteCoin: "USD", contractType: "InverseFutures" })
    assert.deepInclude(inverse, { kind: "future", contractSize: 1, inverse: true })
    // symbol=BTC finds every Bybit BTC instrument, and not a different asset.
    const btcPattern = new RegExp(baseAssetPattern("BTC"))
    for (const symbol of ["BTCUSDT", "BTCUSD", "BTCUSDZ26", "BTCPERP", "BTC-26DEC26", "BTCUSDC"]) assert.match(symbol, btcPattern)
    for (const symbol of ["BTCDOMUSDT", "WBTCUSDT"]) assert.notMatch(symbol, btcPattern)
  })
})
