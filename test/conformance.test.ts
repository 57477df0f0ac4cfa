/**
 * The conformance suite: every venue through every fault the fake exchange can
 * inject, and after each the same invariants: the service never crashes and the
 * feed recovers by itself; no crossed book is stored; every gap is recorded;
 * every recoverable trade is recovered exactly once; no row is stored twice.
 * It prints a tally (faults injected, gaps recorded, trades repaired, duplicates).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBinance } from "./fake/binance.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

interface VenueCase {
  readonly id: "binance" | "binance-futures"
  readonly market: "spot" | "futures"
  readonly prefix: string
  readonly symbols: ReadonlyArray<string>
  /** The busiest book and trade streams of the recording: where faults are injected. */
  readonly symbol: string
}

const venues: ReadonlyArray<VenueCase> = [
  { id: "binance", market: "spot", prefix: "BINANCE", symbols: ["NKNUSDT", "BLZETH", "LRCBTC"], symbol: "NKNUSDT" },
  { id: "binance-futures", market: "futures", prefix: "BINANCE_FUTURES", symbols: ["SUSHIUSDT", "CTKUSDT", "AKROUSDT", "KEEPUSDT"], symbol: "SUSHIUSDT" }
]

interface Fault {
  readonly name: string
  readonly inject: (fake: FakeBinance, venue: VenueCase) => Effect.Effect<void>
  /** The gap the ledger must hold afterwards, if the fault loses data. */
  readonly gap?: { readonly channel: string; readonly causes: ReadonlyArray<string> }
  readonly decodeErrors?: boolean
  /** A trade fault: on spot it needs the fake's run of trades (the recording has two). */
  readonly trades?: boolean
}

const depth = (v: VenueCase) => `${v.symbol.toLowerCase()}@depth@100ms`
const trades = (v: VenueCase) => `${v.symbol.toLowerCase()}@aggTrade`
const sync = (f: () => void) => Effect.sync(f)

const faults: ReadonlyArray<Fault> = [
  { name: "drop a book delta", inject: (f, v) => sync(() => f.loseNext(depth(v), 1)), gap: { channel: "book", causes: ["sequence_gap"] } },
  { name: "duplicate a book delta", inject: (f, v) => sync(() => f.duplicateNext(depth(v))) },
  { name: "reorder two book deltas", inject: (f, v) => sync(() => f.reorderNext(depth(v))), gap: { channel: "book", causes: ["sequence_gap"] } },
  { name: "rename a field of a book delta", inject: (f, v) => sync(() => f.renameNext(depth(v), "b", "bids")), gap: { channel: "book", causes: ["sequence_gap"] }, decodeErrors: true },
  { name: "close the socket with a close frame", inject: (f) => sync(() => f.dropConnections("close")), gap: { channel: "book", causes: ["disconnect"] } },
  { name: "close the socket without a close frame", inject: (f) => sync(() => f.dropConnections("terminate")), gap: { channel: "book", causes: ["disconnect"] } },
  {
    name: "stop sending while the socket stays open",
    inject: (f) => Effect.andThen(sync(() => f.pause()), Effect.andThen(Effect.sleep("2500 millis"), sync(() => f.resume()))),
    gap: { channel: "book", causes: ["stale"] }
  },
  { name: "send a malformed frame", inject: (f, v) => sync(() => f.inject(v.market, "{\"stream\": \"x\", \"data\": {\"e\": \"aggTr")), decodeErrors: true },
  {
    name: "send an unknown message type",
    inject: (f, v) => sync(() => f.inject(v.market, JSON.stringify({ stream: depth(v), data: { e: "depthUpdateV2", s: v.symbol } }))),
    decodeErrors: true
  },
  {
    name: "answer REST with 429, then 418",
    inject: (f, v) => sync(() => {
      f.failNext("/depth", 429, 1)
      f.failNext("/depth", 418, 1)
      f.loseNext(depth(v), 1)
    }),
    gap: { channel: "book", causes: ["sequence_gap"] }
  },
  {
    name: "delay REST responses",
    inject: (f, v) => sync(() => {
      f.delayRest(1500)
      f.loseNext(depth(v), 1)
    }),
    gap: { channel: "book", causes: ["sequence_gap"] }
  },
  { name: "drop trades", inject: (f, v) => sync(() => f.loseNext(trades(v), 2)), gap: { channel: "trades", causes: ["sequence_gap"] }, trades: true },
  { name: "duplicate a trade", inject: (f, v) => sync(() => f.duplicateNext(trades(v))), trades: true },
  { name: "reorder two trades", inject: (f, v) => sync(() => f.reorderNext(trades(v))), gap: { channel: "trades", causes: ["sequence_gap"] }, trades: true },
  { name: "rename a field of a trade", inject: (f, v) => sync(() => f.renameNext(trades(v), "p", "price")), gap: { channel: "trades", causes: ["sequence_gap"] }, decodeErrors: true, trades: true }
]

const tally = { faults: 0, gaps: 0, tradesRepaired: 0, duplicates: 0 }

const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

afterAll(() => {
  console.log(`conformance: ${tally.faults} faults injected, ${tally.gaps} gaps recorded, ${tally.tradesRepaired} trades repaired, ${tally.duplicates} duplicates found`)
})

