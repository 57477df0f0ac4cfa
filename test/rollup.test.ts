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
import { postgresLayer } from "../src/storage/database.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { largeTrades, type LargeTradeFilter } from "../src/storage/queries.ts"
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
})
