/**
 * Order books rebuilt from the recorded snapshot + diffs. The recordings hold one
 * snapshot per symbol, so the independent check is Binance's own bookTicker
 * stream in the same session: whenever a bookTicker carries the update id of the
 * last applied diff, its best bid/ask (price and size) must equal our book's.
 */
import { assert, describe, it } from "@effect/vitest"
import { BookSide, OrderBook } from "../src/book/orderbook.ts"
import { BookSync, type SequenceRule } from "../src/book/sync.ts"
import type { BookDelta, NormalizedRecord } from "../src/domain/records.ts"
import type { OrderBookRow } from "../src/domain/rows.ts"
import { binance, binanceFutures } from "../src/venues/binance/index.ts"
import { futuresRule, spotRule } from "../src/venues/binance/rules.ts"
import type { VenueDefinition } from "../src/venues/venue.ts"
import { binanceFutures as futuresRecording, binanceSpot as spotRecording } from "./support/fixtures.ts"
import type { Recording } from "../src/replay/recorded.ts"

const rebuild = (venue: VenueDefinition, recording: Recording, rule: SequenceRule) => {
  const snapshots = new Map<string, NormalizedRecord>()
  for (const rest of recording.rest) {
    for (const record of venue.fromRest(rest).records ?? []) snapshots.set(record.symbol, record)
  }
  const requested: Array<string> = []
  const sync = new BookSync({
    venue: venue.id,
    rule,
    depth: 20,
    snapshotIntervalMs: 10_000,
    maxBuffered: 10_000,
    requestSnapshot: (symbol) => requested.push(symbol)
  })
  // bookTicker is pushed in real time, depth every 100 ms: index tickers by update id, look them up after each diff.
  const tickers = new Map<string, Record<string, any>>()
  for (const frame of recording.frames) {
    const parsed = JSON.parse(frame.text) as { stream: string; data: Record<string, any> }
    if (parsed.stream.endsWith("@bookTicker")) tickers.set(`${parsed.data.s}:${parsed.data.u}`, parsed.data)
  }
  let compared = 0
  let matched = 0
  for (const frame of recording.frames) {
    if (frame.text.includes("@bookTicker")) continue
    const out: Array<NormalizedRecord> = []
    venue.decodeFrame(frame.text, out)
    for (const record of out) {
      if (record.kind !== "book_delta") continue
      sync.onDelta(record)
      for (const symbol of requested.splice(0)) {
        const snapshot = snapshots.get(symbol)
        if (snapshot?.kind === "book_snapshot") sync.onSnapshot(snapshot)
      }
      const t = tickers.get(`${record.symbol}:${record.lastSequence}`)
      const book = sync.bookOf(record.symbol)
      if (t !== undefined && book !== undefined && sync.stateOf(record.symbol) === "live") {
        compared++
        const [bid] = book.bids.top(1)
        const [ask] = book.asks.top(1)
        if (bid![0] === Number(t.b) && bid![1] === Number(t.B) && ask![0] === Number(t.a) && ask![1] === Number(t.A)) matched++
      }
    }
  }
  return { sync, compared, matched }
}

describe("order book sync on recorded sessions", () => {
  it("futures: every book goes live and matches bookTicker at the same update id", () => {
    const { sync, compared, matched } = rebuild(binanceFutures, futuresRecording(), futuresRule)
    for (const status of sync.status()) {
      assert.strictEqual(status.state, "live", status.symbol)
      assert.strictEqual(status.resyncs, 0, status.symbol)
    }
    assert.isAbove(compared, 20)
    assert.strictEqual(matched, compared)
  })

  it("spot: books go live and match bookTicker at the same update id", () => {
    const { sync, compared, matched } = rebuild(binance, spotRecording(), spotRule)
    assert.strictEqual(sync.stateOf("NKNUSDT"), "live")
    for (const status of sync.status()) assert.strictEqual(status.resyncs, 0, status.symbol)
    assert.isAbove(compared, 5)
    assert.strictEqual(matched, compared)
  })
})

