/**
 * The whole service through the two worst things a long run meets: PostgreSQL
 * gone for a full minute while the venue keeps trading (everything queued is
 * kept and drains when it returns), and the process killed with SIGKILL
 * mid-stream (the restarted process stores nothing twice and records the hole
 * it left, repaired from the venue's history).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBinance } from "./fake/binance.ts"
import { TcpProxy } from "./support/proxy.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const symbols = ["SUSHIUSDT", "CTKUSDT"]
const postgresPort = Number(new URL(postgresUrl).port || 5432)

const feedEnv = (fake: FakeBinance, port: number, databaseUrl: string) => ({
  DATABASE_URL: databaseUrl,
  PORT: String(port),
  HOST: "127.0.0.1",
  EXCHANGES: "binance-futures",
  BINANCE_FUTURES_SYMBOLS: symbols.join(","),
  BINANCE_FUTURES_WS_URL: fake.wsUrl,
  BINANCE_FUTURES_REST_URL: fake.httpUrl,
  LARGE_TRADE_THRESHOLD_DEFAULT: "1",
  WRITER_FLUSH_MS: "20"
})

const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

const storedTrades = withDatabase(SqlClient.SqlClient.use((sql) =>
  sql<{ trade_id: string }>`SELECT trade_id FROM large_trades WHERE exchange = 'binance-futures' AND NOT is_liquidation`.pipe(
    Effect.map((rows) => rows.map((r) => r.trade_id))
  )
))

/** Rows of every table whose natural key (venue, symbol, time or trade id) occurs more than once. */
const duplicateRows = withDatabase(SqlClient.SqlClient.use((sql) =>
  sql<{ n: bigint }>`SELECT
    (SELECT count(*) FROM (SELECT 1 FROM large_trades GROUP BY exchange, symbol, trade_id, is_liquidation, timestamp HAVING count(*) > 1) d)
    + (SELECT count(*) FROM (SELECT 1 FROM funding_rates GROUP BY exchange, symbol, timestamp HAVING count(*) > 1) d)
    + (SELECT count(*) FROM (SELECT 1 FROM open_interest GROUP BY exchange, symbol, timestamp HAVING count(*) > 1) d)
    + (SELECT count(*) FROM (SELECT 1 FROM exchange_orderbooks GROUP BY exchange, symbol, timestamp HAVING count(*) > 1) d) AS n`.pipe(
    Effect.map((rows) => Number(rows[0]!.n))
  )
))

const recordedTradeIds = (fake: FakeBinance) =>
  fake.played.filter((f) => symbols.some((s) => f.stream === `${s.toLowerCase()}@aggTrade`)).map((f) => String(f.data.a))

const tradesSent = (fake: FakeBinance) => fake.sent.filter((f) => f.stream.endsWith("@aggTrade")).length

const startFake = (frameIntervalMs: number) =>
  Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs })), (f) => Effect.promise(() => f.close()))

/** `node src/main.ts` as a child process: the service exactly as a user starts it. */
const spawnService = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [fileURLToPath(new URL("../src/main.ts", import.meta.url))], {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", LOG_LEVEL: "Warn", ...env },
        stdio: ["ignore", "ignore", "pipe"]
      })
      const errors: Array<string> = []
      child.stderr?.on("data", (chunk: Buffer) => errors.push(chunk.toString()))
      return { child, errors }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

const exited = (child: ChildProcess) =>
  Effect.promise(() =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve(child.signalCode)
      : new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)))
  )

