/**
 * Per-symbol freshness: a stream that goes quiet while its socket stays busy is
 * marked stale, recorded in the gap ledger and resubscribed alone; the socket
 * and the other symbols carry on untouched.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { FreshnessMonitor } from "../src/feed/freshness.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBinance } from "./fake/binance.ts"
import { maxInWindow } from "./support/rate.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

describe("freshness monitor", () => {
  const options = { minSamples: 5, factor: 10, minStaleMs: 1_000, maxStaleMs: 60_000, socketBusyMs: 2_000 }

  it("learns each stream's pace and flags the one that falls silent while the socket is busy", () => {
    const monitor = new FreshnessMonitor(options)
    for (let t = 0; t <= 1_000; t += 100) monitor.observe("book", "A", t)
    for (let t = 0; t <= 5_000; t += 100) monitor.observe("book", "B", t)
    assert.deepStrictEqual(monitor.check(1_900, 1_900), [], "silent 900 ms < max(1 s, 10 x 100 ms)")
    const stale = monitor.check(2_100, 2_100)
    assert.deepStrictEqual(stale.map((s) => s.symbol), ["A"])
    assert.deepStrictEqual(monitor.check(2_200, 2_200), [], "reported once per stale period")
    assert.isTrue(monitor.observe("book", "A", 2_300), "its next message ends the stale period")
    assert.isFalse(monitor.status(2_300).find((s) => s.symbol === "A")!.stale)
  })

  it("never judges a stream while the whole socket is silent, nor before it knows the pace", () => {
    const monitor = new FreshnessMonitor(options)
    for (let t = 0; t <= 1_000; t += 100) monitor.observe("book", "A", t)
    monitor.observe("trades", "A", 0)
    assert.deepStrictEqual(monitor.check(10_000, 3_000), [], "socket silent: the connection watchdog's job")
    assert.deepStrictEqual(monitor.check(10_000, 10_000).map((s) => s.channel), ["book"], "trades: too few samples")
  })
})

describe("stale symbol on a busy socket", () => {
  it.live("is resubscribed alone and resyncs without touching the socket or the other symbols", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl,
        PORT: String(port),
        HOST: "127.0.0.1",
        EXCHANGES: "binance-futures",
        BINANCE_FUTURES_SYMBOLS: "SUSHIUSDT,CTKUSDT",
        BINANCE_FUTURES_WS_URL: fake.wsUrl,
        BINANCE_FUTURES_REST_URL: fake.httpUrl,
        FRESHNESS_MIN_SAMPLES: "10",
        FRESHNESS_FACTOR: "10",
        FRESHNESS_MIN_STALE_SECONDS: "1"
      })
      const base = `http://127.0.0.1:${port}`
      const publicFeed = Effect.map(getJson(`${base}/health`), ({ body }) => body.feeds.find((f: any) => f.feed === "binance-futures/public"))
      yield* eventually("both books live", Effect.map(publicFeed, (feed) =>
        feed?.books.length === 2 && feed.books.every((b: any) => b.state === "live") ? true : undefined))
      yield* eventually("SUSHIUSDT pace learned", Effect.sync(() =>
        fake.sent.filter((f) => f.stream === "sushiusdt@depth@100ms").length >= 40 ? true : undefined))
      fake.silence("sushiusdt@depth@100ms")
      yield* eventually("resubscribed alone", Effect.sync(() => {
        const methods = fake.controlMessages.map((m) => `${m.method} ${m.params.join(",")}`)
        return methods.includes("UNSUBSCRIBE sushiusdt@depth@100ms") && methods.includes("SUBSCRIBE sushiusdt@depth@100ms")
          ? true
          : undefined
      }), 15_000)
      const feed = yield* eventually("SUSHIUSDT live again from a fresh snapshot", Effect.map(publicFeed, (feed) => {
        const sushi = feed?.books.find((b: any) => b.symbol === "SUSHIUSDT")
        return sushi?.state === "live" && fake.restCalls.filter((c) => c.includes("depth?symbol=SUSHIUSDT")).length >= 2 ? feed : undefined
      }), 15_000)
      assert.strictEqual(feed.reconnects, 0, "the socket was never reconnected")
      assert.strictEqual(feed.books.find((b: any) => b.symbol === "CTKUSDT").resyncs, 0, "the other symbol was untouched")
      assert.strictEqual(fake.restCalls.filter((c) => c.includes("depth?symbol=CTKUSDT")).length, 1)
      assert.deepStrictEqual(fake.controlMessages.flatMap((m) => m.params), ["sushiusdt@depth@100ms", "sushiusdt@depth@100ms"])
      const gaps = yield* eventually("a closed stale gap for the book", Effect.map(getJson(`${base}/api/v1/exchange/gaps?channel=book`), ({ body }) =>
        body.data.gaps.find((g: any) => g.symbol === "SUSHIUSDT" && g.cause === "stale" && g.end !== null)), 10_000)
      assert.strictEqual(gaps.repair_status, "unrecoverable")
      const metrics = yield* Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
      assert.match(metrics, /streams_stale_total\{[^}]*channel="book"[^}]*\} 1/)
    })), { timeout: 60_000 })
})

describe("periodic book audit", () => {
  it.live("catches a corrupted diff the sequence checks cannot see, and resyncs that book", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl,
        PORT: String(port),
        HOST: "127.0.0.1",
        EXCHANGES: "binance-futures",
        BINANCE_FUTURES_SYMBOLS: "SUSHIUSDT,CTKUSDT",
        BINANCE_FUTURES_WS_URL: fake.wsUrl,
        BINANCE_FUTURES_REST_URL: fake.httpUrl,
        BOOK_AUDIT_INTERVAL_SECONDS: "0.5"
      })
      const base = `http://127.0.0.1:${port}`
      const metrics = Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
      yield* eventually("clean audits", Effect.map(metrics, (text) => (/book_audits_total\{[^}]*outcome="ok"[^}]*\} ([3-9]|\d\d)/.test(text) ? true : undefined)))
      assert.notMatch(yield* metrics, /outcome="diverged"/)
      fake.corruptNext("sushiusdt@depth@100ms")
      const text = yield* eventually("the divergence caught", Effect.map(metrics, (text) => (/outcome="diverged"/.test(text) ? text : undefined)), 15_000)
      assert.match(text, /book_audit_mismatched_levels\{[^}]*symbol="SUSHIUSDT"[^}]*\} [1-9]/)
      const gap = yield* eventually("a checksum gap, closed once the book is live again", Effect.map(getJson(`${base}/api/v1/exchange/gaps?channel=book`), ({ body }) =>
        body.data.gaps.find((g: any) => g.symbol === "SUSHIUSDT" && g.cause === "checksum" && g.end !== null)), 15_000)
      assert.strictEqual(gap.metadata.reason, "REST audit divergence")
      const { body } = yield* getJson(`${base}/health`)
      const books = body.feeds.find((f: any) => f.feed === "binance-futures/public").books
      assert.strictEqual(books.find((b: any) => b.symbol === "CTKUSDT").resyncs, 0)
    })), { timeout: 60_000 })
})

describe("resubscription pacing", () => {
  it.live("streams gone stale are resubscribed by listed requests, within Binance's pace per connection", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance-futures",
        BINANCE_FUTURES_SYMBOLS: "SUSHIUSDT,CTKUSDT", BINANCE_FUTURES_WS_URL: fake.wsUrl, BINANCE_FUTURES_REST_URL: fake.httpUrl,
        FRESHNESS_MIN_SAMPLES: "10", FRESHNESS_FACTOR: "10", FRESHNESS_MIN_STALE_SECONDS: "1"
      })
      yield* eventually("both paces learned", Effect.sync(() =>
        ["sushiusdt", "ctkusdt"].every((s) => fake.sent.filter((f) => f.stream === `${s}@depth@100ms`).length >= 40) ? true : undefined), 20_000)
      fake.silence("sushiusdt@depth@100ms")
      fake.silence("ctkusdt@depth@100ms")
      const requests = yield* eventually("both resubscribed", Effect.sync(() => {
        const subscribed = fake.controlMessages.filter((m) => m.method === "SUBSCRIBE").flatMap((m) => m.params)
        return subscribed.includes("sushiusdt@depth@100ms") && subscribed.includes("ctkusdt@depth@100ms") ? fake.controlMessages : undefined
      }), 15_000)
      // Found stale in the same check they share one request pair; in two checks, two pairs: never one pair per stream and more.
      assert.isAtMost(requests.length, 4)
      assert.sameMembers(requests.filter((m) => m.method === "SUBSCRIBE").flatMap((m) => m.params), ["sushiusdt@depth@100ms", "ctkusdt@depth@100ms"])
      for (const ws of new Set(fake.receivedAt.map((r) => r.ws))) {
        assert.isAtMost(maxInWindow(fake.receivedAt.filter((r) => r.ws === ws).map((r) => r.at), 1000), 10, "USD-M: 10 messages a second per connection")
      }
    })), { timeout: 60_000 })
})
