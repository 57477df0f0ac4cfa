/**
 * Publishing to the real RabbitMQ on 127.0.0.1:5672: every large trade of a
 * recorded session reaches a consumer bound to `large_trade.#`, exactly once
 * after dropping duplicates by message id, even when the broker is cut away
 * for 30 s while the trades arrive (the outbox holds them and publishes them
 * after reconnecting); refused credentials are a clear state in /health while
 * collection and the API go on.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBinance } from "./fake/binance.ts"
import { brokerHost, brokerPort, brokerUrlVia, brokerUrlWithPassword, consumer } from "./support/broker.ts"
import { TcpProxy } from "./support/proxy.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const futures = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]

const clean = truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

describe("publishing to RabbitMQ", () => {
  it.live("every large trade reaches the consumer once, across a 30 s broker cut", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const exchange = `md-test-${Date.now() % 1_000_000}`
      const { received } = yield* consumer(exchange, ["large_trade.#"])
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => TcpProxy.start(brokerPort, brokerHost)), (p) => Effect.promise(() => p.close()))
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance-futures",
        BINANCE_FUTURES_SYMBOLS: futures.join(","), BINANCE_FUTURES_WS_URL: fake.wsUrl, BINANCE_FUTURES_REST_URL: fake.httpUrl,
        LARGE_TRADE_THRESHOLD_DEFAULT: "1", AMQP_URL: brokerUrlVia(proxy.port), PUBLISH_EXCHANGE: exchange,
        PUBLISH_RETRY_MAX_SECONDS: "2"
      })
      const base = `http://127.0.0.1:${port}`
      yield* eventually("broker connected", Effect.map(getJson(`${base}/health`), ({ body }) => (body.broker.state === "connected" ? true : undefined)), 20_000)
      // The broker goes away while the session's trades arrive; they wait in the outbox.
      yield* Effect.promise(() => proxy.cut())
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 60_000)
      const during = (yield* getJson(`${base}/health`)).body
      assert.notStrictEqual(during.broker.state, "connected")
      assert.isAbove(during.broker.outbox, 0, "held in the outbox")
      assert.strictEqual(during.status, "degraded")
      const stored = (yield* getJson(`${base}/api/v1/exchange/large-trades?hours=1&limit=1000&only_liquidations=false`)).body
      assert.isAbove(stored.data.count, 0, "storage went on without the broker")
      yield* Effect.sleep("30 seconds")
      yield* Effect.promise(() => proxy.restore())
      // Liquidations are published as `liquidation.*`, which this consumer does not bind.
      const ids = new Set<string>(stored.data.trades.filter((t: any) => !t.is_liquidation).map((t: any) => `${t.exchange}_${t.symbol}_${t.trade_id}`))
      yield* eventually("every large trade published after the broker came back", Effect.sync(() =>
        [...ids].every((id) => received.byId.has(id)) ? true : undefined), 30_000)
      // The consumer can see a message before the publisher has read the broker's confirm for it: wait for the outbox to empty.
      const after = yield* eventually("the outbox drained by confirms", Effect.map(getJson(`${base}/health`), ({ body }) =>
        body.broker.outbox === 0 ? body.broker : undefined), 30_000)
      assert.strictEqual(after.aged_out, 0)
      assert.isAtLeast(after.confirmed, ids.size)
      assert.isAbove(after.returned, 0, "the liquidations nobody bound were returned, and counted")
      assert.sameMembers([...received.byId.keys()], [...ids], "exactly the stored large trades, once each by message id")
      const sample = received.byId.get(String([...ids][0]))
      assert.deepInclude(sample, { kind: "large_trade", schema_version: 1, exchange: "binance-futures", is_liquidation: false })
      assert.isTrue([...received.keys].every((k) => /^large_trade\.binance-futures\.[A-Z]+USDT$/.test(k)), [...received.keys].join(" "))
      const metrics = yield* Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
      assert.match(metrics, /publish_messages_total\{[^}]*outcome="confirmed"[^}]*\} [1-9]/)
      console.log(`broker cut 30 s: ${during.broker.outbox} held in the outbox, ${received.deliveries} deliveries of ${ids.size} trades after the return, ${after.aged_out} aged out`)
    })), { timeout: 150_000 })

  it.live("refused credentials are a clear state in /health; collection and the API go on", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start()), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance-futures",
        BINANCE_FUTURES_SYMBOLS: futures.join(","), BINANCE_FUTURES_WS_URL: fake.wsUrl, BINANCE_FUTURES_REST_URL: fake.httpUrl,
        LARGE_TRADE_THRESHOLD_DEFAULT: "1", AMQP_URL: brokerUrlWithPassword("not-the-password")
      })
      const base = `http://127.0.0.1:${port}`
      const broker = yield* eventually("the refusal in /health", Effect.map(getJson(`${base}/health`), ({ body }) =>
        body.broker.lastError !== null ? body.broker : undefined), 20_000)
      assert.strictEqual(broker.state, "backoff")
      assert.match(broker.lastError, /ACCESS.REFUSED|403|auth/i)
      assert.notInclude(JSON.stringify(broker), "not-the-password", "no secret in /health")
      const trades = yield* eventually("trades stored anyway", Effect.map(getJson(`${base}/api/v1/exchange/large-trades?hours=1`), ({ status, body }) =>
        status === 200 && body.data.count > 0 ? body : undefined), 30_000)
      assert.isAbove(trades.data.count, 0)
    })), { timeout: 60_000 })
})