describe("outages", () => {
  it.live("PostgreSQL away for 60 s: the queues hold everything and the backlog drains once it is back", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => TcpProxy.start(postgresPort)), (p) => Effect.promise(() => p.close()))
      // ~1,500 frames 60 ms apart: the venue trades for the whole minute the database is away.
      const fake = yield* startFake(60)
      const port = freePort()
      yield* startService(feedEnv(fake, port, `postgres://postgres@127.0.0.1:${proxy.port}${new URL(postgresUrl).pathname}`))
      const base = `http://127.0.0.1:${port}`
      yield* eventually("trades stored", Effect.map(storedTrades, (ids) => (ids.length >= 5 ? true : undefined)))

      yield* Effect.promise(() => proxy.cut())
      const sentAtCut = tradesSent(fake)
      const during = yield* eventually("the outage visible in /health", Effect.map(getJson(`${base}/health`), ({ status, body }) =>
        status === 503 && body.database.reachable === false ? body : undefined), 20_000)
      assert.strictEqual(during.status, "unavailable")
      yield* Effect.sleep("60 seconds")
      const held = yield* getJson(`${base}/health`)
      assert.isTrue(held.body.database.writer_retrying, "the writer is holding a batch")
      const queuedDuringOutage = Object.values(held.body.queues as Record<string, { queued: number }>).reduce((n, q) => n + q.queued, 0)
      assert.isAbove(tradesSent(fake), sentAtCut + 50, "the venue kept trading through the outage")
      assert.isAbove(queuedDuringOutage, 0, "rows are waiting in the queues")

      yield* Effect.promise(() => proxy.restore())
      const restoredAt = Date.now()
      // The backlog is gone when the writer has stopped retrying and every queue is empty again.
      yield* eventually("the backlog drained", Effect.map(getJson(`${base}/health`), ({ status, body }) =>
        status === 200 && !body.database.writer_retrying &&
          Object.values(body.queues as Record<string, { queued: number }>).every((q) => q.queued === 0) ? true : undefined), 30_000)
      const drainedAfterMs = Date.now() - restoredAt
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 60_000)
      const expected = recordedTradeIds(fake)
      const stored = yield* eventually("the backlog drained", Effect.map(storedTrades, (ids) =>
        ids.length >= expected.length ? ids : undefined), 60_000)
      assert.sameMembers(stored, expected, "every trade of the session stored exactly once")
      console.log(`database outage: ${tradesSent(fake) - sentAtCut} trades sent during 60 s, ${queuedDuringOutage} rows queued, ` +
        `backlog drained ${(drainedAfterMs / 1000).toFixed(1)} s after the database came back; ${stored.length}/${expected.length} trades of the session stored`)
      const after = yield* eventually("healthy again with empty queues", Effect.map(getJson(`${base}/health`), ({ status, body }) =>
        status === 200 && !body.database.writer_retrying &&
          Object.values(body.queues as Record<string, { queued: number }>).every((q) => q.queued === 0) ? body : undefined), 30_000)
      for (const [table, queue] of Object.entries(after.queues as Record<string, { dropped: number; rejected: number }>)) {
        assert.strictEqual(queue.dropped, 0, `${table}: nothing dropped`)
        assert.strictEqual(queue.rejected, 0, `${table}: nothing refused`)
      }
      // The feed itself never noticed: no reconnect, so no gap to repair either.
      const { body: gapBody } = yield* getJson(`${base}/api/v1/exchange/gaps`)
      assert.strictEqual(gapBody.data.count, 0)
      assert.strictEqual(yield* duplicateRows, 0)
    })), { timeout: 240_000 })

  it.live("SIGKILL mid-stream: the restarted process stores nothing twice and records and repairs the gap", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const fake = yield* startFake(6)
      const first = yield* spawnService(feedEnv(fake, freePort(), postgresUrl))
      yield* eventually("trades stored by the first process", Effect.map(storedTrades, (ids) => (ids.length >= 10 ? true : undefined)), 40_000)
      first.child.kill("SIGKILL")
      assert.strictEqual(yield* exited(first.child), "SIGKILL")
      const storedBeforeKill = (yield* storedTrades).length
      yield* Effect.sleep("1 second")

      const port = freePort()
      const second = yield* spawnService(feedEnv(fake, port, postgresUrl))
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      yield* eventually("the second process serving", Effect.map(
        Effect.promise(() => fetch(`${base}/gaps`).then((r) => r.status, () => 0)),
        (status) => (status === 200 ? true : undefined)
      ), 40_000)
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 60_000)
      const expected = recordedTradeIds(fake)
      assert.isBelow(storedBeforeKill, expected.length, "the kill happened mid-stream")
      const stored = yield* eventually("everything stored, what went by while down repaired", Effect.map(storedTrades, (ids) =>
        ids.length >= expected.length ? ids : undefined), 40_000)
      assert.sameMembers(stored, expected, "every trade exactly once")
      assert.strictEqual(yield* duplicateRows, 0)

      const gaps = yield* eventually("the restart gap verified", Effect.map(getJson(`${base}/gaps?channel=trades`), ({ body }) =>
        body.data.count >= 1 && body.data.gaps.every((g: any) => g.repair_status === "verified") ? body.data.gaps : undefined), 30_000)
      assert.isTrue(gaps.every((g: any) => g.cause === "restart"), JSON.stringify(gaps))
      assert.isAbove(gaps.reduce((n: number, g: any) => n + g.repaired_count, 0), 0, "trades missed while down were fetched")
      console.log(`SIGKILL: ${storedBeforeKill} trades stored before the kill, ${expected.length} in the session, ` +
        `${gaps.length} restart gap(s), ${gaps.reduce((n: number, g: any) => n + g.repaired_count, 0)} trades repaired, 0 duplicates`)
      assert.isNull(second.child.exitCode, `the second process is still running: ${second.errors.join("").slice(0, 500)}`)
    })), { timeout: 180_000 })
})
