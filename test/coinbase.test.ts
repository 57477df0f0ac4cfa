/**
 * Coinbase end to end: the service started by configuration alone against the
 * fake Coinbase, on either feed, into real PostgreSQL; every stored trade
 * checked through the HTTP API; books live and never crossed; trades lost in
 * transit repaired from REST exactly once; a lost Advanced Trade message seen
 * by its sequence_num and the connection's books resynced.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { coinbaseConfig } from "../src/venues/coinbase/live.ts"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeCoinbase } from "./fake/coinbase.ts"
import { maxInWindow } from "./support/rate.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

const env = (fake: FakeCoinbase, port: number, feed: "advanced" | "exchange") => ({
  DATABASE_URL: postgresUrl,
  PORT: String(port),
  HOST: "127.0.0.1",
  EXCHANGES: "coinbase",
  COINBASE_FEED: feed,
  COINBASE_PRODUCTS: fake.products.join(","),
  COINBASE_WS_URL: fake.wsUrl,
  COINBASE_REST_URL: fake.httpUrl,
  LARGE_TRADE_THRESHOLD_DEFAULT: "1",
  ORDERBOOK_INTERVAL_SECONDS: "1",
  WRITER_FLUSH_MS: "20"
})

const startFake = (frameIntervalMs: number) =>
  Effect.acquireRelease(Effect.promise(() => FakeCoinbase.start({ frameIntervalMs })), (f) => Effect.promise(() => f.close()))

const matches = (fake: FakeCoinbase) => fake.played.filter((m) => m.type === "match" || m.type === "last_match")
/** A USD trade at or above the 1 USD threshold the tests configure: one that must be stored. */
const large = (m: any) => m.product_id.endsWith("-USD") && Number(m.price) * Number(m.size) >= 1

const storedTrades = withDatabase(SqlClient.SqlClient.use((sql) =>
  sql<{ trade_id: string; symbol: string }>`SELECT trade_id, symbol FROM large_trades WHERE exchange = 'coinbase'`
))

describe("coinbase defaults", () => {
  it.effect("budgets public REST at Coinbase's sustained 10 requests/s (15 is only the burst)", () =>
    Effect.gen(function*() {
      const config = yield* coinbaseConfig
      assert.strictEqual(config.requestsPerSecond, 10)
    }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: {} })))))
})

