/**
 * `/api/v1/exchange/orderbooks` over real PostgreSQL: the newest book per
 * instrument with the exchange and symbol filters and `depth`, read by one
 * index probe per instrument (migration 0010), never by sorting the history.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { latestOrderBooksStatement } from "../src/storage/queries.ts"
import { freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const now = Date.UTC(2026, 10, 2, 9, 0, 0)
const levels = (from: number, step: number, n: number) => Array.from({ length: n }, (_, i) => [from + i * step, i + 1] as [number, number])
const book = (exchange: string, symbol: string, secondsAgo: number, mid: number) => ({
  id: `${exchange}_${symbol}_${secondsAgo}`, exchange, symbol,
  bids: levels(mid - 1, -1, 3), asks: levels(mid + 1, 1, 3),
  timestamp: now - secondsAgo * 1000, sequence: 1000 - secondsAgo, metadata: { seconds_ago: secondsAgo }
})

const onDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => effect.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

describe("latest order books", () => {
  it.live("the newest book per instrument, filtered by exchange and base asset or native symbol, cut to depth", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* onDatabase(Effect.gen(function*() {
        yield* truncateAll
        // The newest is written before an older one: the answer goes by the book's time, not by arrival.
        yield* insertRows("exchange_orderbooks", [
          book("binance", "BTCUSDT", 30, 100), book("binance", "BTCUSDT", 10, 110), book("binance", "BTCUSDT", 20, 120),
          book("binance", "ETHUSDT", 5, 50), book("binance", "BTCDOMUSDT", 5, 70),
          book("binance-futures", "BTCUSDT", 40, 200), book("binance-futures", "BTCUSDT", 15, 210),
          book("deribit", "BTC-PERPETUAL", 8, 300), book("okx", "BTC-USDT-SWAP", 3, 400), book("okx", "BTC-USDT-SWAP", 60, 410)
        ])
      }))
      const port = freePort()
      yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none" })
      const ask = (query: string) => Effect.map(getJson(`http://127.0.0.1:${port}/api/v1/exchange/orderbooks${query}`), ({ status, body }) => {
        assert.strictEqual(status, 200, query)
        return body.data.orderbooks as Array<any>
      })
      const seen = (books: Array<any>) => books.map((b) => `${b.exchange}:${b.symbol}:${b.metadata.seconds_ago}`)

      assert.deepStrictEqual(seen(yield* ask("")), [
        "binance:BTCDOMUSDT:5", "binance:BTCUSDT:10", "binance:ETHUSDT:5", "binance-futures:BTCUSDT:15", "deribit:BTC-PERPETUAL:8", "okx:BTC-USDT-SWAP:3"
      ])
      assert.deepStrictEqual(seen(yield* ask("?symbol=BTC")), ["binance:BTCUSDT:10", "binance-futures:BTCUSDT:15", "deribit:BTC-PERPETUAL:8", "okx:BTC-USDT-SWAP:3"],
        "the base asset, not BTCDOM")
      assert.deepStrictEqual(seen(yield* ask("?symbol=BTCUSDT")), ["binance:BTCUSDT:10", "binance-futures:BTCUSDT:15"])
      assert.deepStrictEqual(seen(yield* ask("?exchange=binance")), ["binance:BTCDOMUSDT:5", "binance:BTCUSDT:10", "binance:ETHUSDT:5"])
      assert.deepStrictEqual(seen(yield* ask("?exchange=binance-futures&symbol=BTC")), ["binance-futures:BTCUSDT:15"])
      assert.deepStrictEqual(seen(yield* ask("?exchange=kraken")), [])
      assert.deepStrictEqual(seen(yield* ask("?symbol=DOGE")), [])

      const [latest] = yield* ask("?exchange=binance&symbol=BTCUSDT&depth=2")
      assert.deepStrictEqual(latest, {
        exchange: "binance", symbol: "BTCUSDT", bids: [[109, 1], [108, 2]], asks: [[111, 1], [112, 2]],
        timestamp: new Date(now - 10_000).toISOString(), sequence: 990, metadata: { seconds_ago: 10 }
      })
      const [whole] = yield* ask("?exchange=binance&symbol=BTCUSDT")
      assert.deepStrictEqual(whole.bids, [[109, 1], [108, 2], [107, 3]], "every level without depth")
    })), { timeout: 60_000 })

  it.live("reads one index probe per instrument, not the history (200,000 books, one instrument quiet for a day)", () =>
    onDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* truncateAll
      yield* sql`INSERT INTO exchange_orderbooks (id, exchange, symbol, bids, asks, timestamp, sequence)
        SELECT 'b' || g, (ARRAY['binance','okx'])[1 + g % 2], (ARRAY['BTCUSDT','ETHUSDT','SOLUSDT','XRPUSDT'])[1 + (g / 2) % 4],
          '[[1,1]]'::jsonb, '[[2,1]]'::jsonb, timestamp '2026-11-01' + (g / 8) * interval '1 second', g
        FROM generate_series(0, 199999) AS g`
      // A venue's instrument that went quiet a day before: a read back through time would cross every later book.
      yield* sql`INSERT INTO exchange_orderbooks (id, exchange, symbol, bids, asks, timestamp, sequence)
        VALUES ('quiet', 'okx', 'DOGEUSDT', '[[1,1]]'::jsonb, '[[2,1]]'::jsonb, timestamp '2026-10-31', 0)`
      yield* sql`ANALYZE exchange_orderbooks`
      for (const filter of [{}, { exchange: "okx" }, { symbol: "BTC" }, { exchange: "binance", symbol: "ETHUSDT" }]) {
        const [text, params] = latestOrderBooksStatement(sql, filter).compile()
        const [{ "QUERY PLAN": [plan] }] = yield* sql.unsafe<{ "QUERY PLAN": [{ Plan: any }] }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, params)
        const scans: Array<{ type: string; rows: number }> = []
        const walk = (node: any) => {
          if (node["Relation Name"] === "exchange_orderbooks") scans.push({ type: node["Node Type"], rows: node["Actual Rows"] * node["Actual Loops"] })
          for (const child of node.Plans ?? []) walk(child)
        }
        walk(plan.Plan)
        const read = scans.reduce((sum, s) => sum + s.rows, 0)
        assert.isAbove(scans.length, 0)
        assert.notInclude(scans.map((s) => s.type), "Seq Scan", JSON.stringify(filter))
        // 9 instruments: at most one row to find each and one to read its book (plus the seed).
        assert.isAtMost(read, 2 * 9 + 1, `${JSON.stringify(filter)}: ${JSON.stringify(scans)}`)
        // Rows returned can hide rows walked past inside an index: the pages touched cannot.
        const pages = plan.Plan["Shared Hit Blocks"] + plan.Plan["Shared Read Blocks"]
        assert.isAtMost(pages, 10 * 9, `${JSON.stringify(filter)}: pages touched (a few per index probe, 2 probes per instrument, 9 instruments)`)
      }
      const rows = yield* latestOrderBooksStatement(sql, {})
      // Each live instrument has one book a second; the series ends 24,999 s after midnight.
      assert.deepStrictEqual(rows.map((r: any) => `${r.exchange}:${r.symbol} ${new Date(r.timestamp).toISOString()}`), [
        ...["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"].map((s) => `binance:${s} 2026-11-01T06:56:39.000Z`),
        "okx:BTCUSDT 2026-11-01T06:56:39.000Z", "okx:DOGEUSDT 2026-10-31T00:00:00.000Z",
        ...["ETHUSDT", "SOLUSDT", "XRPUSDT"].map((s) => `okx:${s} 2026-11-01T06:56:39.000Z`)
      ])
    })), { timeout: 60_000 })
})
