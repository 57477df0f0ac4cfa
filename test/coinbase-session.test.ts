/**
 * The real Coinbase Advanced Trade session of 2026-08-09 (shared/fixtures/sessions)
 * played to the live service over a WebSocket, into both databases: every
 * trade stored once with the taker side the book says, every stored book
 * a state the book really had, no gap, no resync. The service runs on the
 * session's own calendar (a pinned clock), so the API's windows find it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeCoinbaseSession } from "./fake/coinbase-session.ts"
import { pinnedClock } from "./support/clock.ts"
import { rebuildBooks, takerSidesFromBook } from "./support/coinbase-session.ts"
import { databases, eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

describe.each(databases)("the real 2026 Coinbase session through the live service into %s", (name, database) => {
  it.live("every trade once with its taker side, books as they were, nothing missing", () =>
    Effect.scoped(Effect.gen(function*() {
      if (name === "postgres") yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeCoinbaseSession.start({ speed: 4 })), (f) => Effect.promise(() => f.close()))
      const messages = fake.messages()
      // The service's calendar starts where the session does.
      const clock = pinnedClock(fake.recording.frames[0]!.receivedAt!)
      const port = freePort()
      yield* startService({
        ...database(),
        PORT: String(port),
        HOST: "127.0.0.1",
        EXCHANGES: "coinbase",
        COINBASE_FEED: "advanced",
        COINBASE_PRODUCTS: "BTC-USD,ETH-USD",
        COINBASE_WS_URL: fake.wsUrl,
        COINBASE_REST_URL: fake.httpUrl,
        LARGE_TRADE_THRESHOLD_BTC: "0",
        LARGE_TRADE_THRESHOLD_ETH: "0",
        ORDERBOOK_INTERVAL_SECONDS: "1",
        WRITER_FLUSH_MS: "20"
      }, clock.layer)
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      yield* eventually("the session played out", Effect.sync(() => (fake.finished ? true : undefined)), 30_000)
      const stored = yield* eventually("every trade stored", Effect.map(getJson(`${base}/large-trades?exchange=coinbase&hours=1&limit=1000`), ({ body }) =>
        body.data.count >= 279 ? body.data : undefined), 20_000)
      assert.strictEqual(stored.count, 279)
      const ids = stored.trades.map((t: any) => `${t.symbol}:${t.trade_id}`)
      assert.strictEqual(new Set(ids).size, 279, "each once")
      const sent = messages.filter((m) => m.channel === "market_trades").flatMap((m) => m.events.flatMap((e: any) => e.trades))
      assert.sameMembers(ids, sent.map((t: any) => `${t.product_id}:${t.trade_id}`))
      // Taker sides: the stored side is the one the book says (a price at the ask was a buy), for every trade it can place.
      const { sides } = takerSidesFromBook(messages)
      const byId = new Map(stored.trades.map((t: any) => [t.trade_id, t]))
      for (const [id, side] of sides) assert.strictEqual((byId.get(id) as any).side, side, `trade ${id}`)
      for (const t of sent) {
        const row = byId.get(t.trade_id) as any
        assert.strictEqual(row.price, Number(t.price))
        assert.strictEqual(row.size, Number(t.size))
        assert.strictEqual(row.value_usd, Math.round(Number(t.price) * Number(t.size) * 100) / 100)
        assert.strictEqual(row.timestamp, new Date(Date.parse(t.time)).toISOString())
      }
      // Every stored book is a state the book really had (an independent rebuild), never crossed.
      const states = new Set<string>()
      rebuildBooks(messages, (_message, tops) => {
        for (const top of tops.values()) states.add(`${top.product} ${top.bestBid}/${top.bestAsk}`)
      })
      const books = yield* getJson(`${base}/orderbooks?exchange=coinbase&depth=1`)
      assert.strictEqual(books.body.data.count, 2)
      for (const book of books.body.data.orderbooks) {
        assert.isTrue(states.has(`${book.symbol} ${book.bids[0][0]}/${book.asks[0][0]}`), `${book.symbol} ${book.bids[0][0]}/${book.asks[0][0]}`)
        assert.isBelow(book.bids[0][0], book.asks[0][0])
      }
      const health = yield* getJson(`http://127.0.0.1:${port}/health`)
      const feed = health.body.feeds.find((f: any) => f.venue === "coinbase")
      assert.strictEqual(feed.reconnects, 0)
      for (const book of feed.books) assert.deepInclude(book, { state: "live", resyncs: 0 })
      const gaps = yield* getJson(`${base}/gaps?exchange=coinbase&hours=1`)
      assert.strictEqual(gaps.body.data.count, 0, JSON.stringify(gaps.body.data.gaps))
    })), { timeout: 90_000 })
})
