/**
 * The hourly large-trades rollup (migration 0006) against the raw table: after
 * inserts with duplicates, deletes, updates and a truncate, the summary read
 * from the rollup plus the window's partial first hour equals the summary
 * aggregated from every raw row, for windows that cut hours anywhere.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { LargeTradeRow } from "../src/domain/rows.ts"
import { embeddedLayer, postgresLayer } from "../src/storage/database.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { fundingRates, largeTrades, largeTradesStatements, type LargeTradeFilter, openInterest as openInterestQuery, type WindowFilter } from "../src/storage/queries.ts"
import { pinnedClock } from "./support/clock.ts"
import { postgresUrl, truncateAll } from "./support/service.ts"

const instruments = [["binance", "BTCUSDT"], ["deribit", "BTC-PERPETUAL"], ["coinbase", "ETH-USD"]] as const

// Rows sit 30 s off every whole minute before `anchor`, so no window cut at whole minutes from "now" (taken within 30 s) lands on one.
const anchor = Math.floor(Date.now() / 60_000) * 60_000
let seed = 11
const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647

const trade = (i: number): LargeTradeRow => {
  const [exchange, symbol] = instruments[i % instruments.length]!
  return {
    id: `${exchange}_${symbol}_rollup-${i}`,
    exchange,
    symbol,
    side: i % 2 === 0 ? "buy" : "sell",
    price: 50_000,
    size: 3,
    sizeBase: 3,
    sizeUnit: "base",
    valueUsd: 100_000 + Math.round(random() * 900_000) + 0.25,
    timestamp: anchor - Math.floor(random() * 1800) * 60_000 - 30_000,
    tradeId: `rollup-${i}`,
    isLiquidation: random() < 0.2,
    metadata: {}
  }
}

const summaries = (filter: LargeTradeFilter) =>
  Effect.gen(function*() {
    const fromRollup = yield* largeTrades(filter)
    // min_value_usd = 0 keeps every row but forces the raw aggregate.
    const fromRows = yield* largeTrades({ ...filter, minValueUsd: 0 })
    return { fromRollup: { count: fromRollup.count, ...fromRollup.summary }, fromRows: { count: fromRows.count, ...fromRows.summary } }
  })

describe("large-trades hourly rollup", () => {
  it.live("agrees with the raw rows after duplicate inserts, deletes, updates and truncate", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const sql = yield* SqlClient.SqlClient
      const rows = Array.from({ length: 600 }, (_, i) => trade(i))
      yield* insertRows("large_trades", rows.slice(0, 400))
      // Overlapping batch: the first 100 are duplicates and must not count twice.
      yield* insertRows("large_trades", rows.slice(300))
      yield* sql`DELETE FROM large_trades WHERE trade_id IN ('rollup-1', 'rollup-2', 'rollup-50', 'rollup-599')`
      yield* sql`UPDATE large_trades SET value_usd = value_usd + 1000, timestamp = timestamp - interval '3 hours', is_liquidation = NOT is_liquidation
        WHERE trade_id IN ('rollup-10', 'rollup-11', 'rollup-12')`
      const filters: Array<LargeTradeFilter> = []
      for (const hours of [0.5, 1, 2.25, 7, 24, 30, 48]) {
        filters.push({ hours, limit: 10 }, { hours, limit: 10, exchange: "deribit" }, { hours, limit: 10, symbol: "BTC" }, { hours, limit: 10, symbol: "ETH-USD" })
      }
      for (const filter of filters) {
        const { fromRollup, fromRows } = yield* summaries(filter)
        assert.deepStrictEqual(fromRollup, fromRows, JSON.stringify(filter))
      }
      const whole = yield* summaries({ hours: 48, limit: 10 })
      assert.strictEqual(whole.fromRollup.count, 596)
      yield* sql`TRUNCATE large_trades`
      const [{ hourly }] = yield* sql<{ hourly: number }>`SELECT count(*)::int AS hourly FROM large_trades_hourly`
      assert.strictEqual(hourly, 0)
      assert.strictEqual((yield* largeTrades({ hours: 48, limit: 10 })).count, 0)
    }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped), 60_000)

  it.live("funding and open-interest summaries from their hourly rollups agree with the raw rows through inserts, duplicates, deletes, updates and truncate", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const sql = yield* SqlClient.SqlClient
      const at = (i: number) => anchor - Math.floor(random() * 1800) * 60_000 - 30_000 - (i % 3) * 1000
      const funding = Array.from({ length: 500 }, (_, i) => {
        const [exchange, symbol] = instruments[i % instruments.length]!
        // Venues state rates over 1, 4 or 8 h; some rows say nothing (taken as 8 h).
        const interval = [1, 4, 8, undefined][i % 4]
        return { id: `${exchange}_${symbol}_f${i}`, exchange, symbol, rate: Math.round((random() - 0.3) * 1e6) / 1e10, predictedRate: null, timestamp: at(i), nextFundingTime: null, metadata: interval === undefined ? null : { interval_hours: interval } }
      })
      const openInterest = Array.from({ length: 500 }, (_, i) => {
        const [exchange, symbol] = instruments[i % instruments.length]!
        return { id: `${exchange}_${symbol}_o${i}`, exchange, symbol, openInterest: 100 + i, openInterestBase: null, openInterestUsd: 1_000_000 + Math.round(random() * 1e8) / 100, timestamp: at(i), metadata: null }
      })
      yield* insertRows("funding_rates", funding.slice(0, 350))
      yield* insertRows("funding_rates", funding.slice(250))
      yield* insertRows("open_interest", openInterest.slice(0, 350))
      yield* insertRows("open_interest", openInterest.slice(250))
      yield* sql`DELETE FROM funding_rates WHERE id IN ('binance_BTCUSDT_f0', 'deribit_BTC-PERPETUAL_f7', 'coinbase_ETH-USD_f499')`
      yield* sql`UPDATE funding_rates SET rate = rate + 0.0001, timestamp = timestamp - interval '2 hours' WHERE id IN ('binance_BTCUSDT_f3', 'deribit_BTC-PERPETUAL_f4')`
      // The latest readings move: deleted, moved back in time, raised.
      const latest = yield* sql<{ id: string }>`SELECT DISTINCT ON (symbol) id FROM open_interest ORDER BY symbol, timestamp DESC, open_interest_usd DESC`
      yield* sql`DELETE FROM open_interest WHERE id = ${latest[0]!.id}`
      yield* sql`UPDATE open_interest SET timestamp = timestamp - interval '5 hours' WHERE id = ${latest[1]!.id}`
      yield* sql`UPDATE open_interest SET open_interest_usd = open_interest_usd + 12345.67 WHERE id = ${latest[2]!.id}`
      for (const hours of [0.5, 1, 2.25, 7, 24, 30, 48]) {
        for (const filter of [{ hours, limit: 10 }, { hours, limit: 10, exchange: "deribit" }, { hours, limit: 10, symbol: "BTC" }, { hours, limit: 10, symbol: "ETH-USD" }] as Array<WindowFilter>) {
          const from = new Date(Date.now() - hours * 3_600_000).toISOString()
          const matches = (row: { exchange: string; symbol: string }) =>
            (filter.exchange === undefined || row.exchange === filter.exchange) &&
            (filter.symbol === undefined || row.symbol === filter.symbol || (filter.symbol === "BTC" && row.symbol.startsWith("BTC")))
          // Independent: straight from the raw rows.
          const rawFunding = (yield* sql<{ exchange: string; symbol: string; rate: string; interval: string | null }>`SELECT exchange, symbol, rate, metadata->>'interval_hours' AS interval FROM funding_rates WHERE timestamp >= (${from}::timestamptz AT TIME ZONE 'UTC')`).filter(matches)
          const rawOi = (yield* sql<{ exchange: string; symbol: string; usd: string; t: string }>`
            SELECT exchange, symbol, open_interest_usd AS usd, extract(epoch FROM timestamp)::text AS t FROM open_interest WHERE timestamp >= (${from}::timestamptz AT TIME ZONE 'UTC')`).filter(matches)
          const f = yield* fundingRates(filter)
          assert.strictEqual(f.count, rawFunding.length, `funding count ${JSON.stringify(filter)}`)
          // Each rate per 8 h (rate x 8 / its interval, 8 h when unstated), then averaged.
          const per8h = (r: { rate: string; interval: string | null }) => Number(r.rate) * 8 / (r.interval === null ? 8 : Number(r.interval))
          if (rawFunding.length > 0) assert.closeTo(f.summary.average_rate, rawFunding.reduce((n, r) => n + per8h(r), 0) / rawFunding.length, 1e-15)
          assert.deepStrictEqual(f.summary.symbols, [...new Set(rawFunding.map((r) => r.symbol))].sort())
          const o = yield* openInterestQuery(filter)
          assert.strictEqual(o.count, rawOi.length, `open interest count ${JSON.stringify(filter)}`)
          const latestBy = new Map<string, { t: number; usd: number }>()
          for (const r of rawOi) {
            const key = `${r.exchange}/${r.symbol}`
            const seen = latestBy.get(key)
            if (seen === undefined || Number(r.t) > seen.t || (Number(r.t) === seen.t && Number(r.usd) > seen.usd)) latestBy.set(key, { t: Number(r.t), usd: Number(r.usd) })
          }
          assert.closeTo(o.summary.total_oi_usd, [...latestBy.values()].reduce((n, v) => n + v.usd, 0), 0.005, `total_oi_usd ${JSON.stringify(filter)}`)
        }
      }
      yield* sql`TRUNCATE funding_rates, open_interest`
      const [{ n }] = yield* sql<{ n: number }>`SELECT (SELECT count(*) FROM funding_rates_hourly) + (SELECT count(*) FROM open_interest_hourly) AS n`
      assert.strictEqual(Number(n), 0)
    }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped), 60_000)

  const clock = pinnedClock(Date.UTC(2026, 5, 3, 10, 20, 0))
  it.live("the funding average puts every rate on an 8-hour basis first, from the rollup and from the raw rows", () =>
    Effect.gen(function*() {
      yield* truncateAll
      // Pinned: the window starts at 07:50:00 and its partial first hour ends at 08:00, whatever the day.
      const now = clock.now()
      const hour = 3_600_000
      const reading = (id: string, exchange: string, symbol: string, rate: number, interval: number, at: number) =>
        ({ id, exchange, symbol, rate, predictedRate: null, timestamp: at, nextFundingTime: null, metadata: { interval_hours: interval } })
      // A 2.5 h window: one reading in its partial first hour (raw rows), one in a whole hour (the rollup).
      const windowStart = now - 2.5 * hour
      const partialFirstHourEnd = Math.ceil(windowStart / hour) * hour
      yield* insertRows("funding_rates", [
        // Bybit hourly: 0.0001 an hour is 0.0008 per 8 h.
        reading("bybit_f", "bybit-derivatives", "BTCUSDT", 0.0001, 1, Math.min(windowStart + 60_000, partialFirstHourEnd - 1000)),
        // OKX every 8 h: 0.0002 per 8 h.
        reading("okx_f", "okx", "BTC-USDT-SWAP", 0.0002, 8, now - 0.5 * hour)
      ])
      const f = yield* fundingRates({ hours: 2.5, limit: 10 })
      assert.strictEqual(f.count, 2)
      // By hand: (0.0008 + 0.0002) / 2 = 0.0005 per 8 h; x 3 x 365 = 0.5475 a year. Raw rates averaged would say 0.00015.
      assert.closeTo(f.summary.average_rate, 0.0005, 1e-15)
      assert.strictEqual(f.summary.average_rate_basis, "8h")
      assert.closeTo(f.summary.average_rate_annualized, 0.5475, 1e-12)
      assert.closeTo(f.summary.average_rate_percent, 0.05, 1e-12)
    }).pipe(Effect.provide(clock.layer), Effect.provide(postgresLayer(postgresUrl)), Effect.scoped))
})

/**
 * Migration 0020: an insert folds into open_interest_hourly from the inserted
 * rows alone (readings + count, latest = the greater of the stored and the
 * new maximum) instead of recomputing every touched hour from the raw table.
 * A multi-row statement across hours, and late rows into an old hour, must
 * leave exactly the rollup the raw rows define, on both databases.
 */
