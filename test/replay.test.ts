/** Replay: recorded sessions through the live pipeline into PostgreSQL; a second run stores nothing. */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { defaultPipelineSettings, type PipelineSettings } from "../src/pipeline/runtime.ts"
import { replayRecording } from "../src/replay/replay.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { Writer } from "../src/storage/writer.ts"
import { binanceFutures } from "../src/venues/binance/index.ts"
import { binanceFutures as futuresRecording } from "./support/fixtures.ts"
import { postgresUrl, truncateAll } from "./support/service.ts"
import { recording, session } from "./support/fixtures.ts"
import { coinbase } from "../src/venues/coinbase/index.ts"
import type { VenueDefinition } from "../src/venues/venue.ts"
import type { Recording } from "../src/replay/recorded.ts"

const settings: PipelineSettings = { ...defaultPipelineSettings, thresholds: { byAsset: {}, otherAssets: 500 } }

const replay = (venue: VenueDefinition, session: Recording, with_: PipelineSettings = settings) =>
  Effect.scoped(Effect.gen(function*() {
    const writer = yield* Writer.make({ batchSize: 500, flushIntervalMs: 20, queueCapacity: 100_000, retryInitialMs: 50, retryMaxMs: 500, drainTimeoutMs: 10_000, suspectAttempts: 3 })
    const stats = yield* replayRecording(venue, session, with_, writer.offer)
    return { stats, writer }
  })).pipe(Effect.map(({ stats, writer }) => ({ stats, written: writer.state().tables })))
const replayOnce = replay(binanceFutures, futuresRecording())

describe("replay", () => {
  it.live("stores the recorded session once, however often it is replayed", () =>
    Effect.gen(function*() {
      yield* runMigrations()
      yield* truncateAll
      const first = yield* replayOnce
      assert.strictEqual(first.stats.frames, 1535)
      assert.strictEqual(first.stats.decodeErrors, 0)
      assert.strictEqual(first.stats.snapshotsServed, 4)
      const trades = futuresRecording().frames
        .map((f) => JSON.parse(f.text))
        .filter((f) => f.stream.endsWith("@aggTrade") && Number(f.data.p) * Number(f.data.q) >= 500)
      assert.isAbove(trades.length, 0)
      assert.strictEqual(first.written.large_trades.written, trades.length)
      assert.isAbove(first.written.exchange_orderbooks.written, 0)
      const second = yield* replayOnce
      assert.deepStrictEqual(second.stats, first.stats)
      assert.strictEqual(second.written.large_trades.written, 0)
      assert.strictEqual(second.written.exchange_orderbooks.written, 0)
      const sql = yield* SqlClient.SqlClient
      const [count] = yield* sql<{ n: bigint }>`SELECT count(*) AS n FROM large_trades`
      assert.strictEqual(Number(count!.n), trades.length)
    }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped), { timeout: 60_000 })

  // Found by replaying twice: Coinbase's Exchange snapshot has no time, and reading it at "now" made book row ids differ per run.
  it.live("stores a recorded Coinbase session once, book rows included", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const session = () => recording("COINBASE.0", "COINBASE.ws.28.0")
      const low: PipelineSettings = { ...settings, thresholds: { byAsset: {}, otherAssets: 1 } }
      const first = yield* replay(coinbase, session(), low)
      assert.strictEqual(first.stats.decodeErrors, 0)
      assert.isAbove(first.written.large_trades.written, 0)
      assert.isAbove(first.written.exchange_orderbooks.written, 0)
      const second = yield* replay(coinbase, session(), low)
      assert.strictEqual(second.written.large_trades.written, 0)
      assert.strictEqual(second.written.exchange_orderbooks.written, 0)
    }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped), { timeout: 60_000 })

  it.live("replays a sessions/ capture (JSON lines, zstd): the 2026 Coinbase session, book rows on the recording's clock", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const capture = session("COINBASE.jsonl.zst")
      const low: PipelineSettings = { ...settings, thresholds: { byAsset: {}, otherAssets: 0 } }
      const first = yield* replay(coinbase, capture, low)
      assert.strictEqual(first.stats.frames, 1030)
      assert.strictEqual(first.stats.decodeErrors, 0)
      assert.strictEqual(first.written.large_trades.written, 279)
      // A row per product for each ORDERBOOK_INTERVAL (10 s) of the recording in which its book moved:
      // the replay takes seconds of wall time, the recording spans 24 s of its own.
      const buckets = new Map<string, Set<number>>()
      for (const frame of capture.frames) {
        const message = JSON.parse(frame.text)
        if (message.channel !== "l2_data") continue
        for (const event of message.events) {
          const set = buckets.get(event.product_id) ?? new Set<number>()
          set.add(Math.floor(frame.receivedAt! / defaultPipelineSettings.bookIntervalMs))
          buckets.set(event.product_id, set)
        }
      }
      const expected = [...buckets.values()].reduce((n, set) => n + set.size, 0)
      assert.isAtLeast(expected, 6)
      assert.strictEqual(first.written.exchange_orderbooks.written, expected)
      const second = yield* replay(coinbase, capture, low)
      assert.strictEqual(second.written.large_trades.written + second.written.exchange_orderbooks.written, 0, "nothing stored twice")
    }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped), { timeout: 60_000 })

  it("reads sessions/ captures of every kind: base64 gzip frames (Huobi), several connections in one file (Bybit), send and http lines", () => {
    const huobi = session("HUOBI.jsonl.zst")
    assert.strictEqual(huobi.frames.length, 362)
    for (const frame of huobi.frames) assert.doesNotThrow(() => JSON.parse(frame.text), frame.text.slice(0, 80))
    assert.include(huobi.frames[0]!.text, '"subbed":"market.trioeth.depth.step0"')
    const bybit = session("BYBIT.jsonl.zst")
    assert.sameMembers([...new Set(bybit.frames.map((f) => f.connection))], ["BYBIT.ws.2", "BYBIT.ws.3"])
    assert.strictEqual(bybit.sent.length, 24)
    assert.strictEqual(bybit.rest.length, 2)
    assert.isTrue(bybit.frames.every((f) => f.receivedAt !== undefined && f.receivedAt > Date.UTC(2026, 0, 1)), "receive times read, in ms")
  })
})
