/**
 * The batched writer against real databases: idempotent ids, one statement per
 * batch, a refused row isolated without losing its neighbours, and a database
 * outage survived without losing what the queues hold.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { RowBatch, type LargeTradeRow } from "../src/domain/rows.ts"
import { embeddedLayer, postgresLayer } from "../src/storage/database.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { Writer, type WriterOptions } from "../src/storage/writer.ts"
import { TcpProxy } from "./support/proxy.ts"
import { eventually, postgresUrl } from "./support/service.ts"

const options: WriterOptions = {
  batchSize: 500,
  flushIntervalMs: 20,
  queueCapacity: 10_000,
  retryInitialMs: 50,
  retryMaxMs: 200,
  drainTimeoutMs: 5_000
}

const trade = (i: number, overrides: Partial<LargeTradeRow> = {}): LargeTradeRow => ({
  id: `writer-test_BTCUSDT_${i}`,
  exchange: "writer-test",
  symbol: "BTCUSDT",
  side: i % 2 === 0 ? "buy" : "sell",
  price: 50_000 + i / 100,
  size: 2.5,
  valueUsd: Math.round((50_000 + i / 100) * 2.5 * 100) / 100,
  timestamp: 1_700_000_000_000 + i,
  tradeId: String(i),
  isLiquidation: false,
  metadata: { i },
  ...overrides
})

const batchOf = (rows: ReadonlyArray<LargeTradeRow>) => {
  const batch = new RowBatch()
  batch.large_trades.push(...rows)
  return batch
}

const countRows = SqlClient.SqlClient.use((sql) =>
  sql<{ n: bigint }>`SELECT count(*) AS n FROM large_trades WHERE exchange = 'writer-test'`.pipe(Effect.map((r) => Number(r[0]!.n)))
)
const clean = SqlClient.SqlClient.use((sql) => sql`DELETE FROM large_trades WHERE exchange = 'writer-test'`.pipe(Effect.asVoid))

const databases: Array<[string, () => Layer.Layer<SqlClient.SqlClient, unknown>]> = [
  ["postgres", () => postgresLayer(postgresUrl)],
  ["embedded", () => embeddedLayer(undefined)]
]

describe.each(databases)("writer on %s", (_name, database) => {
  it.live("stores each row once however often it is offered, and isolates a refused row", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* clean
      const rows = Array.from({ length: 1200 }, (_, i) => trade(i))
      yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* Writer.make(options)
        yield* writer.offer(batchOf(rows))
        yield* writer.offer(batchOf(rows.slice(0, 700)))
        // Price too large for DECIMAL(20, 8): the database refuses it; its batch neighbours must still land.
        yield* writer.offer(batchOf([trade(5000), trade(5001, { price: 1e15 }), trade(5002)]))
        yield* eventually("rows written", Effect.gen(function*() {
          return (yield* countRows) === 1202 && writer.state().tables.large_trades.rejected === 1 ? true : undefined
        }), 20_000)
        assert.strictEqual(writer.state().tables.large_trades.written, 1202)
      }))
      assert.strictEqual(yield* countRows, 1202)
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql`SELECT price, value_usd, timestamp, metadata FROM large_trades WHERE id = 'writer-test_BTCUSDT_7'`
      assert.strictEqual(row!.price, "50000.07000000")
      assert.strictEqual(row!.value_usd, "125000.18")
      assert.strictEqual((row!.timestamp as Date).toISOString(), "2023-11-14T22:13:20.007Z")
      assert.deepStrictEqual(row!.metadata, { i: 7 })
      yield* clean
    }).pipe(Effect.provide(database())), { timeout: 60_000 })
})

describe("writer through a database outage", () => {
  it.live("holds its rows, reports the outage, retries, and drains when the database returns", () =>
    Effect.scoped(Effect.gen(function*() {
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => TcpProxy.start(5432)), (p) => Effect.promise(() => p.close()))
      yield* Effect.gen(function*() {
        yield* runMigrations()
        yield* clean
        const writer = yield* Writer.make(options)
        yield* writer.offer(batchOf([trade(1)]))
        yield* eventually("first row", Effect.map(countRows, (n) => (n === 1 ? true : undefined)))
        yield* Effect.promise(() => proxy.cut())
        yield* writer.offer(batchOf(Array.from({ length: 300 }, (_, i) => trade(100 + i))))
        yield* eventually("outage noticed", Effect.sync(() => (writer.state().databaseUp ? undefined : true)), 20_000)
        assert.isTrue(writer.state().retrying)
        yield* Effect.sleep("1 second")
        yield* Effect.promise(() => proxy.restore())
        yield* eventually("backlog drained", Effect.sync(() => (writer.state().tables.large_trades.written === 301 ? true : undefined)), 30_000)
        assert.isTrue(writer.state().databaseUp)
        assert.strictEqual(writer.state().tables.large_trades.dropped, 0)
      }).pipe(Effect.provide(Layer.fresh(postgresLayer(`postgres://postgres@127.0.0.1:${proxy.port}/test`))), Effect.scoped)
      yield* Effect.gen(function*() {
        assert.strictEqual(yield* countRows, 301)
        yield* clean
      }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
    })), { timeout: 90_000 })
})
