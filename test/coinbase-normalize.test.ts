/**
 * The Coinbase normalizer on the recorded Exchange session (COINBASE.ws.28.0),
 * and on the same frames in the Advanced Trade feed's documented format
 * (derived by the fake's `toAdvanced`, since the recordings predate that feed).
 * Books rebuilt from the recorded snapshot + l2updates must agree with
 * Coinbase's own ticker best bid/ask in the same session.
 */
import { assert, describe, it } from "@effect/vitest"
import { BookSync } from "../src/book/sync.ts"
import type { NormalizedRecord, Trade } from "../src/domain/records.ts"
import { makeDecoder } from "../src/venues/coinbase/normalize.ts"
import { orderedRule } from "../src/venues/coinbase/rules.ts"
import { signSubscription } from "../src/venues/coinbase/live.ts"
import { Redacted } from "effect"
import { toAdvanced } from "./fake/coinbase.ts"
import { recording, session as realSession } from "./support/fixtures.ts"
import { rebuildBooks, takerSidesFromBook } from "./support/coinbase-session.ts"

const session = () => recording("COINBASE.ws.28.0").frames.map((f) => f.text)

const decodeAll = (frames: ReadonlyArray<string>) => {
  const decode = makeDecoder("coinbase")
  const records: Array<NormalizedRecord> = []
  const errors: Array<string> = []
  for (const frame of frames) {
    const error = decode(frame, records)
    if (error !== undefined) errors.push(`${error.channel}: ${error.detail}`)
  }
  return { records, errors }
}

