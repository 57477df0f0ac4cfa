/**
 * The broker messages staged for rows, against the real PostgreSQL: one per
 * published row (stream cursors riding in the large_trades queue are not
 * rows), order books only with PUBLISH_ORDERBOOKS, none for other tables;
 * routing key, id and body as documented; staging twice keeps one message per
 * id; nothing at all is staged without AMQP_URL.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { CursorRow, LargeTradeRow, OrderBookRow } from "../src/domain/rows.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { Outbox } from "../src/storage/outbox.ts"
import { postgresUrl, truncateAll } from "./support/service.ts"

const trade = (id: string, isLiquidation: boolean): LargeTradeRow => ({
  id, exchange: "binance-futures", symbol: "BTCUSDT", side: "buy", price: 60_000, size: 2, sizeBase: 2, sizeUnit: "base", valueUsd: 120_000,
  timestamp: Date.parse("2026-03-02T12:00:00.123Z"), tradeId: id.split("_").at(-1)!, isLiquidation, metadata: {}
})
const cursor: CursorRow = { kind: "cursor", exchange: "binance-futures", channel: "trades", symbol: "BTCUSDT", sequence: 7, time: 0 }
const book: OrderBookRow = {
  id: "coinbase_BTC-USD_1", exchange: "coinbase", symbol: "BTC-USD", bids: [[60_000, 1]], asks: [[60_001, 2]],
  timestamp: Date.parse("2026-03-02T12:00:00Z"), sequence: 1, metadata: null
}

const withOutbox = (env: Record<string, string>) =>
  Layer.merge(Outbox.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))), postgresLayer(postgresUrl))

const staged = SqlClient.SqlClient.use((sql) =>
  sql<{ id: string; kind: string; routing_key: string; body: string }>`SELECT id, kind, routing_key, body FROM outbox ORDER BY position`
)

describe("staging broker messages", () => {
  it.live("one message per published row, in order, once per id", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const outbox = yield* Outbox
      const sql = yield* SqlClient.SqlClient
      const rows = [trade("binance-futures_BTCUSDT_1", false), cursor, trade("binance-futures_BTCUSDT_2", true)]
      yield* sql.withTransaction(outbox.stage("large_trades", rows))
      yield* sql.withTransaction(outbox.stage("large_trades", rows))
      yield* outbox.stage("exchange_orderbooks", [book])
      yield* outbox.stage("volatility_index", [{ id: "v" }])
      const messages = yield* staged
      assert.deepStrictEqual(messages.map((m) => [m.id, m.kind, m.routing_key]), [
        ["binance-futures_BTCUSDT_1", "large_trade", "large_trade.binance-futures.BTCUSDT"],
        ["binance-futures_BTCUSDT_2", "liquidation", "liquidation.binance-futures.BTCUSDT"]
      ], "the cursor, the order book (PUBLISH_ORDERBOOKS unset) and the volatility row stage nothing; the second staging adds nothing")
      assert.deepStrictEqual(JSON.parse(messages[0]!.body), {
        kind: "large_trade", schema_version: 1, exchange: "binance-futures", symbol: "BTCUSDT", side: "buy", price: 60_000, size: 2,
        size_base: 2, size_unit: "base", value_usd: 120_000, timestamp: "2026-03-02T12:00:00.123Z", trade_id: "1", is_liquidation: false, metadata: {}
      })
    }).pipe(Effect.provide(withOutbox({ AMQP_URL: "amqp://127.0.0.1:1" })), Effect.scoped))

  it.live("order books with PUBLISH_ORDERBOOKS; a dot in a symbol does not split the routing key", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const outbox = yield* Outbox
      yield* outbox.stage("exchange_orderbooks", [{ ...book, symbol: "BTC.USD" }])
      const [message] = yield* staged
      assert.strictEqual(message!.routing_key, "orderbook.coinbase.BTC_USD")
      assert.deepInclude(JSON.parse(message!.body), { kind: "orderbook", symbol: "BTC.USD", bids: [[60_000, 1]], asks: [[60_001, 2]] })
    }).pipe(Effect.provide(withOutbox({ AMQP_URL: "amqp://127.0.0.1:1", PUBLISH_ORDERBOOKS: "true" })), Effect.scoped))

  it.live("without AMQP_URL nothing is staged", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const outbox = yield* Outbox
      yield* outbox.stage("large_trades", [trade("binance-futures_BTCUSDT_1", false)])
      assert.deepStrictEqual(yield* staged, [])
    }).pipe(Effect.provide(withOutbox({})), Effect.scoped))
})
