/**
 * The streaming API: `GET /api/v1/stream` (Server-Sent Events) in the running
 * service fed by the fake Binance USD-M (events from the pipeline, filtered as
 * asked, resumed from the database after a reconnect with Last-Event-ID, bad
 * parameters refused by name), and the hub alone (a client that stops
 * reading is dropped with a reason; the others go on).
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import { RowBatch } from "../src/domain/rows.ts"
import { FeedRegistry } from "../src/feed/status.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { StreamHub } from "../src/stream/hub.ts"
import { FakeBinance } from "./fake/binance.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const futures = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
const clean = truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

interface SseEvent {
  readonly event: string
  readonly id: string | undefined
  readonly data: any
}

/** Reads an SSE response until `until` says enough (or `timeoutMs`), then cancels it. */
const readEvents = (url: string, until: (events: ReadonlyArray<SseEvent>) => boolean, headers: Record<string, string> = {}, timeoutMs = 30_000) =>
  Effect.promise(async () => {
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), timeoutMs)
    const response = await fetch(url, { headers, signal: controller.signal })
    const events: Array<SseEvent> = []
    const contentType = response.headers.get("content-type")
    if (response.status !== 200) {
      clearTimeout(timer)
      return { status: response.status, contentType, events, body: (await response.json()) as any }
    }
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    let buffer = ""
    try {
      while (!until(events)) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += decoder.decode(value, { stream: true })
        let end: number
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          let event = "message"
          let id: string | undefined
          const data: Array<string> = []
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7)
            else if (line.startsWith("id: ")) id = line.slice(4)
            else if (line.startsWith("data: ")) data.push(line.slice(6))
          }
          if (data.length > 0) events.push({ event, id, data: JSON.parse(data.join("\n")) })
        }
      }
    } catch {
      // aborted by the timeout: return what came
    } finally {
      clearTimeout(timer)
      controller.abort()
    }
    return { status: response.status, contentType, events, body: undefined as any }
  })

describe("streaming API", () => {
  it.live("streams the pipeline's events as asked, and resumes from the database after a reconnect", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 20 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance-futures",
        BINANCE_FUTURES_SYMBOLS: futures.join(","), BINANCE_FUTURES_WS_URL: fake.wsUrl, BINANCE_FUTURES_REST_URL: fake.httpUrl,
        LARGE_TRADE_THRESHOLD_DEFAULT: "1", WRITER_FLUSH_MS: "20"
      })
      const base = `http://127.0.0.1:${port}/api/v1/stream`

      // Bad parameters: a 400 in the contract's envelope naming what is wrong.
      for (const [query, named] of [["kinds=trades", "kinds"], ["min_value_usd=-3", "min_value_usd"], ["symbol=BTC;DROP", "symbol"], ["limit=5", "limit"], ["exchange=a&exchange=b", "exchange"]] as const) {
        const refused = yield* readEvents(`${base}?${query}`, () => true)
        assert.strictEqual(refused.status, 400, query)
        assert.strictEqual(refused.body.error.code, "INVALID_PARAMETER")
        assert.include(refused.body.error.message, named)
      }

      // Live: large trades of one symbol above a value, and the feed's state.
      const first = yield* readEvents(`${base}?kinds=large_trade,feed_state&symbol=SUSHI&min_value_usd=100`, (events) => events.filter((e) => e.event === "large_trade").length >= 3)
      assert.strictEqual(first.status, 200)
      assert.match(first.contentType ?? "", /text\/event-stream/)
      const trades = first.events.filter((e) => e.event === "large_trade")
      assert.isAtLeast(trades.length, 3)
      for (const t of trades) {
        assert.strictEqual(t.data.symbol, "SUSHIUSDT")
        assert.isAtLeast(t.data.value_usd, 100)
        assert.isFalse(t.data.is_liquidation)
        assert.match(t.id!, /^\d+:large_trade:binance-futures_SUSHIUSDT_\d+$/)
      }
      assert.isTrue(first.events.some((e) => e.event === "feed_state" && e.data.feed.startsWith("binance-futures")), "the feeds' state first")
      assert.isFalse(first.events.some((e) => e.event !== "large_trade" && e.event !== "feed_state"))

      // Away while more trades arrive; back with Last-Event-ID: what was missed comes from the database, then live.
      const lastSeen = trades.at(-1)!
      yield* eventually("more trades stored meanwhile", Effect.map(getJson(`http://127.0.0.1:${port}/api/v1/exchange/large-trades?symbol=SUSHIUSDT&min_value_usd=100&hours=1`), ({ body }) =>
        body.data.count >= trades.length + 3 ? true : undefined), 30_000)
      const stored = (yield* getJson(`http://127.0.0.1:${port}/api/v1/exchange/large-trades?symbol=SUSHIUSDT&min_value_usd=100&hours=1&limit=1000&only_liquidations=false`)).body.data.trades
      const missed = stored.filter((t: any) => Date.parse(t.timestamp) >= Number(lastSeen.id!.split(":")[0]) && `${t.exchange}_${t.symbol}_${t.trade_id}` !== lastSeen.id!.split(":")[2])
      const resumed = yield* readEvents(`${base}?kinds=large_trade&symbol=SUSHI&min_value_usd=100`, (events) => events.length >= missed.length, { "last-event-id": lastSeen.id! })
      const replayedIds = resumed.events.map((e) => e.data.trade_id)
      assert.notInclude(replayedIds, lastSeen.data.trade_id, "the last event seen is not sent again")
      for (const t of missed) assert.include(replayedIds, t.trade_id, "every trade missed while away")

      const metrics = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))
      assert.match(metrics, /stream_events_total(\{[^}]*\})? [1-9]/)
      assert.match(metrics, /stream_connections(\{[^}]*\})? \d/)
    })), { timeout: 120_000 })

  it.effect("a client that stops reading is dropped with a reason once its buffer is full; another client goes on", () =>
    Effect.gen(function*() {
      const hub = yield* StreamHub
      const filter = { kinds: new Set(["large_trade" as const]), exchange: undefined, symbol: undefined, minValueUsd: undefined }
      const slow = hub.subscribe(filter)
      const reader = hub.subscribe(filter)
      if (typeof slow === "string" || typeof reader === "string") return assert.fail("subscribed")
      assert.strictEqual(hub.clients(), 2)
      const received: Array<string> = []
      for (let i = 0; i < 12; i++) {
        const batch = new RowBatch()
        batch.large_trades.push({ id: `x_BTCUSDT_${i}`, exchange: "x", symbol: "BTCUSDT", side: "buy", price: 1, size: 1, valueUsd: 1, timestamp: 1_000 + i, tradeId: String(i), isLiquidation: false, metadata: {} })
        hub.offer(batch)
        // The reader keeps up; the slow one never takes.
        const taken = yield* Effect.promise(() => reader.take())
        if (Array.isArray(taken)) received.push(...taken.map((e) => e.id))
      }
      assert.strictEqual(received.length, 12, "the reading client got everything")
      const outcome = yield* Effect.promise(() => slow.take())
      assert.deepInclude(outcome as object, {})
      assert.match((outcome as { dropped: string }).dropped, /too slow: 5 events waiting/)
      slow.close()
      reader.close()
      assert.strictEqual(hub.clients(), 0)
    }).pipe(
      Effect.provide(StreamHub.layer.pipe(
        Layer.provide(FeedRegistry.layer),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { STREAM_CLIENT_BUFFER: "5" } })))
      ))
    ))
})