describe("open-interest hourly rollup kept up from the inserted rows", () => {
  const layers = [["postgres", postgresLayer(postgresUrl)], ["embedded", embeddedLayer(undefined)]] as const
  for (const [name, database] of layers) {
    it.live(`a multi-row insert over several hours and late rows into an old hour give the rollup the raw rows define (${name})`, () =>
      Effect.gen(function*() {
        if (name === "postgres") yield* truncateAll
        else yield* runMigrations()
        const sql = yield* SqlClient.SqlClient
        const insert = (rows: ReadonlyArray<readonly [string, string, string, string, number]>) =>
          sql.unsafe(`INSERT INTO open_interest (id, exchange, symbol, open_interest, open_interest_usd, timestamp)
            VALUES ${rows.map(([id, exchange, symbol, at, usd]) => `('${id}', '${exchange}', '${symbol}', 1, ${usd}, '2026-06-03 ${at}')`).join(", ")}
            ON CONFLICT (id) DO NOTHING`)
        const rollup = () =>
          sql<{ hour: string; exchange: string; readings: number; t: number; usd: number }>`
            SELECT to_char(hour, 'HH24:MI') AS hour, exchange, readings::int AS readings, latest[1]::float8 AS t, latest[2]::float8 AS usd
            FROM open_interest_hourly ORDER BY hour, exchange`
        // 0007's definition, recomputed from every raw row.
        const fromRaw = () =>
          sql<{ hour: string; exchange: string; readings: number; t: number; usd: number }>`
            SELECT to_char(hour, 'HH24:MI') AS hour, exchange, readings::int AS readings, latest[1]::float8 AS t, latest[2]::float8 AS usd
            FROM (SELECT date_trunc('hour', timestamp) AS hour, exchange, symbol, count(*) AS readings,
              max(ARRAY[extract(epoch FROM timestamp), open_interest_usd]) AS latest FROM open_interest GROUP BY 1, 2, 3) AS raw
            ORDER BY hour, exchange`
        const at = (hh: number, mm: number, ss = 0) => Date.UTC(2026, 5, 3, hh, mm, ss) / 1000
        // One statement, six rows over three hours and two instruments.
        yield* insert([
          ["a1", "binance-futures", "BTCUSDT", "08:10:00", 100],
          ["a2", "binance-futures", "BTCUSDT", "08:50:00", 300],
          ["a3", "binance-futures", "BTCUSDT", "09:05:00", 200],
          ["a4", "binance-futures", "BTCUSDT", "10:59:59", 50],
          ["b1", "okx", "BTC-USDT-SWAP", "08:30:00", 1000],
          ["b2", "okx", "BTC-USDT-SWAP", "09:30:00", 900]
        ])
        // By hand: per hour and instrument, the readings and the latest (time, then the larger USD).
        assert.deepStrictEqual(yield* rollup(), [
          { hour: "08:00", exchange: "binance-futures", readings: 2, t: at(8, 50), usd: 300 },
          { hour: "08:00", exchange: "okx", readings: 1, t: at(8, 30), usd: 1000 },
          { hour: "09:00", exchange: "binance-futures", readings: 1, t: at(9, 5), usd: 200 },
          { hour: "09:00", exchange: "okx", readings: 1, t: at(9, 30), usd: 900 },
          { hour: "10:00", exchange: "binance-futures", readings: 1, t: at(10, 59, 59), usd: 50 }
        ])
        // Late rows into the old 08:00 hour: a later reading with less USD (becomes the latest), an earlier one with
        // more (does not), the same time as okx's latest with more USD (wins the tie), and a duplicate id (not counted).
        yield* insert([
          ["a5", "binance-futures", "BTCUSDT", "08:55:00", 10],
          ["a6", "binance-futures", "BTCUSDT", "08:20:00", 5000],
          ["b3", "okx", "BTC-USDT-SWAP", "08:30:00", 1500],
          ["a1", "binance-futures", "BTCUSDT", "08:59:00", 99999]
        ])
        const after = yield* rollup()
        assert.deepStrictEqual(after, [
          // 2 + 2 readings (a5, a6; the duplicate a1 is left out); latest 08:55 with 10.
          { hour: "08:00", exchange: "binance-futures", readings: 4, t: at(8, 55), usd: 10 },
          // 1 + 1; at 08:30 both, 1500 > 1000.
          { hour: "08:00", exchange: "okx", readings: 2, t: at(8, 30), usd: 1500 },
          { hour: "09:00", exchange: "binance-futures", readings: 1, t: at(9, 5), usd: 200 },
          { hour: "09:00", exchange: "okx", readings: 1, t: at(9, 30), usd: 900 },
          { hour: "10:00", exchange: "binance-futures", readings: 1, t: at(10, 59, 59), usd: 50 }
        ])
        assert.deepStrictEqual(after, yield* fromRaw())
        // A delete of the hour's latest still recomputes it from the raw rows: a2 (08:50, 300) is next.
        yield* sql`DELETE FROM open_interest WHERE id = 'a5'`
        assert.deepStrictEqual((yield* rollup())[0], { hour: "08:00", exchange: "binance-futures", readings: 3, t: at(8, 50), usd: 300 })
        assert.deepStrictEqual(yield* rollup(), yield* fromRaw())
      }).pipe(Effect.provide(database), Effect.scoped), 60_000)
  }
})