describe("book state machine", () => {
  const delta = (symbol: string, first: number, last: number, bids: Array<[number, number]>, asks: Array<[number, number]>): BookDelta => ({
    kind: "book_delta", venue: "v", symbol, firstSequence: first, lastSequence: last, bids, asks, timestamp: last
  })
  const snapshot = (symbol: string, sequence: number) => ({
    kind: "book_snapshot" as const, venue: "v", symbol, sequence, bids: [[100, 1]] as Array<[number, number]>, asks: [[101, 1]] as Array<[number, number]>, timestamp: sequence
  })
  const make = () => {
    const requested: Array<string> = []
    const resyncs: Array<string> = []
    const sync = new BookSync({
      venue: "v", rule: spotRule, depth: 10, snapshotIntervalMs: 1000, maxBuffered: 100,
      requestSnapshot: (s) => requested.push(s), onResync: (s, reason) => resyncs.push(`${s}:${reason}`)
    })
    return { sync, requested, resyncs }
  }

  it("buffers until the snapshot, bridges it, then goes live", () => {
    const { sync, requested } = make()
    sync.onDelta(delta("A", 8, 10, [[99, 2]], []))
    sync.onDelta(delta("A", 11, 12, [[98, 1]], []))
    assert.strictEqual(sync.stateOf("A"), "buffering")
    assert.deepStrictEqual(requested, ["A"])
    sync.onSnapshot(snapshot("A", 10))
    assert.strictEqual(sync.stateOf("A"), "live")
    assert.deepStrictEqual(sync.bookOf("A")!.bids.top(5), [[100, 1], [98, 1]])
  })

  it("a gap resyncs that symbol only", () => {
    const { sync, requested, resyncs } = make()
    for (const s of ["A", "B"]) {
      sync.onDelta(delta(s, 1, 1, [], []))
      sync.onSnapshot(snapshot(s, 1))
      sync.onDelta(delta(s, 2, 3, [[99, 1]], []))
    }
    sync.onDelta(delta("A", 5, 6, [], []))
    assert.strictEqual(sync.stateOf("A"), "resyncing")
    assert.strictEqual(sync.stateOf("B"), "live")
    assert.deepStrictEqual(resyncs, ["A:sequence gap"])
    assert.deepStrictEqual(requested, ["A", "B", "A"])
    sync.onDelta(delta("A", 7, 7, [], []))
    sync.onSnapshot(snapshot("A", 6))
    assert.strictEqual(sync.stateOf("A"), "live")
  })

  it("a crossed book is never sampled: it resyncs instead", () => {
    const { sync, resyncs } = make()
    sync.onDelta(delta("A", 1, 1, [], []))
    sync.onSnapshot(snapshot("A", 1))
    sync.onDelta(delta("A", 2, 2, [[102, 1]], []))
    assert.deepStrictEqual(resyncs, ["A:crossed book"])
    const rows: Array<OrderBookRow> = []
    sync.sample(10_000, rows)
    assert.strictEqual(rows.length, 0)
  })

  it("a snapshot older than the buffered deltas is fetched again", () => {
    const { sync, requested } = make()
    sync.onDelta(delta("A", 20, 21, [], []))
    sync.onSnapshot(snapshot("A", 10))
    assert.deepStrictEqual(requested, ["A", "A"])
    assert.strictEqual(sync.stateOf("A"), "buffering")
  })

  it("samples a live book once per interval and not again while unchanged", () => {
    const { sync } = make()
    sync.onDelta(delta("A", 1, 1, [], []))
    sync.onSnapshot(snapshot("A", 1))
    sync.onDelta(delta("A", 2, 2, [[99, 3]], []))
    const rows: Array<OrderBookRow> = []
    sync.sample(5_000, rows)
    sync.sample(5_500, rows)
    sync.sample(6_000, rows)
    assert.strictEqual(rows.length, 1)
    assert.deepStrictEqual(rows[0]!.bids, [[100, 1], [99, 3]])
    assert.strictEqual(rows[0]!.sequence, 2)
    sync.onDelta(delta("A", 3, 3, [[99, 0]], []))
    sync.sample(6_999, rows)
    assert.strictEqual(rows.length, 1)
    sync.sample(7_000, rows)
    assert.strictEqual(rows.length, 2)
  })
})

