/**
 * The batched writer against real databases: idempotent ids, one statement per
 * batch, a refused row isolated without losing its neighbours, and a database
 * outage survived without losing what the queues hold.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { RowBatch, type LargeTradeRow, type RowsByTable, type TableName, tableNames } from "../src/domain/rows.ts"
import { embeddedLayer, postgresLayer } from "../src/storage/database.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { isDataError, type RowLoss, sqlStateOf, unencodable, Writer, type WriterOptions } from "../src/storage/writer.ts"
import { TcpProxy } from "./support/proxy.ts"
import { eventually, postgresUrl } from "./support/service.ts"

const options: WriterOptions = {
  batchSize: 500,
  flushIntervalMs: 20,
  queueCapacity: 10_000,
  retryInitialMs: 50,
  retryMaxMs: 200,
  drainTimeoutMs: 5_000,
  suspectAttempts: 3
}

const trade = (i: number, overrides: Partial<LargeTradeRow> = {}): LargeTradeRow => ({
  id: `writer-test_BTCUSDT_${i}`,
  exchange: "writer-test",
  symbol: "BTCUSDT",
  side: i % 2 === 0 ? "buy" : "sell",
  price: 50_000 + i / 100,
  size: 2.5,
  sizeBase: 2.5,
  sizeUnit: "base",
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
        yield* eventually("all durable while nothing waits", Effect.sync(() => (writer.durableUntil(Date.now()) === Date.now() ? true : undefined)))
        yield* Effect.promise(() => proxy.cut())
        yield* writer.offer(batchOf(Array.from({ length: 300 }, (_, i) => trade(100 + i))))
        const offeredAt = Date.now()
        yield* eventually("outage noticed", Effect.sync(() => (writer.state().databaseUp ? undefined : true)), 20_000)
        assert.isTrue(writer.state().retrying)
        yield* Effect.sleep("1 second")
        // Rows held in memory since offeredAt: nothing after it is durable, whatever the clock says now.
        assert.isAtMost(writer.durableUntil(Date.now()), offeredAt)
        yield* Effect.promise(() => proxy.restore())
        yield* eventually("backlog drained", Effect.sync(() => (writer.state().tables.large_trades.written === 301 ? true : undefined)), 30_000)
        const now = Date.now()
        assert.strictEqual(writer.durableUntil(now), now, "stored: durable to now again")
        assert.isTrue(writer.state().databaseUp)
        assert.strictEqual(writer.state().tables.large_trades.dropped, 0)
      }).pipe(Effect.provide(Layer.fresh(postgresLayer(`postgres://postgres@127.0.0.1:${proxy.port}${new URL(postgresUrl).pathname}`))), Effect.scoped)
      yield* Effect.gen(function*() {
        assert.strictEqual(yield* countRows, 301)
        yield* clean
      }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
    })), { timeout: 90_000 })
})

// ---------------------------------------------------------------------------
// Refusals by SQLSTATE, poisoned rows, losses
// ---------------------------------------------------------------------------

describe("what a refusal means", () => {
  it("isolates rows only for data errors (classes 22 and 23); every other class holds the batch", () => {
    for (const code of ["22003", "22P02", "22007", "22P05", "23505", "23514", "23502"]) assert.isTrue(isDataError(code), code)
    for (const code of ["08006", "08001", "25006", "40001", "40P01", "53100", "53200", "53300", "55P03", "57014", "57P01", "58030", "XX000", "42P01"]) {
      assert.isFalse(isDataError(code), code)
    }
    assert.isFalse(isDataError(null), "no SQLSTATE: the statement never got an answer")
  })

  it("reads the SQLSTATE where the driver keeps it (on the reason's cause)", () => {
    const driverError = { _tag: "SqlError", reason: { _tag: "UnknownError", cause: Object.assign(new Error("cannot execute INSERT in a read-only transaction"), { code: "25006" }) } }
    assert.strictEqual(sqlStateOf(driverError), "25006")
    assert.strictEqual(sqlStateOf(new Error("connect ECONNREFUSED")), null)
  })

  it("refuses rows that cannot be encoded, naming the field", () => {
    assert.strictEqual(unencodable(trade(1, { price: Number.NaN })), "price is NaN")
    assert.strictEqual(unencodable(trade(1, { timestamp: 1e20 })), "timestamp 100000000000000000000 is not a time")
    assert.isDefined(unencodable({ id: "b", bids: [[1, Number.POSITIVE_INFINITY]], asks: [] }))
    assert.isUndefined(unencodable(trade(1)))
  })
})

const at = 1_700_000_000_000
const meta = { test: "writer" }
/** One good row per table, `i` apart; `poison` gives the same row with a field the database can never take. */
const rowsPerTable: { readonly [T in TableName]: (i: number) => RowsByTable[T] } = {
  large_trades: (i) => trade(10_000 + i),
  funding_rates: (i) => ({ id: `writer-test_F_${i}`, exchange: "writer-test", symbol: "F", rate: 0.0001, predictedRate: null, timestamp: at + i, nextFundingTime: null, metadata: meta }),
  open_interest: (i) => ({ id: `writer-test_OI_${i}`, exchange: "writer-test", symbol: "OI", openInterest: 10, openInterestBase: null, openInterestUsd: 500_000, timestamp: at + i, metadata: meta }),
  exchange_orderbooks: (i) => ({ id: `writer-test_B_${i}`, exchange: "writer-test", symbol: "B", bids: [[100, 1]], asks: [[101, 2]], timestamp: at + i, sequence: i, metadata: meta }),
  volatility_index: (i) => ({ id: `writer-test_V_${i}`, exchange: "writer-test", indexName: "V", value: 55, timestamp: at + i, metadata: meta }),
  option_chain: (i) => ({
    id: `writer-test_O_${i}`, exchange: "writer-test", currency: "BTC", instrument: "O", expiry: at + 86_400_000, strike: 50_000, optionType: "call",
    markPrice: 0.05, markIv: 55, bidIv: null, askIv: null, bestBid: null, bestAsk: null, delta: 0.5, gamma: null, vega: null, theta: null, rho: null,
    openInterest: 3, underlyingPrice: 50_000, underlyingIndex: "BTC-USD", indexPrice: 50_000, timestamp: at + i, metadata: meta
  }),
  futures_settlements: (i) => ({
    id: `writer-test_S_${i}`, exchange: "writer-test", symbol: "S", root: "BTC", tradeDate: at + i * 86_400_000, expiry: at + 90 * 86_400_000, price: 50_000,
    volume: 10, openInterest: 20, contractSize: 5, source: "test", timestamp: at + i, metadata: meta
  }),
  futures_basis: (i) => ({
    id: `writer-test_BA_${i}`, exchange: "writer-test", symbol: "BA", futuresPrice: 50_500, spotPrice: 50_000, spotSource: "test", basis: 500, basisPercent: 1,
    annualizedPercent: 4, daysToExpiry: 90, timestamp: at + i, metadata: meta
  }),
  futures_rolls: (i) => ({
    id: `writer-test_R_${i}`, exchange: "writer-test", root: "BTC", fromSymbol: "A", toSymbol: "B", reason: "test", tradeDate: at + i * 86_400_000,
    fromOpenInterest: 1, toOpenInterest: 2, fromVolume: 3, toVolume: 4, timestamp: at + i, metadata: meta
  }),
  trade_bars: (i) => ({
    id: `writer-test_TB_${i}`, exchange: "writer-test", symbol: "TB", base: "BTC", instrumentKind: "perpetual", timestamp: at + i * 60_000, open: 100, high: 101, low: 99, close: 100,
    openTime: at + i * 60_000, closeTime: at + i * 60_000 + 1, volumeBase: 2, volumeUsd: 200, buyVolumeUsd: 150, sellVolumeUsd: 50, tradeCount: 2,
    longLiquidationsUsd: 0, shortLiquidationsUsd: 0, liquidationCount: 0, observedWhole: true, partialReason: null, contribution: `t${i}|t${i}|1`, correction: false
  }),
  exchange_spreads: (i) => ({ id: `writer-test_SP_${i}`, asset: "BTC", timestamp: at + i, quotes: [], pairs: [], excluded: [], changed: true, metadata: meta }),
  arbitrage_opportunities: (i) => ({
    id: `writer-test_AR_${i}`, asset: "BTC", market: "spot", buyExchange: "a", buySymbol: "A", sellExchange: "b", sellSymbol: "B", openedAt: at + i,
    closedAt: null, closeReason: null, lastSeenAt: at + i, openEdgeBps: 5, peakEdgeBps: 5, peakAt: at + i, buyPrice: 100, sellPrice: 101, sizeBase: 1,
    sizeUsd: 100, buyFeeBps: 10, sellFeeBps: 10, metadata: meta
  })
}
const poisons: ReadonlyArray<readonly [string, (row: Record<string, unknown>) => Record<string, unknown>]> = [
  ["a NaN", (row) => ({ ...row, [Object.keys(row).find((k) => typeof row[k] === "number" && !["timestamp", "sequence"].includes(k))!]: Number.NaN })],
  ["an invalid time", (row) => ({ ...row, ["openedAt" in row ? "openedAt" : "timestamp"]: Number.NaN })],
  // Passes the encode check, throws while its statement is built (JSON has no BigInt): the rows' fault, typed.
  ["metadata that will not serialise", (row) => ("metadata" in row ? { ...row, metadata: { n: 1n } } : { ...row, timestamp: Number.NaN })]
]

