/**
 * Publishing to the real RabbitMQ on 127.0.0.1:5672: every large trade of a
 * recorded session reaches a consumer bound to `large_trade.#`, exactly once
 * after dropping duplicates by message id, even when the broker is cut away
 * for 30 s while the trades arrive (the outbox holds them and publishes them
 * after reconnecting); refused credentials are a clear state in /health while
 * collection and the API go on.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Logger } from "effect"
import { SqlClient } from "effect/sql"
import { Publisher } from "../src/publish/publisher.ts"
import { requeueReturned } from "../src/publish/returned.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBinance } from "./fake/binance.ts"
import { brokerHost, brokerPort, brokerUrl, brokerUrlVia, brokerUrlWithPassword, consumer } from "./support/broker.ts"
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
      // ... and kept, visible in /health: every stored liquidation, and no large trade (they were routed).
      const liquidations = stored.data.trades.filter((t: any) => t.is_liquidation).length
      assert.isAbove(liquidations, 0)
      assert.strictEqual(after.returned_kept_by_kind.liquidation, liquidations, JSON.stringify(after))
      assert.isUndefined(after.returned_kept_by_kind.large_trade)
      assert.match(after.last_returned.reply, /^312 NO_ROUTE$/)
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

  it.live("a message no queue is bound to is kept in outbox_returned, visible in the publisher's state, and requeued once a queue is bound", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const exchange = `md-test-returned-${Date.now() % 1_000_000}`
      const trades = yield* consumer(exchange, ["large_trade.#"])
      const database = postgresLayer(postgresUrl)
      const query = <Row extends object>(text: string) => SqlClient.SqlClient.use((sql) => sql.unsafe<Row>(text)).pipe(Effect.provide(database), Effect.scoped)
      // Staged as the writer stages them: one routed (a queue is bound to large_trade.#), one nobody is bound to.
      yield* query(`INSERT INTO outbox (id, kind, routing_key, body, created_at) VALUES
        ('returned-test-trade', 'large_trade', 'large_trade.test.BTCUSDT', '{"kind":"large_trade"}', now()),
        ('returned-test-liquidation', 'liquidation', 'liquidation.test.BTCUSDT', '{"kind":"liquidation","n":1}', now())`)
      const env = { AMQP_URL: brokerUrl, PUBLISH_EXCHANGE: exchange, PUBLISH_POLL_MS: "50", PUBLISH_STATS_MS: "100" }
      const logged: Array<string> = []
      const logger = Logger.make((options) => {
        logged.push((Array.isArray(options.message) ? options.message : [options.message]).map(String).join(" "))
      })
      const context = yield* Layer.build(Publisher.layer.pipe(
        Layer.provide(database),
        Layer.provide(Logger.layer([logger])),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
      ))
      const publisher = Context.get(context, Publisher)
      yield* eventually("the outbox published and emptied", Effect.map(query<{ n: string }>(`SELECT count(*)::text AS n FROM outbox`), ([row]) =>
        row!.n === "0" && publisher.state().confirmed >= 2 ? true : undefined), 20_000)
      yield* eventually("the routed one delivered", Effect.sync(() => (trades.received.byId.has("returned-test-trade") ? true : undefined)), 10_000)
      // The returned one is kept with the broker's reason, not deleted.
      const kept = yield* query<{ id: string; kind: string; routing_key: string; body: string; exchange: string; reply_code: number; reply_text: string }>(
        `SELECT id, kind, routing_key, body, exchange, reply_code, reply_text FROM outbox_returned`
      )
      assert.deepStrictEqual(kept, [{
        id: "returned-test-liquidation", kind: "liquidation", routing_key: "liquidation.test.BTCUSDT", body: '{"kind":"liquidation","n":1}',
        exchange, reply_code: 312, reply_text: "NO_ROUTE"
      }])
      const state = publisher.state()
      assert.strictEqual(state.returned, 1)
      assert.strictEqual(state.returned_kept, 1)
      assert.deepStrictEqual(state.returned_kept_by_kind, { liquidation: 1 })
      assert.strictEqual(state.last_returned?.routing_key, "liquidation.test.BTCUSDT")
      assert.isNotNull(state.returned_oldest_age_seconds)
      // Two more returned, each in a batch of its own, within the minute: kept, counted, and no second log line yet.
      for (const n of [2, 3]) {
        yield* query(`INSERT INTO outbox (id, kind, routing_key, body, created_at) VALUES
          ('returned-test-gap-${n}', 'gap', 'gap.test.BTCUSDT', '{"kind":"gap"}', now())`)
        yield* eventually("kept", Effect.sync(() => (publisher.state().returned_kept === n ? true : undefined)), 10_000)
      }
      assert.deepStrictEqual(publisher.state().returned_kept_by_kind, { liquidation: 1, gap: 2 })
      const lines = logged.filter((line) => line.includes("the broker returned"))
      assert.deepStrictEqual(lines, ["the broker returned 1 messages no queue is bound to; kept in outbox_returned (npm run cli -- returned)"])
      // Once a queue is bound, the operator puts it back; the publisher sends it again and it is delivered.
      const liquidations = yield* consumer(exchange, ["liquidation.#"])
      assert.strictEqual(yield* requeueReturned("liquidation").pipe(Effect.provide(database), Effect.scoped), 1)
      const body = yield* eventually("the requeued one delivered", Effect.sync(() => liquidations.received.byId.get("returned-test-liquidation")), 20_000)
      assert.deepStrictEqual(body, { kind: "liquidation", n: 1 })
      assert.deepStrictEqual(yield* query(`SELECT id FROM outbox_returned ORDER BY id`), [{ id: "returned-test-gap-2" }, { id: "returned-test-gap-3" }])
    })), { timeout: 60_000 })
})