describe.each(venues)("conformance of $id", (venue) => {
  it.live.each(faults)("$name", (fault) =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const fake = yield* Effect.acquireRelease(
        // The spot recording has two aggTrades in all: for a trade fault, a run of them on the target symbol.
        Effect.promise(() => FakeBinance.start({
          frameIntervalMs: { spot: 25, futures: 5 },
          ...(fault.trades === true && venue.market === "spot" ? { spotTrades: { symbol: venue.symbol, every: 3 } } : {})
        })),
        (f) => Effect.promise(() => f.close())
      )
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl,
        PORT: String(port),
        HOST: "127.0.0.1",
        EXCHANGES: venue.id,
        [`${venue.prefix}_SYMBOLS`]: venue.symbols.join(","),
        [`${venue.prefix}_WS_URL`]: fake.wsUrl,
        [`${venue.prefix}_REST_URL`]: fake.httpUrl,
        [`${venue.prefix}_STALE_SECONDS`]: "1.5",
        LARGE_TRADE_THRESHOLD_DEFAULT: "1",
        ORDERBOOK_INTERVAL_SECONDS: "0.2",
        WRITER_FLUSH_MS: "20"
      })
      const base = `http://127.0.0.1:${port}`
      const bookOf = Effect.map(getJson(`${base}/health`), ({ body }) =>
        body.feeds.flatMap((f: any) => f.books).find((b: any) => b.symbol === venue.symbol))

      yield* eventually("the target book live and its trades flowing", Effect.map(bookOf, (book) =>
        book?.state === "live" && ((venue.market === "spot" && fault.trades !== true) || fake.sent.some((f) => f.stream === trades(venue))) ? true : undefined))
      const resyncsBefore = (yield* bookOf).resyncs
      yield* fault.inject(fake, venue)
      tally.faults++

      // The service recovers by itself: the target book is live again, every feed connected.
      // What the fault must have led to before "recovered" means anything: a resync, a reconnect, or (harmless) nothing.
      const effect = fault.gap?.channel === "book"
        ? (fault.gap.causes.includes("sequence_gap") ? "resync" : "reconnect")
        : "none"
      if (effect === "none") yield* Effect.sleep("1 second")
      const recovered = yield* eventually("recovered", Effect.gen(function*() {
        const { status, body } = yield* getJson(`${base}/health`)
        const book = body.feeds.flatMap((f: any) => f.books).find((b: any) => b.symbol === venue.symbol)
        const happened = effect === "resync"
          ? book?.resyncs > resyncsBefore
          : effect === "reconnect"
          ? body.feeds.every((f: any) => f.reconnects > 0)
          : true
        return status === 200 && happened && body.feeds.every((f: any) => f.state === "connected") && book?.state === "live"
          ? book
          : undefined
      }), 20_000)
      if (effect === "none") assert.strictEqual(recovered.resyncs, resyncsBefore, "nothing was lost: no resync")
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished(venue.market) ? true : undefined)), 30_000)
      const health = yield* getJson(`${base}/health`)
      assert.strictEqual(health.status, 200, "the service is up")

      const { body } = yield* getJson(`${base}/api/v1/exchange/gaps?limit=1000`)
      if (fault.gap !== undefined) {
        const expected = fault.gap
        const found = body.data.gaps.filter((g: any) => g.channel === expected.channel && expected.causes.includes(g.cause))
        assert.isAtLeast(found.length, 1, `a ${expected.channel} gap (${expected.causes.join("/")}) is recorded`)
      } else {
        assert.strictEqual(body.data.count, 0, "a fault that loses nothing leaves no gap")
      }
      tally.gaps += body.data.count

      if (fault.decodeErrors === true) {
        const metrics = yield* Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
        assert.match(metrics, /feed_decode_errors_total\{[^}]*\} [1-9]/, "the bad frame is counted")
      }

      // Every trade that happened on a USD-valued instrument is stored, exactly once (repairs included).
      const played = fake.played
        .filter((f) => f.stream.endsWith("@aggTrade") && venue.symbols.includes(String(f.data.s)) && String(f.data.s).endsWith("USDT"))
        .map((f) => `${f.data.s}/${f.data.a}`)
      const stored = yield* eventually("every trade stored", withDatabase(SqlClient.SqlClient.use((sql) =>
        sql<{ key: string }>`SELECT symbol || '/' || trade_id AS key FROM large_trades WHERE exchange = ${venue.id} AND NOT is_liquidation`
      )).pipe(Effect.map((rows) => (rows.length >= played.length ? rows.map((r) => r.key) : undefined))), 20_000)
      const duplicates = stored.length - new Set(stored).size
      tally.duplicates += duplicates
      assert.strictEqual(duplicates, 0, "no trade stored twice")
      assert.sameMembers(stored, played, "every recoverable trade recovered")
      const repaired = body.data.gaps.filter((g: any) => g.channel === "trades")
      assert.isTrue(repaired.every((g: any) => g.repair_status === "verified"), "trade gaps are verified")
      tally.tradesRepaired += repaired.reduce((n: number, g: any) => n + g.repaired_count, 0)

      // No crossed (or locked) book was ever stored.
      const crossed = yield* withDatabase(SqlClient.SqlClient.use((sql) =>
        sql<{ n: bigint }>`SELECT count(*) AS n FROM exchange_orderbooks
          WHERE exchange = ${venue.id} AND (bids->0->>0)::numeric >= (asks->0->>0)::numeric`
      ))
      assert.strictEqual(Number(crossed[0]!.n), 0, "no crossed book stored")
      const books = yield* withDatabase(SqlClient.SqlClient.use((sql) =>
        sql<{ n: bigint }>`SELECT count(*) AS n FROM exchange_orderbooks WHERE exchange = ${venue.id}`
      ))
      assert.isAbove(Number(books[0]!.n), 0)
    })), { timeout: 90_000 })
})
