/**
 * Coverage claims only what was seen: a start whose venues cannot be reached
 * answers `complete: false` and names them with their error; ten minutes the
 * service was down are reported as `service_stopped`; rows the writer drops
 * are an `overload` gap that coverage and the gaps endpoint show. Plus the
 * interval arithmetic, against hand-computed periods.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { RowBatch, type LargeTradeRow } from "../src/domain/rows.ts"
import { FeedRegistry } from "../src/feed/status.ts"
import { CoverageRecorder, CoverageTimeline, type Observation, streamKey } from "../src/gaps/coverage.ts"
import { GapLedger } from "../src/gaps/ledger.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { assessCoverage, coverage, gaps } from "../src/storage/queries.ts"
import { Writer } from "../src/storage/writer.ts"
import { pinnedClock } from "./support/clock.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const database = postgresLayer(postgresUrl)
const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => effect.pipe(Effect.provide(database), Effect.scoped)

const minute = 60_000
const unreachable = {
  COINBASE_WS_URL: "wss://venue.invalid",
  COINBASE_REST_URL: "https://venue.invalid",
  BINANCE_FUTURES_WS_URL: "wss://venue.invalid",
  BINANCE_FUTURES_REST_URL: "https://venue.invalid"
}

describe("coverage is positive evidence", () => {
  it.live("a start with unreachable venues answers complete: false and names them with their error", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "coinbase,binance-futures",
        COVERAGE_HEARTBEAT_SECONDS: "1", ...unreachable
      })
      const url = `http://127.0.0.1:${port}/api/v1/exchange/large-trades?symbol=BTC&hours=1`
      const answer = yield* eventually("both venues failing with their error", Effect.map(getJson(url), ({ body }) => {
        const failing = body.coverage.not_collected.filter((p: any) => p.reason === "venue_failing" && /ENOTFOUND/.test(p.detail ?? ""))
        return new Set(failing.map((p: any) => p.exchange)).size === 2 ? body : undefined
      }), 20_000)
      assert.strictEqual(answer.data.count, 0)
      assert.strictEqual(answer.coverage.complete, false)
      assert.strictEqual(answer.coverage.gap_count, 0, "no gap: nothing was collected to have a gap in")
      assert.sameMembers(answer.coverage.streams.map((s: any) => s.exchange), ["coinbase", "binance-futures"])
      assert.isTrue(answer.coverage.streams.every((s: any) => s.complete === false))
      // Nothing ran before this start: the rest of the hour is before the first run.
      const before = answer.coverage.not_collected.find((p: any) => p.reason === "before_first_run")
      assert.strictEqual(before.start, answer.coverage.window.start)
      const health = yield* getJson(`http://127.0.0.1:${port}/health`)
      assert.match(health.body.venue_reasons.coinbase, /^failing: .*ENOTFOUND/)
    })), { timeout: 60_000 })

  it.live("a restart after 10 minutes down reports those 10 minutes as service_stopped", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const restartAt = Date.UTC(2026, 0, 15, 12, 0, 0)
      const stoppedAt = restartAt - 10 * minute
      const iso = (ms: number) => new Date(ms).toISOString()
      // The previous run: coinbase live from an hour and ten minutes before until its clean stop.
      yield* withDatabase(SqlClient.SqlClient.use((sql) =>
        Effect.andThen(
          sql`INSERT INTO service_runs (id, started_at, last_seen_at, stopped_at, venues) VALUES ('earlier',
            (${iso(restartAt - 70 * minute)}::timestamptz AT TIME ZONE 'UTC'), (${iso(stoppedAt)}::timestamptz AT TIME ZONE 'UTC'),
            (${iso(stoppedAt)}::timestamptz AT TIME ZONE 'UTC'), 'coinbase')`,
          sql`INSERT INTO stream_coverage (id, run_id, exchange, channel, symbol, state, detail, since, until, closed) VALUES
            ('earlier_coinbase', 'earlier', 'coinbase', '*', '*', 'live', NULL,
            (${iso(restartAt - 70 * minute)}::timestamptz AT TIME ZONE 'UTC'), (${iso(stoppedAt)}::timestamptz AT TIME ZONE 'UTC'), TRUE)`
        )
      ))
      const clock = pinnedClock(restartAt)
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "coinbase", COVERAGE_HEARTBEAT_SECONDS: "1", ...unreachable
      }, clock.layer)
      const { body } = yield* getJson(`http://127.0.0.1:${port}/api/v1/exchange/large-trades?symbol=BTC&hours=1`)
      assert.strictEqual(body.coverage.complete, false)
      const stopped = body.coverage.not_collected.filter((p: any) => p.reason === "service_stopped")
      assert.strictEqual(stopped.length, 1)
      assert.strictEqual(stopped[0].start, iso(stoppedAt))
      assert.isNull(stopped[0].exchange, "the whole service was down")
      const downSeconds = (Date.parse(stopped[0].end) - stoppedAt) / 1000
      // Down from the stop until this run started (the pinned restart time, plus the time the start took).
      assert.isAtLeast(downSeconds, 600)
      assert.isBelow(downSeconds, 615)
      assert.isUndefined(body.coverage.not_collected.find((p: any) => p.reason === "before_first_run"), "the earlier run covered the rest of the hour")
      // The earlier run's live time is not in not_collected; this run's is, as coinbase starting or failing.
      assert.isTrue(body.coverage.not_collected.filter((p: any) => p.exchange === "coinbase").every((p: any) =>
        Date.parse(p.start) >= Date.parse(stopped[0].end) && ["venue_starting", "venue_failing"].includes(p.reason)))
    })), { timeout: 60_000 })

  it.live("a live stream is stored as collected only up to the writer's durable watermark, then written on as it passes", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const startAt = Date.UTC(2026, 2, 10, 9, 0, 0)
      const clock = pinnedClock(startAt)
      // The writer's watermark, set by hand: rows offered since startAt + 2 s are still in memory.
      let durable = startAt + 2_000
      const writer = Layer.succeed(Writer, Writer.of({
        offer: () => Effect.void,
        state: () => { throw new Error("not used") },
        durableUntil: (now) => Math.min(now, durable),
        losses: Stream.empty
      }))
      const sql = yield* SqlClient.SqlClient
      const stored = sql<{ until: Date }>`SELECT until FROM stream_coverage WHERE exchange = 'cov-test' AND channel = 'trades' AND state = 'live'`
      yield* Effect.gen(function*() {
        const registry = yield* FeedRegistry
        registry.setVenueState("cov-test", "running")
        const feed = registry.register("cov-test/ws#0", "cov-test")
        feed.state = "connected"
        feed.connectedAt = startAt
        feed.lastMessageAt = startAt
        feed.carries = { channels: ["trades"], symbols: ["BTCUSDT"] }
        yield* Effect.gen(function*() {
          const recorder = yield* CoverageRecorder
          yield* Effect.sleep("3 seconds")
          yield* recorder.sample
          const [first] = yield* stored
          // Live for 3 s by the feed; stored as collected only to the watermark (2 s).
          assert.strictEqual(first!.until.getTime(), startAt + 2_000)
          durable = Number.POSITIVE_INFINITY
          yield* recorder.sample
          const [second] = yield* stored
          assert.isAtLeast(second!.until.getTime(), startAt + 3_000, "written on once the rows are durable")
        }).pipe(Effect.provide(CoverageRecorder.layer), Effect.scoped)
      }).pipe(
        Effect.provide(Layer.mergeAll(FeedRegistry.layer, writer, ConfigProvider.layer(ConfigProvider.fromEnv({ env: { EXCHANGES: "cov-test", COVERAGE_HEARTBEAT_SECONDS: "600" } })))),
        Effect.provide(clock.layer)
      )
      yield* truncateAll
    }).pipe(Effect.provide(database)), { timeout: 60_000 })

  it.live("rows a full writer queue drops are an overload gap in the ledger, in coverage and in the gaps answer", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const now = Date.now()
      const trade = (i: number): LargeTradeRow => ({
        id: `coverage-test_BTCUSDT_${i}`, exchange: "coverage-test", symbol: "BTCUSDT", side: "buy", price: 50_000, size: 3, sizeBase: 3, sizeUnit: "base",
        valueUsd: 150_000, timestamp: now - 5 * minute + i * 1000, tradeId: String(i), isLiquidation: false, metadata: {}
      })
      yield* Effect.scoped(Effect.gen(function*() {
        const ledger = yield* GapLedger
        const writer = yield* Writer.make({ batchSize: 500, flushIntervalMs: 20, queueCapacity: 10, retryInitialMs: 50, retryMaxMs: 200, drainTimeoutMs: 5_000, suspectAttempts: 3 })
        yield* ledger.followLosses(writer.losses)
        const batch = new RowBatch()
        // 30 rows into a queue of 10: rows 10 to 29 are dropped, covering now-5min+10s .. now-5min+29s.
        batch.large_trades.push(...Array.from({ length: 30 }, (_, i) => trade(i)))
        yield* writer.offer(batch)
        const found = yield* eventually("the loss stored as a gap", Effect.map(
          gaps({ exchange: "coverage-test", hours: 1, limit: 10 }),
          (g) => (g.count > 0 ? g : undefined)
        ), 10_000)
        assert.strictEqual(found.count, 1)
        assert.strictEqual(found.unrepaired, 1)
        const gap = found.gaps[0]!
        assert.strictEqual(gap.cause, "overload")
        assert.strictEqual(gap.channel, "trades")
        assert.strictEqual(gap.symbol, "BTCUSDT")
        assert.strictEqual(gap.start, new Date(now - 5 * minute + 10_000).toISOString())
        assert.strictEqual(gap.end, new Date(now - 5 * minute + 29_000).toISOString())
        assert.strictEqual(gap.estimated_missing, 20)
        assert.strictEqual(gap.repair_status, "unrecoverable")
        const covered = yield* coverage({ exchange: "coverage-test", symbol: "BTC", hours: 1, channels: ["trades", "liquidations"] })
        assert.strictEqual(covered.complete, false)
        assert.strictEqual(covered.unrepaired_gap_count, 1)
        assert.strictEqual(covered.gaps[0]!.cause, "overload")
      }).pipe(Effect.provide(GapLedger.layer)))
      yield* truncateAll
    }).pipe(Effect.provide(database)), { timeout: 60_000 })
})

describe("the coverage arithmetic", () => {
  const t0 = Date.UTC(2026, 0, 15, 11, 0, 0)
  const iso = (ms: number) => new Date(ms).toISOString()
  const live = (runId: string, channel: string, symbol: string, since: number, until: number) =>
    ({ id: `${runId}_${channel}_${symbol}_${since}`, runId, exchange: "venue-a", channel, symbol, state: "live", detail: null, since, until })

  it("an hour fully live on every stream asked about is complete; other symbols are not asked about", () => {
    const assessed = assessCoverage({
      from: t0, now: t0 + 60 * minute, symbol: "BTC", firstRunAt: t0 - minute,
      runs: [{ id: "r", start: t0 - minute, end: t0 + 60 * minute, venues: ["venue-a"] }],
      rows: [
        live("r", "*", "*", t0 - minute, t0 + 60 * minute),
        live("r", "trades", "BTC-USD", t0 - minute, t0 + 60 * minute),
        { ...live("r", "trades", "ETH-USD", t0 - minute, t0 + 30 * minute), state: "disconnected", detail: "x" }
      ]
    })
    assert.deepStrictEqual(assessed.notCollected, [])
    assert.deepStrictEqual(assessed.streams.map((s) => `${s.channel}/${s.symbol}`), ["*/*", "trades/BTC-USD"])
  })

  it("a stream down for 7 minutes inside a run is reported for exactly those minutes, with its error", () => {
    const down = { ...live("r", "trades", "BTC-USD", t0 + 20 * minute, t0 + 27 * minute), state: "disconnected", detail: "feed: closed with code 1006" }
    const assessed = assessCoverage({
      from: t0, now: t0 + 60 * minute, symbol: "BTC-USD", firstRunAt: t0 - 5 * minute,
      runs: [{ id: "r", start: t0 - 5 * minute, end: t0 + 60 * minute, venues: ["venue-a"] }],
      rows: [
        live("r", "*", "*", t0 - 5 * minute, t0 + 60 * minute),
        live("r", "trades", "BTC-USD", t0 - 5 * minute, t0 + 20 * minute),
        down,
        live("r", "trades", "BTC-USD", t0 + 27 * minute, t0 + 60 * minute)
      ]
    })
    assert.deepStrictEqual(assessed.notCollected, [{
      exchange: "venue-a", channel: "trades", symbol: "BTC-USD", start: iso(t0 + 20 * minute), end: iso(t0 + 27 * minute),
      reason: "disconnected", detail: "feed: closed with code 1006"
    }])
  })

  it("no run at all: the whole window is before the first run; a symbol no venue carries is not_configured", () => {
    assert.deepStrictEqual(assessCoverage({ from: t0, now: t0 + minute, firstRunAt: null, runs: [], rows: [] }).notCollected, [
      { exchange: null, channel: null, symbol: null, start: iso(t0), end: iso(t0 + minute), reason: "before_first_run", detail: null }
    ])
    const other = assessCoverage({
      from: t0, now: t0 + minute, symbol: "DOGE", firstRunAt: t0 - minute,
      runs: [{ id: "r", start: t0 - minute, end: t0 + minute, venues: ["venue-a"] }],
      rows: [live("r", "*", "*", t0 - minute, t0 + minute), live("r", "trades", "BTC-USD", t0 - minute, t0 + minute)]
    })
    assert.deepStrictEqual(other.streams, [])
    assert.strictEqual(other.notCollected[0]!.reason, "not_configured")
  })
})