/**
 * The summaries' rollup scans stay on the index when the statistics are stale:
 * a rollup analyzed empty, then filled (as a bulk load through the triggers
 * fills it), would be scanned whole for a one-sided `hour >= x` (a third of
 * the table guessed), but the range closed by 'infinity' is guessed at 0.5 %.
 */
describe("rollup plans with stale statistics", () => {
  it.live("a 24-hour summary reads large_trades_hourly by its index after the rollup was analyzed empty and filled", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const sql = yield* SqlClient.SqlClient
      yield* sql`ALTER TABLE large_trades_hourly SET (autovacuum_enabled = false)`
      yield* sql`ANALYZE large_trades_hourly`
      // 120 days x 21 instruments of hourly rows up to now: 60,480 rows, 504 of them in the last 24 hours.
      yield* sql`INSERT INTO large_trades_hourly (hour, exchange, symbol, trades, total_value_usd, liquidations)
        SELECT date_trunc('hour', now() AT TIME ZONE 'UTC') - h * interval '1 hour', 'venue', 'SYM' || k, 1, 1, 0
        FROM generate_series(0, 2879) AS h, generate_series(1, 21) AS k`
      // The rows are placed by the database's now() above, so the window ends at the wall clock too: the plan, not a date, is asserted.
      const [statement] = largeTradesStatements(sql, { hours: 24, limit: 100 }, Date.now())
      const [text, params] = statement.compile()
      const plan = (yield* sql.unsafe<{ "QUERY PLAN": string }>(`EXPLAIN ${text}`, params)).map((row) => row["QUERY PLAN"]).join("\n")
      yield* sql`ALTER TABLE large_trades_hourly RESET (autovacuum_enabled)`
      yield* sql`TRUNCATE large_trades_hourly`
      assert.notInclude(plan, "Seq Scan on large_trades_hourly")
      assert.match(plan, /Index (Only )?Scan using large_trades_hourly_pkey|Bitmap Index Scan on large_trades_hourly_pkey/)
    }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped), 60_000)
})
