/**
 * The large tables' pages are built by PostgreSQL as JSON (timestamps by
 * to_char, numerics as JSON numbers) instead of mapped row by row in
 * JavaScript. The answer must be what the JavaScript mapping gave: ISO-8601
 * UTC with milliseconds (microseconds truncated, as the driver's Date was),
 * numbers without their column's trailing zeros, null where a nullable
 * column is empty, `{}` for a large trade without metadata, false for an
 * unset liquidation flag, and the keys in the contract's order.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { successJson } from "../src/api/handlers.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { fundingRates, largeTrades, openInterest } from "../src/storage/queries.ts"
import { pinnedClock } from "./support/clock.ts"
import { postgresUrl, truncateAll } from "./support/service.ts"

// Pinned at 2026-06-03 10:20:00 UTC: a one-hour window starts at 09:20.
const clock = pinnedClock(Date.UTC(2026, 5, 3, 10, 20, 0))

describe("the large tables' pages as JSON from PostgreSQL", () => {
  it.live("read exactly as the row-by-row mapping wrote them", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`INSERT INTO large_trades (id, exchange, symbol, side, price, size, size_base, size_unit, value_usd, timestamp, trade_id, is_liquidation, metadata) VALUES
        ('t1', 'binance', 'BTCUSDT', 'buy', 50000.5, 2.25, 2.25, 'base', 112501.13, '2026-06-03 10:09:10.123456', '77', TRUE, '{"b":1,"a":[0.5,"x"]}'),
        ('t2', 'okx', 'BTC-USDT-SWAP', 'sell', 0.00001, 100, NULL, NULL, 0.1, '2026-06-03 10:00:00', NULL, NULL, NULL)`)
      yield* sql.unsafe(`INSERT INTO funding_rates (id, exchange, symbol, rate, predicted_rate, timestamp, next_funding_time, metadata) VALUES
        ('f1', 'bybit', 'BTCUSDT', -0.000125, 0.0001, '2026-06-03 09:59:59.999999', '2026-06-03 16:00:00', '{"interval_hours":8}'),
        ('f2', 'okx', 'BTC-USDT-SWAP', 0.0001, NULL, '2026-06-03 09:30:00', NULL, NULL)`)
      yield* sql.unsafe(`INSERT INTO open_interest (id, exchange, symbol, open_interest, open_interest_base, open_interest_usd, timestamp, metadata) VALUES
        ('o1', 'deribit', 'BTC-PERPETUAL', 1000, NULL, 1000.5, '2026-06-03 10:10:00.5', NULL)`)

      const trades = yield* largeTrades({ hours: 1, limit: 10 })
      // Newest first; 2.25 x 50000.5 = 112501.125, stored as 112501.13 (two decimals).
      const expectedTrades = [
        { exchange: "binance", symbol: "BTCUSDT", side: "buy", price: 50000.5, size: 2.25, size_base: 2.25, size_unit: "base", value_usd: 112501.13,
          // jsonb keeps an object's keys shortest first, then by bytes: stored as {"b":1,"a":[...]}, read back "a" first.
          timestamp: "2026-06-03T10:09:10.123Z", trade_id: "77", is_liquidation: true, metadata: { a: [0.5, "x"], b: 1 } },
        { exchange: "okx", symbol: "BTC-USDT-SWAP", side: "sell", price: 0.00001, size: 100, size_base: null, size_unit: null, value_usd: 0.1,
          timestamp: "2026-06-03T10:00:00.000Z", trade_id: null, is_liquidation: false, metadata: {} }
      ]
      assert.strictEqual(successJson(trades.trades), JSON.stringify(expectedTrades))
      assert.strictEqual(trades.count, 2)

      const funding = yield* fundingRates({ hours: 1, limit: 10 })
      assert.strictEqual(successJson(funding.funding_rates), JSON.stringify([
        { exchange: "bybit", symbol: "BTCUSDT", rate: -0.000125, predicted_rate: 0.0001, timestamp: "2026-06-03T09:59:59.999Z",
          next_funding_time: "2026-06-03T16:00:00.000Z", metadata: { interval_hours: 8 } },
        { exchange: "okx", symbol: "BTC-USDT-SWAP", rate: 0.0001, predicted_rate: null, timestamp: "2026-06-03T09:30:00.000Z",
          next_funding_time: null, metadata: null }
      ]))

      const oi = yield* openInterest({ hours: 1, limit: 10 })
      assert.strictEqual(successJson(oi.open_interest), JSON.stringify([
        { exchange: "deribit", symbol: "BTC-PERPETUAL", open_interest: 1000, open_interest_base: null, open_interest_usd: 1000.5,
          timestamp: "2026-06-03T10:10:00.500Z", metadata: null }
      ]))
    }).pipe(Effect.provide(clock.layer), Effect.provide(postgresLayer(postgresUrl)), Effect.scoped))
})
