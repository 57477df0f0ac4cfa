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
    // An independent rebuild of each book from the raw l2_data (no normalizer, no BookSync).
    const books = new Map<string, { bid: Map<string, number>; offer: Map<string, number> }>()
    const derived = new Map<string, "buy" | "sell">()
    let inside = 0
    const frames = realSession("COINBASE.jsonl.zst").frames.map((f) => f.text)
    for (const frame of frames) {
      const message = JSON.parse(frame)
      if (message.channel === "l2_data") {
        for (const event of message.events) {
          const book = books.get(event.product_id) ?? { bid: new Map(), offer: new Map() }
          books.set(event.product_id, book)
          if (event.type === "snapshot") (book.bid.clear(), book.offer.clear())
          for (const u of event.updates) {
            const side = u.side === "bid" ? book.bid : book.offer
            if (Number(u.new_quantity) === 0) side.delete(u.price_level)
            else side.set(u.price_level, Number(u.new_quantity))
          }
        }
      }
      if (message.channel !== "market_trades") continue
      for (const event of message.events) {
        if (event.type !== "update") continue
        for (const t of event.trades) {
          const book = books.get(t.product_id)
          if (book === undefined) continue
          const bestBid = Math.max(...[...book.bid.keys()].map(Number))
          const bestAsk = Math.min(...[...book.offer.keys()].map(Number))
          const price = Number(t.price)
          // At or through the ask a buyer lifted the offer; at or through the bid a seller hit it.
          if (price >= bestAsk) derived.set(t.trade_id, "buy")
          else if (price <= bestBid) derived.set(t.trade_id, "sell")
          else inside++
        }
      }
    }
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