describe.each(["advanced", "exchange"] as const)("coinbase on the %s feed", (feed) => {
  it.live("stores every USD-valued trade right, converts GBP at a live cross rate, leaves EUR and BTC quotes unvalued, keeps books live", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const fake = yield* startFake(1)
      const port = freePort()
      yield* startService(env(fake, port, feed))
      yield* eventually("the session played out", Effect.sync(() => (fake.finished() ? true : undefined)), 60_000)
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      const played = matches(fake)
      const usd = played.filter(large)
      const { body } = yield* eventually("USD trades stored", Effect.map(getJson(`${base}/large-trades?exchange=coinbase&limit=1000&hours=1`), (answer) =>
        answer.body.data.trades.filter((t: any) => t.symbol.endsWith("-USD")).length >= usd.length ? answer : undefined), 30_000)
      const stored = new Map<string, any>(body.data.trades.map((t: any) => [`${t.symbol}:${t.trade_id}`, t]))
      for (const m of usd) {
        const row = stored.get(`${m.product_id}:${m.trade_id}`)
        assert.isDefined(row, `${m.product_id} trade ${m.trade_id}`)
        assert.strictEqual(row.price, Number(m.price))
        assert.strictEqual(row.size, Number(m.size))
        assert.closeTo(row.value_usd, Math.round(Number(m.price) * Number(m.size) * 100) / 100, 0.005)
        assert.strictEqual(row.side, m.side === "buy" ? "sell" : "buy", "the taker side")
        assert.strictEqual(row.exchange, "coinbase")
      }
      // GBP: SKL trades on both SKL-USD and SKL-GBP, which gives a live GBP rate for every GBP product.
      const gbp = body.data.trades.filter((t: any) => t.symbol.endsWith("-GBP"))
      assert.isAbove(gbp.length, 0)
      for (const row of gbp) {
        assert.strictEqual(row.metadata.quote_usd_source, "reference:GBP")
        assert.isAbove(row.metadata.quote_usd_rate, 1.2, "a pound was worth about 1.38 dollars in April 2021")
        assert.isBelow(row.metadata.quote_usd_rate, 1.5)
        assert.closeTo(row.value_usd, row.price * row.size * row.metadata.quote_usd_rate, 0.01)
      }
      assert.isTrue(body.data.trades.every((t: any) => !t.symbol.endsWith("-EUR") && !t.symbol.endsWith("-BTC")),
        "EUR and BTC quotes have no live USD rate here: not stored as USD")

      const books = yield* eventually("books live", Effect.map(getJson(`${base}/orderbooks?exchange=coinbase`), ({ body }) =>
        body.data.orderbooks.length === fake.products.length ? body.data.orderbooks : undefined), 20_000)
      for (const book of books) {
        assert.isAbove(book.bids.length, 0, book.symbol)
        assert.isAbove(book.asks.length, 0, book.symbol)
        assert.isBelow(book.bids[0][0], book.asks[0][0], `${book.symbol} not crossed`)
      }
      const health = yield* getJson(`http://127.0.0.1:${port}/health`)
      const feeds = health.body.feeds.filter((f: any) => f.venue === "coinbase")
      assert.strictEqual(feeds.length, 1, "ten products fit one connection")
      assert.isTrue(feeds.every((f: any) => f.state === "connected" && f.books.every((b: any) => b.state === "live")))
    })), { timeout: 90_000 })

  it.live("matches lost in transit are a sequence gap, repaired from REST exactly once", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const fake = yield* startFake(1)
      const port = freePort()
      yield* startService(env(fake, port, feed))
      yield* eventually("trades flowing", Effect.sync(() => (matches(fake).length >= 3 ? true : undefined)), 30_000)
      fake.loseNext("match", 3)
      yield* eventually("the session played out", Effect.sync(() => (fake.finished() ? true : undefined)), 60_000)
      assert.strictEqual(fake.lost.length, 3)
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      const gaps = yield* eventually("the trade gaps verified", Effect.map(getJson(`${base}/gaps?channel=trades&exchange=coinbase`), ({ body }) =>
        body.data.count > 0 && body.data.gaps.every((g: any) => g.repair_status === "verified") ? body.data.gaps : undefined), 30_000)
      assert.isTrue(gaps.every((g: any) => g.cause === "sequence_gap"))
      assert.strictEqual(gaps.reduce((n: number, g: any) => n + g.repaired_count, 0), 3)
      // Every match of a valued product stored once: lost ones included, none twice (ids are primary keys; counts prove it).
      const rows = yield* storedTrades
      const keys = rows.map((r) => `${r.symbol}:${r.trade_id}`)
      assert.strictEqual(new Set(keys).size, keys.length)
      for (const lost of fake.lost.filter(large)) {
        assert.include(keys, `${lost.product_id}:${lost.trade_id}`)
      }
      const usdPlayed = matches(fake).filter(large).length
      assert.strictEqual(rows.filter((r) => r.symbol.endsWith("-USD")).length, usdPlayed)
    })), { timeout: 90_000 })
})

describe("coinbase advanced trade sequence_num", () => {
  it.live("a lost level2 message is seen by the connection's sequence_num: a book gap, and every book of it resubscribed", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const fake = yield* startFake(1)
      const port = freePort()
      yield* startService(env(fake, port, "advanced"))
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      yield* eventually("books live", Effect.map(getJson(`http://127.0.0.1:${port}/health`), ({ body }) =>
        body.feeds.some((f: any) => f.venue === "coinbase" && f.books.length > 0 && f.books.every((b: any) => b.state === "live")) ? true : undefined), 30_000)
      const subscribesBefore = fake.subscribeMessages.filter((m) => m.channel === "level2" && m.type === "subscribe").length
      fake.loseNext("l2update", 1)
      const gaps = yield* eventually("a book gap recorded", Effect.map(getJson(`${base}/gaps?channel=book&exchange=coinbase`), ({ body }) =>
        body.data.count > 0 ? body.data.gaps : undefined), 20_000)
      assert.isTrue(gaps.every((g: any) => g.cause === "sequence_gap"))
      // Resubscriptions gather for a moment and wait for the pacer: they follow the gap shortly.
      const resubscribes = yield* eventually("the books resubscribed", Effect.sync(() => {
        const sent = fake.subscribeMessages.filter((m) => m.channel === "level2" && m.type === "subscribe").slice(subscribesBefore)
        return sent.flatMap((m) => m.product_ids).length >= fake.products.length ? sent : undefined
      }), 10_000)
      assert.sameMembers(resubscribes.flatMap((m) => m.product_ids), [...fake.products], "each book of the connection asked for a fresh snapshot")
      assert.strictEqual(resubscribes.length, 1, "in one message listing them all, not one per product")
      // Coinbase takes 8 messages a second per IP: the storm (and the start, every connection subscribing) never exceeds it.
      assert.isAtMost(maxInWindow(fake.receivedAt, 1000), 8)
      yield* eventually("books live again", Effect.map(getJson(`http://127.0.0.1:${port}/health`), ({ body }) =>
        body.feeds.some((f: any) => f.venue === "coinbase" && f.books.every((b: any) => b.state === "live")) ? true : undefined), 20_000)
    })), { timeout: 90_000 })
})