describe("the recorder's timeline", () => {
  const t0 = Date.UTC(2026, 0, 15, 11, 0, 0)
  const key = streamKey("venue-a", "trades", "BTC-USD")
  const seen = (state: Observation["state"], connectedAt: number | null, lastMessageAt: number | null, detail: string | null = null) =>
    new Map([[key, { state, detail, connectedAt, lastMessageAt } satisfies Observation]])
  const spans = (timeline: CoverageTimeline, now: number) =>
    timeline.intervals(now).map((i) => [i.state, (i.since - t0) / 1000, (i.until - t0) / 1000, i.detail] as const)

  it("a live stream is extended each sample and ends at the feed's last message when it drops", () => {
    const timeline = new CoverageTimeline("run", t0)
    timeline.advance(seen("live", t0 + 2_000, t0 + 3_000), t0 + 5_000)
    timeline.advance(seen("live", t0 + 2_000, t0 + 9_000), t0 + 10_000)
    // Dropped after its last message at 12 s; found at the 15 s sample.
    timeline.advance(seen("disconnected", null, t0 + 12_000, "feed: closed with code 1006"), t0 + 15_000)
    assert.deepStrictEqual(spans(timeline, t0 + 15_000), [
      ["live", 2, 10, null],
      ["disconnected", 10, 15, "feed: closed with code 1006"]
    ])
  })

  it("a reconnect between two samples: live to the last sample, down until the new connection opened", () => {
    const timeline = new CoverageTimeline("run", t0)
    timeline.advance(seen("live", t0 + 1_000, t0 + 4_000), t0 + 5_000)
    timeline.advance(seen("live", t0 + 8_000, t0 + 9_500), t0 + 10_000)
    assert.deepStrictEqual(spans(timeline, t0 + 10_000), [
      ["live", 1, 5, null],
      ["disconnected", 5, 8, null],
      ["live", 8, 10, null]
    ])
  })

  it("a stream first seen down claims nothing before it was seen", () => {
    const timeline = new CoverageTimeline("run", t0)
    timeline.advance(seen("disconnected", null, null, "x"), t0 + 5_000)
    assert.deepStrictEqual(spans(timeline, t0 + 6_000), [["disconnected", 5, 6, "x"]])
  })
})
