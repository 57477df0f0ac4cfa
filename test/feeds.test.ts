/**
 * Connection supervision against the fake Binance: dropped sockets and silent
 * sockets are reconnected, 429/418 from REST are waited out, and one failing
 * feed never stops another.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { backoffDelay, defaultBackoff } from "../src/feed/connection.ts"
import { FakeBinance } from "./fake/binance.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const futures = ["SUSHIUSDT", "AKROUSDT"]

const serviceAgainst = (fake: FakeBinance, extra: Record<string, string> = {}) => {
  const port = freePort()
  return startService({
    DATABASE_URL: postgresUrl,
    PORT: String(port),
    HOST: "127.0.0.1",
    EXCHANGES: "binance-futures",
    BINANCE_FUTURES_SYMBOLS: futures.join(","),
    BINANCE_FUTURES_WS_URL: fake.wsUrl,
    BINANCE_FUTURES_REST_URL: fake.httpUrl,
    ...extra
  }).pipe(Effect.as(`http://127.0.0.1:${port}`))
}

const feedsOf = (base: string) =>
  Effect.map(getJson(`${base}/health`), ({ body }) => new Map<string, any>(body.feeds.map((f: any) => [f.feed, f])))

const withFake = Effect.acquireRelease(Effect.promise(() => FakeBinance.start()), (f) => Effect.promise(() => f.close()))

describe("feed supervision", () => {
  it("backs off exponentially with jitter, capped", () => {
    assert.strictEqual(backoffDelay(defaultBackoff, 0, 0), 250)
    assert.strictEqual(backoffDelay(defaultBackoff, 0, 1), 500)
    assert.strictEqual(backoffDelay(defaultBackoff, 3, 1), 4000)
    assert.strictEqual(backoffDelay(defaultBackoff, 30, 1), 30_000)
    assert.strictEqual(backoffDelay(defaultBackoff, 30, 0), 15_000)
  })

  it.live("names the cause of a connection failure in /health (connection refused, not just \"open failed\")", () =>
    Effect.scoped(Effect.gen(function*() {
      const fake = yield* withFake
      const base = yield* serviceAgainst(fake, { BINANCE_FUTURES_WS_URL: "ws://127.0.0.1:1" })
      const feed = yield* eventually("a failed connection", Effect.map(feedsOf(base), (feeds) => {
        const public_ = feeds.get("binance-futures/public")
        return public_?.last_error ? public_ : undefined
      }), 20_000)
      assert.include(feed.last_error, "FeedConnectError")
      assert.include(feed.last_error, "ECONNREFUSED (connection refused)")
    })))

  it.live("reconnects dropped sockets and resyncs their books", () =>
    Effect.scoped(Effect.gen(function*() {
      const fake = yield* withFake
      const base = yield* serviceAgainst(fake)
      yield* eventually("books live", Effect.map(feedsOf(base), (feeds) => {
        const books = feeds.get("binance-futures/public")?.books ?? []
        return books.length === 2 && books.every((b: any) => b.state === "live") ? true : undefined
      }))
      const snapshotsBefore = fake.restCalls.filter((c) => c.startsWith("/fapi/v1/depth")).length
      fake.dropConnections("terminate")
      const feeds = yield* eventually("reconnected", Effect.map(feedsOf(base), (feeds) => {
        const all = [...feeds.values()]
        return all.every((f) => f.reconnects >= 1 && f.state === "connected") ? feeds : undefined
      }))
      assert.include(feeds.get("binance-futures/public").last_error, "FeedClosedError")
      yield* eventually("books resynced after the reconnect", Effect.map(feedsOf(base), (feeds) => {
        const books = feeds.get("binance-futures/public")?.books ?? []
        const fetched = fake.restCalls.filter((c) => c.startsWith("/fapi/v1/depth")).length
        return fetched >= snapshotsBefore + 2 && books.every((b: any) => b.state === "live") ? true : undefined
      }))
    })), { timeout: 60_000 })

  it.live("reconnects a silent socket while a busy one stays up", () =>
    Effect.scoped(Effect.gen(function*() {
      const fake = yield* withFake
      // The recorded depth stream ends after ~30 s of data sent in ~1 s; markPrice keeps /market busy.
      const base = yield* serviceAgainst(fake, { BINANCE_FUTURES_STALE_SECONDS: "2" })
      const feeds = yield* eventually("stale feed reconnected", Effect.map(feedsOf(base), (feeds) => {
        const silent = feeds.get("binance-futures/public")
        return silent !== undefined && silent.reconnects >= 1 ? feeds : undefined
      }), 20_000)
      assert.include(feeds.get("binance-futures/public").last_error, "FeedStaleError")
      assert.strictEqual(feeds.get("binance-futures/market").reconnects, 0)
    })), { timeout: 60_000 })

  it.live("waits out a 429 and a 418 on the snapshot endpoint, then syncs", () =>
    Effect.scoped(Effect.gen(function*() {
      const fake = yield* withFake
      fake.failNext("/depth", 429, 1)
      fake.failNext("/depth", 418, 2)
      const started = Date.now()
      const base = yield* serviceAgainst(fake)
      yield* eventually("books live despite 429 and 418", Effect.map(feedsOf(base), (feeds) => {
        const books = feeds.get("binance-futures/public")?.books ?? []
        return books.length === 2 && books.every((b: any) => b.state === "live") ? true : undefined
      }), 30_000)
      assert.isAtLeast(Date.now() - started, 2_500, "the ban and the rate limit were waited out")
      const depthCalls = fake.restCalls.filter((c) => c.startsWith("/fapi/v1/depth")).length
      assert.strictEqual(depthCalls, 4, "two refused, then one per symbol: no tight retry loop")
    })), { timeout: 60_000 })
})

describe("connection rotation", () => {
  it.live("rotates make-before-break: no gap, no resync, no trade lost or stored twice", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      // A lifetime of about 1.1 s instead of 23.5 h: several rotations during the recording.
      const base = yield* serviceAgainst(fake, { BINANCE_FUTURES_MAX_CONNECTION_HOURS: "0.0003", LARGE_TRADE_THRESHOLD_DEFAULT: "1" })
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 30_000)
      const feeds = yield* feedsOf(base)
      for (const feed of feeds.values()) {
        assert.isAtLeast(feed.rotations, 2, feed.feed)
        assert.strictEqual(feed.reconnects, 0, feed.feed)
      }
      for (const book of feeds.get("binance-futures/public").books) assert.strictEqual(book.resyncs, 0)
      assert.strictEqual(fake.restCalls.filter((c) => c.startsWith("/fapi/v1/depth")).length, futures.length, "one snapshot per symbol, ever")
      const played = fake.played.filter((f) => f.stream.endsWith("@aggTrade") && futures.includes(String(f.data.s)))
      const trades = yield* eventually("every trade stored", Effect.map(
        getJson(`${base}/api/v1/exchange/large-trades?hours=1&limit=1000&only_liquidations=false&exchange=binance-futures`),
        ({ body }) => (body.data.trades.filter((t: any) => !t.is_liquidation).length >= played.length ? body : undefined)
      ))
      const ids = trades.data.trades.filter((t: any) => !t.is_liquidation).map((t: any) => t.trade_id)
      assert.sameMembers(ids, played.map((f) => String(f.data.a)))
      const gaps = yield* getJson(`${base}/api/v1/exchange/gaps`)
      assert.strictEqual(gaps.body.data.count, 0)
    })), { timeout: 60_000 })

  it.live("replaces a connection at once when Binance announces a server shutdown: no gap, no resync, every trade once", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance",
        BINANCE_SYMBOLS: "NKNUSDT", BINANCE_WS_URL: fake.wsUrl, BINANCE_REST_URL: fake.httpUrl, LARGE_TRADE_THRESHOLD_DEFAULT: "1"
      })
      const base = `http://127.0.0.1:${port}`
      yield* eventually("book live", Effect.map(feedsOf(base), (feeds) =>
        [...feeds.values()].some((f) => f.books.some((b: any) => b.state === "live")) ? true : undefined))
      // The notice, then the old sockets close 1.5 s later: long before the 23.5 h lifetime.
      fake.announceShutdown("spot", 1500)
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("spot") ? true : undefined)), 30_000)
      const feeds = yield* feedsOf(base)
      for (const feed of feeds.values()) {
        assert.strictEqual(feed.rotations, 1, feed.feed)
        assert.strictEqual(feed.reconnects, 0, `${feed.feed} was replaced before the venue closed it`)
        for (const book of feed.books) assert.strictEqual(book.resyncs, 0)
      }
      const played = fake.played.filter((f) => f.stream.endsWith("@aggTrade") && f.data.s === "NKNUSDT")
      assert.isAbove(played.length, 0)
      const trades = yield* eventually("every trade stored", Effect.map(
        getJson(`${base}/api/v1/exchange/large-trades?hours=1&limit=1000&exchange=binance&symbol=NKNUSDT`),
        ({ body }) => (body.data.trades.length >= played.length ? body : undefined)
      ))
      assert.sameMembers(trades.data.trades.map((t: any) => t.trade_id), played.map((f) => String(f.data.a)))
      const gaps = yield* getJson(`${base}/api/v1/exchange/gaps`)
      assert.strictEqual(gaps.body.data.count, 0)
      const metrics = yield* Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
      assert.notMatch(metrics, /feed_decode_errors_total\{[^}]*\} [1-9]/, "the notice is not a decode error")
    })), { timeout: 60_000 })
})