const tableCount = (table: TableName) => SqlClient.SqlClient.use((sql) =>
  sql.unsafe<{ n: bigint }>(`SELECT count(*) AS n FROM ${table} WHERE id LIKE 'writer-test%'`).pipe(Effect.map((r) => Number(r[0]!.n))))
const cleanAll = SqlClient.SqlClient.use((sql) =>
  Effect.gen(function*() {
    for (const table of tableNames) yield* sql.unsafe(`DELETE FROM ${table} WHERE id LIKE 'writer-test%'`)
    yield* sql`DELETE FROM rejected_rows WHERE row_id LIKE 'writer-test%'`
  }))

describe("a poisoned row between good ones", () => {
  it.live("every table stores every good row; the poisoned one goes to rejected_rows, and the drainer lives on", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* cleanAll
      yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* Writer.make(options)
        for (const table of tableNames) {
          for (const [p, [_name, poison]] of poisons.entries()) {
            const batch = new RowBatch()
            const make = rowsPerTable[table] as unknown as (i: number) => Record<string, unknown>
            const rows = [make(p * 10 + 1), poison(make(p * 10 + 2)), make(p * 10 + 3)]
            ;(batch[table] as Array<unknown>).push(...rows)
            yield* writer.offer(batch)
            // Offered on its own after the poison: a drainer that died on the first would never store it.
            const later = new RowBatch()
            ;(later[table] as Array<unknown>).push(make(p * 10 + 4))
            yield* writer.offer(later)
          }
        }
        yield* eventually("every good row stored", Effect.gen(function*() {
          for (const table of tableNames) if ((yield* tableCount(table)) < 3 * poisons.length) return undefined
          return true
        }), 20_000)
        for (const table of tableNames) {
          assert.strictEqual(yield* tableCount(table), 3 * poisons.length, `${table}: three good rows per poison`)
          assert.strictEqual(writer.state().tables[table].rejected, poisons.length, `${table}: one row refused per poison`)
        }
      }))
      const sql = yield* SqlClient.SqlClient
      const dead = yield* sql<{ table_name: string; row_id: string; sqlstate: string | null; message: string }>`
        SELECT table_name, row_id, sqlstate, message FROM rejected_rows WHERE row_id LIKE 'writer-test%' ORDER BY table_name, row_id`
      assert.strictEqual(dead.length, tableNames.length * poisons.length)
      assert.sameMembers([...new Set(dead.map((d) => d.table_name))], [...tableNames])
      assert.isTrue(dead.every((d) => d.sqlstate === null && /NaN|not a time|BigInt/.test(d.message)), JSON.stringify(dead.slice(0, 3)))
      yield* cleanAll
    }).pipe(Effect.provide(postgresLayer(postgresUrl))), { timeout: 60_000 })

  it.live("a row the database refuses as data is kept with its SQLSTATE", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* cleanAll
      yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* Writer.make(options)
        // DECIMAL(20, 8) holds at most 10^12: 22003, numeric value out of range.
        yield* writer.offer(batchOf([trade(7000), trade(7001, { price: 1e15 }), trade(7002)]))
        yield* eventually("refused row kept", Effect.sync(() => (writer.state().tables.large_trades.rejected === 1 ? true : undefined)), 20_000)
      }))
      const sql = yield* SqlClient.SqlClient
      const [dead] = yield* sql<{ sqlstate: string; row: { price: number } }>`SELECT sqlstate, row FROM rejected_rows WHERE row_id = 'writer-test_BTCUSDT_7001'`
      assert.strictEqual(dead!.sqlstate, "22003")
      assert.strictEqual(dead!.row.price, 1e15, "the row as it was, ready to replay")
      yield* cleanAll
    }).pipe(Effect.provide(postgresLayer(postgresUrl))), { timeout: 60_000 })

  it.live("a row refused with a SQLSTATE no class foresees is isolated after a few attempts, never holding its table for good", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* cleanAll
      const sql = yield* SqlClient.SqlClient
      // A trigger refuses one row with P0001 (raise_exception): neither data (22, 23) nor the database's state.
      yield* sql.unsafe(`CREATE OR REPLACE FUNCTION writer_test_refuse() RETURNS trigger AS $$
        BEGIN IF NEW.id = 'writer-test_BTCUSDT_7101' THEN RAISE EXCEPTION 'refused by a trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`)
      yield* sql.unsafe(`CREATE TRIGGER writer_test_refuse BEFORE INSERT ON large_trades FOR EACH ROW EXECUTE FUNCTION writer_test_refuse()`)
      yield* Effect.gen(function*() {
        yield* Effect.scoped(Effect.gen(function*() {
          const writer = yield* Writer.make(options)
          yield* writer.offer(batchOf([trade(7100), trade(7101), trade(7102)]))
          yield* eventually("the refused row isolated", Effect.sync(() => (writer.state().tables.large_trades.rejected === 1 ? true : undefined)), 20_000)
          // Rows offered after it are stored: the table is not held.
          yield* writer.offer(batchOf([trade(7103)]))
          yield* eventually("the later row stored", Effect.map(countRows, (n) => (n === 3 ? true : undefined)), 10_000)
          assert.isNull(writer.state().tables.large_trades.degraded, "no longer degraded")
        }))
        const [dead] = yield* sql<{ sqlstate: string }>`SELECT sqlstate FROM rejected_rows WHERE row_id = 'writer-test_BTCUSDT_7101'`
        assert.strictEqual(dead!.sqlstate, "P0001")
        assert.strictEqual(yield* countRows, 3, "its neighbours and the later row")
      }).pipe(Effect.ensuring(sql.unsafe(`DROP TRIGGER IF EXISTS writer_test_refuse ON large_trades`).pipe(Effect.ignore)))
      yield* cleanAll
    }).pipe(Effect.provide(postgresLayer(postgresUrl))), { timeout: 60_000 })
})