describe("coinbase normalizer", () => {
  it("decodes every recorded Exchange frame without error", () => {
    const frames = session()
    const { records, errors } = decodeAll(frames)
    assert.deepStrictEqual(errors, [])
    const count = (kind: string) => records.filter((r) => r.kind === kind).length
    assert.strictEqual(count("trade"), 107, "97 match + 10 last_match")
    assert.strictEqual(count("book_snapshot"), 10)
    assert.strictEqual(count("book_delta"), 9719)
  })

  it("maps a match field by field: the taker side is the opposite of the maker side Coinbase sends", () => {
    const frame = session().find((f) => f.includes('"trade_id":280232'))!
    const out: Array<NormalizedRecord> = []
    assert.isUndefined(makeDecoder("coinbase")(frame, out))
    const trade = out[0] as Trade
    assert.deepStrictEqual(trade, {
      kind: "trade",
      venue: "coinbase",
      symbol: "SKL-BTC",
      tradeId: "280232",
      sequence: 280232,
      price: 0.00001305,
      size: 985,
      side: "buy",
      timestamp: Date.parse("2021-04-17T16:43:37.089Z"),
      details: { source: "match", maker_side: "sell", feed_sequence: 177100030 }
    })
  })

  it("maps l2update changes to bid and ask levels, in arrival order", () => {
    const decode = makeDecoder("coinbase")
    const out: Array<NormalizedRecord> = []
    decode('{"type":"l2update","product_id":"SKL-BTC","changes":[["sell","0.00001306","660.5"],["buy","0.00001300","0"]],"time":"2021-04-17T16:43:37.075687Z"}', out)
    decode('{"type":"l2update","product_id":"SKL-BTC","changes":[["buy","0.00001301","5"]],"time":"2021-04-17T16:43:37.080000Z"}', out)
    const [first, second] = out as Array<Extract<NormalizedRecord, { kind: "book_delta" }>>
    assert.deepStrictEqual(first!.asks, [[0.00001306, 660.5]])
    assert.deepStrictEqual(first!.bids, [[0.000013, 0]])
    assert.strictEqual(first!.timestamp, Date.parse("2021-04-17T16:43:37.075Z"))
    assert.isAbove(second!.firstSequence, first!.lastSequence)
  })

  it("treats Coinbase's placeholder time 0001-01-01 as unknown: the previous message's time, or none", () => {
    const decode = makeDecoder("coinbase")
    const out: Array<NormalizedRecord> = []
    decode('{"type":"l2update","product_id":"BTC-USD","changes":[["buy","50000.00","1"]],"time":"0001-01-01T00:00:00.000000Z"}', out)
    decode('{"type":"l2update","product_id":"BTC-USD","changes":[["buy","50000.00","2"]],"time":"2026-08-09T12:00:00.123456Z"}', out)
    decode('{"type":"l2update","product_id":"BTC-USD","changes":[["buy","50000.00","3"]],"time":"0001-01-01T00:00:00.000000Z"}', out)
    assert.deepStrictEqual(out.map((r) => r.timestamp), [0, Date.parse("2026-08-09T12:00:00.123Z"), Date.parse("2026-08-09T12:00:00.123Z")])
    // The book keeps its last known time through an unknown one: its stored row is never dated 0 or 1901.
    const sync = new BookSync({ venue: "coinbase", rule: orderedRule, depth: 20, snapshotIntervalMs: 1000, maxBuffered: 1000, requestSnapshot: () => undefined })
    sync.onSnapshot({ kind: "book_snapshot", venue: "coinbase", symbol: "BTC-USD", sequence: 0, bids: [[49_999, 1]], asks: [[50_001, 1]], timestamp: 0 })
    for (const r of out) if (r.kind === "book_delta") sync.onDelta(r)
    const rows: Array<{ timestamp: number }> = []
    sync.sample(5_000, rows as any)
    assert.deepStrictEqual(rows.map((r) => r.timestamp), [Date.parse("2026-08-09T12:00:00.123Z")])
  })

  it("keeps every book of the real 2026 session at Coinbase's own ticker best bid and ask", () => {
    // The ticker and level2 channels are not synchronised: a ticker is held to the book within 10 l2_data messages of it.
    const frames = realSession("COINBASE.jsonl.zst").frames.map((f) => f.text)
    const decode = makeDecoder("coinbase")
    const sync = new BookSync({ venue: "coinbase", rule: orderedRule, depth: 20, snapshotIntervalMs: 1000, maxBuffered: 1000, requestSnapshot: () => undefined })
    const topsAfter: Array<Map<string, string>> = []
    const tickers: Array<{ at: number; product: string; top: string }> = []
    for (const frame of frames) {
      const out: Array<NormalizedRecord> = []
      assert.isUndefined(decode(frame, out))
      for (const r of out) {
        if (r.kind === "book_snapshot") sync.onSnapshot(r)
        if (r.kind === "book_delta") sync.onDelta(r)
      }
      const message = JSON.parse(frame)
      if (message.channel === "l2_data") {
        topsAfter.push(new Map(sync.status().map((s) => [s.symbol, `${sync.bookOf(s.symbol)!.bids.top(1)[0]![0]}/${sync.bookOf(s.symbol)!.asks.top(1)[0]![0]}`])))
      }
      if (message.channel === "ticker") {
        for (const event of message.events) {
          // Tickers from before the product's first book message have no book to be compared with.
          for (const t of event.tickers) {
            if (topsAfter.at(-1)?.has(t.product_id) !== true) continue
            tickers.push({ at: topsAfter.length - 1, product: t.product_id, top: `${Number(t.best_bid)}/${Number(t.best_ask)}` })
          }
        }
      }
    }
    let atOwnPosition = 0
    for (const t of tickers) {
      if (topsAfter[t.at]?.get(t.product) === t.top) atOwnPosition++
      const near = topsAfter.slice(Math.max(0, t.at - 10), t.at + 11).some((tops) => tops.get(t.product) === t.top)
      assert.isTrue(near, `${t.product} ticker ${t.top} at l2_data ${t.at}`)
    }
    assert.strictEqual(tickers.length, 154)
    assert.strictEqual(atOwnPosition, 132)
    assert.isTrue(sync.status().every((s) => s.state === "live" && s.resyncs === 0))
    // The same holds for an independent rebuild from the raw messages: the machinery adds nothing of its own.
    let independent = 0
    rebuildBooks(frames.map((f) => JSON.parse(f)), (message, tops) => {
      if (message.channel !== "ticker") return
      for (const event of message.events) {
        for (const t of event.tickers) {
          if (tops.get(t.product_id)?.bestBid === Number(t.best_bid) && tops.get(t.product_id)?.bestAsk === Number(t.best_ask)) independent++
        }
      }
    })
    assert.strictEqual(independent, atOwnPosition)
  })

  it("emits an Advanced Trade event's trades oldest first: Coinbase lists them newest first", () => {
    // As in the real 2026 session: an update of two trades, the newer first. Emitted as listed, the id
    // continuity check took the older one for a late duplicate and dropped it (found playing that session).
    const out: Array<NormalizedRecord> = []
    makeDecoder("coinbase")(JSON.stringify({
      channel: "market_trades", client_id: "", timestamp: "2026-08-09T21:05:50.000Z", sequence_num: 9,
      events: [{ type: "update", trades: [
        { product_id: "BTC-USD", trade_id: "1068572096", price: "65090.01", size: "0.01", time: "2026-08-09T21:05:49.900Z", side: "SELL" },
        { product_id: "BTC-USD", trade_id: "1068572095", price: "65090.00", size: "0.02", time: "2026-08-09T21:05:49.899Z", side: "SELL" }
      ] }]
    }), out)
    assert.deepStrictEqual(out.map((r) => (r as Trade).tradeId), ["1068572095", "1068572096"])
  })

  it("keeps a snapshot with one unreadable level: the level dropped and counted, the book not refused whole", () => {
    const decode = makeDecoder("coinbase")
    const out: Array<NormalizedRecord> = []
    const exchange = decode('{"type":"snapshot","product_id":"BTC-USD","bids":[["50000.00","1.5"],["49999.00","oops"]],"asks":[["50001.00","2"]]}', out)
    assert.strictEqual(exchange?.dropped, 1)
    assert.deepInclude(out[0]!, { kind: "book_snapshot", symbol: "BTC-USD", bids: [[50000, 1.5]], asks: [[50001, 2]] })
    const advanced = decode(JSON.stringify({
      channel: "l2_data", client_id: "", timestamp: "2026-08-09T12:00:00Z", sequence_num: 1,
      events: [{ type: "snapshot", product_id: "ETH-USD", updates: [
        { side: "bid", event_time: "2026-08-09T12:00:00Z", price_level: "3000.1", new_quantity: "1" },
        { side: "bid", event_time: "2026-08-09T12:00:00Z", price_level: null, new_quantity: "1" },
        { side: "offer", event_time: "2026-08-09T12:00:00Z", price_level: "3000.2", new_quantity: "4" }
      ] }]
    }), out)
    assert.strictEqual(advanced?.dropped, 1)
    assert.deepInclude(out[1]!, { kind: "book_snapshot", symbol: "ETH-USD", bids: [[3000.1, 1]], asks: [[3000.2, 4]] })
    // An update is never salvaged: a lost change would corrupt the book, so it is refused and the book resynced.
    const update = decode('{"type":"l2update","product_id":"BTC-USD","changes":[["buy","50000.00","x"]],"time":"2026-08-09T12:00:00Z"}', out)
    assert.isUndefined(update?.dropped)
    assert.strictEqual(update?._tag, "DecodeError")
    assert.strictEqual(out.length, 2)
  })

  it("reads the same session in the Advanced Trade format: same trades, same sides, same books", () => {
    const frames = session()
    const exchange = decodeAll(frames)
    let sequence = 0
    const advanced = frames.flatMap((f) => {
      const message = toAdvanced(JSON.parse(f))
      return message === undefined ? [] : [JSON.stringify({ ...message, client_id: "", timestamp: "2021-04-17T16:43:37.000Z", sequence_num: sequence++ })]
    })
    const decoded = decodeAll(advanced)
    assert.deepStrictEqual(decoded.errors, [])
    const trades = (records: ReadonlyArray<NormalizedRecord>) =>
      records.filter((r): r is Trade => r.kind === "trade").map((t) => [t.symbol, t.tradeId, t.price, t.size, t.side, t.timestamp])
    assert.deepStrictEqual(trades(decoded.records), trades(exchange.records))
    const books = (records: ReadonlyArray<NormalizedRecord>) => {
      const sync = new BookSync({ venue: "coinbase", rule: orderedRule, depth: 20, snapshotIntervalMs: 1000, maxBuffered: 1000, requestSnapshot: () => undefined })
      for (const r of records) {
        if (r.kind === "book_snapshot") sync.onSnapshot(r)
        if (r.kind === "book_delta") sync.onDelta(r)
      }
      return sync.status().map((s) => [s.symbol, s.state, sync.bookOf(s.symbol)!.bids.top(20), sync.bookOf(s.symbol)!.asks.top(20)])
    }
    assert.deepStrictEqual(books(decoded.records), books(exchange.records))
  })

  it("rebuilds every book so that it agrees with Coinbase's own ticker best bid and ask", () => {
    const decode = makeDecoder("coinbase")
    const sync = new BookSync({ venue: "coinbase", rule: orderedRule, depth: 20, snapshotIntervalMs: 1000, maxBuffered: 1000, requestSnapshot: () => undefined })
    const seen = new Set<string>()
    let compared = 0
    for (const frame of session()) {
      const out: Array<NormalizedRecord> = []
      decode(frame, out)
      for (const r of out) {
        if (r.kind === "book_snapshot") sync.onSnapshot(r)
        if (r.kind === "book_delta") sync.onDelta(r)
      }
      const message = JSON.parse(frame)
      if (message.type !== "ticker") continue
      // The first ticker of a subscription replays the last trade (with that moment's quotes): not current.
      if (!seen.has(message.product_id)) {
        seen.add(message.product_id)
        continue
      }
      const book = sync.bookOf(message.product_id)!
      assert.strictEqual(book.bids.top(1)[0]![0], Number(message.best_bid), `${message.product_id} best bid at ticker ${message.sequence}`)
      assert.strictEqual(book.asks.top(1)[0]![0], Number(message.best_ask), `${message.product_id} best ask at ticker ${message.sequence}`)
      compared++
    }
    assert.strictEqual(compared, 97)
    assert.isTrue(sync.status().every((s) => s.state === "live" && s.resyncs === 0))
  })

  it("stores the taker side of Advanced Trade trades: the real 2026 session, sides derived from the book independently", () => {
    const frames = realSession("COINBASE.jsonl.zst").frames.map((f) => f.text)
    const { sides: derived, inside } = takerSidesFromBook(frames.map((f) => JSON.parse(f)))
    assert.strictEqual(derived.size, 71, "trades placed against the book")
    assert.strictEqual(inside, 7)
    const { records, errors } = decodeAll(frames)
    assert.deepStrictEqual(errors, [])
    const trades = records.filter((r): r is Trade => r.kind === "trade")
    assert.strictEqual(new Set(trades.map((t) => t.tradeId)).size, 279, "every trade of the session")
    let compared = 0
    for (const trade of trades) {
      const side = derived.get(trade.tradeId!)
      if (side === undefined) continue
      assert.strictEqual(trade.side, side, `trade ${trade.tradeId} at ${trade.price}`)
      compared++
    }
    assert.strictEqual(compared, 71)
  })

  it("turns malformed frames, unknown types, renamed fields and venue errors into typed errors, and keeps going", () => {
    const decode = makeDecoder("coinbase")
    const out: Array<NormalizedRecord> = []
    const cases = [
      "{not json",
      '{"type":"surprise","product_id":"BTC-USD"}',
      '{"type":"match","trade_id":1,"product_id":"BTC-USD","px":"1","size":"1","side":"buy","time":"2021-04-17T16:43:37Z"}',
      '{"type":"error","message":"Failed to subscribe","reason":"level2 requires authentication"}',
      '{"channel":"l2_data","timestamp":"2023-01-01T00:00:00Z","sequence_num":1,"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"middle","event_time":"x","price_level":"1","new_quantity":"1"}]}]}'
    ]
    for (const frame of cases) assert.strictEqual(decode(frame, out)?._tag, "DecodeError", frame)
    assert.strictEqual(out.length, 0)
    assert.isUndefined(decode('{"type":"match","trade_id":2,"product_id":"BTC-USD","price":"50000","size":"1","side":"buy","time":"2021-04-17T16:43:37Z"}', out))
    assert.strictEqual(out.length, 1)
  })

  it("signs an authenticated Exchange subscription as documented (HMAC-SHA256 of timestamp + GET + /users/self/verify)", () => {
    const secret = Buffer.from("a secret of the test").toString("base64")
    const signed = signSubscription({ key: "k", secret: Redacted.make(secret), passphrase: Redacted.make("p") }, 1_700_000_000_000)
    assert.strictEqual(signed.timestamp, "1700000000.000")
    assert.strictEqual(signed.key, "k")
    assert.strictEqual(signed.passphrase, "p")
    // Computed independently: echo -n '1700000000.000GET/users/self/verify' | openssl dgst -sha256 -hmac 'a secret of the test' -binary | base64
    assert.strictEqual(signed.signature, EXPECTED_SIGNATURE)
  })
})

const EXPECTED_SIGNATURE = "yyvWkFaSZ61RaruwvLk7erpDf3X0TnF0mqBHVAbXj9s="