describe("book audit against a REST snapshot", () => {
  const delta = (first: number, last: number, bids: Array<[number, number]>, asks: Array<[number, number]> = []): BookDelta => ({
    kind: "book_delta", venue: "v", symbol: "A", firstSequence: first, lastSequence: last, bids, asks, timestamp: last
  })
  const snapshotAt = (sequence: number, bids: Array<[number, number]>, asks: Array<[number, number]>) => ({
    kind: "book_snapshot" as const, venue: "v", symbol: "A", sequence, bids, asks, timestamp: sequence
  })
  const live = () => {
    const resyncs: Array<string> = []
    const sync = new BookSync({
      venue: "v", rule: spotRule, depth: 10, snapshotIntervalMs: 1000, maxBuffered: 100,
      requestSnapshot: () => undefined, onResync: (_s, reason) => resyncs.push(reason)
    })
    sync.onDelta(delta(1, 1, []))
    sync.onSnapshot(snapshotAt(1, [[100, 1], [99, 2], [98, 3]], [[101, 1], [102, 2]]))
    sync.onDelta(delta(2, 2, [[99, 5]]))
    sync.onDelta(delta(3, 4, [[97, 1]], [[103, 4]]))
    return { sync, resyncs }
  }

  it("matches a snapshot taken at an earlier update id, ignoring levels moved since", () => {
    const { sync, resyncs } = live()
    // The venue's book at update 2: the later diff (3..4) moved 97 and 103, which are not compared.
    const result = sync.audit(snapshotAt(2, [[100, 1], [99, 5], [98, 3]], [[101, 1], [102, 2]]), 10)
    assert.strictEqual(result.outcome, "ok")
    assert.strictEqual(result.compared, 5)
    assert.deepStrictEqual(resyncs, [])
  })

  it("a level that differs where no later diff touched it is a divergence: the book resyncs", () => {
    const { sync, resyncs } = live()
    const result = sync.audit(snapshotAt(2, [[100, 1], [99, 5], [98, 4]], [[101, 1], [102, 2]]), 10)
    assert.strictEqual(result.outcome, "diverged")
    assert.strictEqual(result.mismatched, 1)
    assert.deepStrictEqual(resyncs, ["REST audit divergence"])
    assert.strictEqual(sync.stateOf("A"), "resyncing")
  })

  it("remembers only the last 256 diffs, oldest first, across wrap-around", () => {
    const { sync } = live()
    // Diffs 5..304 each move level 90 only; the book remembers 49..304.
    for (let id = 5; id <= 304; id++) sync.onDelta(delta(id, id, [[90, id]]))
    const before = sync.audit(snapshotAt(40, [[100, 1], [99, 5], [98, 3]], [[101, 1], [102, 2]]), 10)
    assert.strictEqual(before.detail, "snapshot older than the remembered diffs")
    const within = sync.audit(snapshotAt(100, [[100, 1], [99, 5], [98, 3], [97, 1]], [[101, 1], [102, 2], [103, 4]]), 10)
    assert.strictEqual(within.outcome, "ok")
    assert.strictEqual(within.compared, 7)
    assert.strictEqual(within.detail, "snapshot 100, local 304, 204 diffs since")
  })

  it("skips when the snapshot is ahead of the local book", () => {
    const { sync } = live()
    assert.strictEqual(sync.audit(snapshotAt(9, [[100, 1]], [[101, 1]]), 10).outcome, "skipped")
  })
})

describe("order book sides", () => {
  const reference = (levels: Array<[number, number]>, bestIsHighest: boolean) => {
    const book = new Map<number, number>()
    for (const [price, size] of levels) size === 0 ? book.delete(price) : book.set(price, size)
    return [...book].sort((a, b) => (bestIsHighest ? b[0] - a[0] : a[0] - b[0]))
  }

  it("a snapshot in any order, with repeats and zeros, loads as level-by-level sets would build it", () => {
    const levels: Array<[number, number]> = [[100, 1], [99, 2], [101, 3], [99, 5], [98, 0], [97, 4], [96, 1], [96, 0]]
    const book = new OrderBook()
    book.replace(levels, levels)
    assert.deepStrictEqual(book.bids.top(10), reference(levels, true))
    assert.deepStrictEqual(book.asks.top(10), reference(levels, false))
  })

  it("keeps the best price first in top() and best() through random updates", () => {
    let seed = 7
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647
    const bids = new BookSide(true)
    const asks = new BookSide(false)
    const updates: Array<[number, number]> = []
    for (let i = 0; i < 2000; i++) {
      const update: [number, number] = [Math.round(random() * 200), random() < 0.3 ? 0 : Math.round(random() * 10) + 1]
      updates.push(update)
      bids.set(update[0], update[1])
      asks.set(update[0], update[1])
    }
    assert.deepStrictEqual(bids.top(1000), reference(updates, true))
    assert.deepStrictEqual(asks.top(1000), reference(updates, false))
    assert.strictEqual(bids.best(), reference(updates, true)[0]![0])
    assert.strictEqual(asks.best(), reference(updates, false)[0]![0])
  })
})