describe("losses", () => {
  it.live("rows a full queue drops are reported per stream with the span they cover", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* cleanAll
      yield* Effect.scoped(Effect.gen(function*() {
        // One offer of 30 rows into a queue of 10: the first 10 fit, the other 20 find it full.
        const writer = yield* Writer.make({ ...options, queueCapacity: 10 })
        const seen: Array<RowLoss> = []
        yield* Effect.forkScoped(Stream.runForEach(writer.losses, (loss) => Effect.sync(() => seen.push(loss))))
        yield* Effect.sleep("100 millis")
        yield* writer.offer(batchOf(Array.from({ length: 30 }, (_, i) => trade(i))))
        const losses = yield* eventually("the loss reported", Effect.sync(() => (seen.length > 0 ? seen : undefined)), 5_000)
        assert.deepStrictEqual(losses, [{
          table: "large_trades", cause: "overload", exchange: "writer-test", symbol: "BTCUSDT", liquidation: false,
          // Rows 10 to 29 found the queue full: their exchange times are 1_700_000_000_000 + i.
          from: 1_700_000_000_010, to: 1_700_000_000_029, count: 20
        }])
        assert.strictEqual(writer.state().tables.large_trades.dropped, 20)
      }))
      yield* cleanAll
    }).pipe(Effect.provide(postgresLayer(postgresUrl))), { timeout: 60_000 })
})
