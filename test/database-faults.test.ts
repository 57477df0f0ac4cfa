/**
 * The sink of record through the ways a live PostgreSQL refuses writes for a
 * while, each held for 20 s while a Binance-protocol venue (the bench's flood venue) streams 1,000 frames a second (500 trades with consecutive ids) into the
 * running service: a failover to a read-only replica (the database set
 * read-only and its backends terminated), a table locked by another session
 * (the writer's lock_timeout fires: 55P03), statements that outlast the
 * writer's statement_timeout (57014), and a full disk (a tablespace on a
 * 128 MB tmpfs, 53100). In every case the batch is held, the table shows as
 * degraded with the SQLSTATE in /health, and once the fault clears every trade
 * of the session is stored exactly once: nothing dead-lettered, nothing
 * dropped. Before the fix each of these refusals was taken for bad rows (the
 * database still answered `SELECT 1`) and the rows were dropped.
 *
 * The faults run in a database of their own (`mds_faults`), so setting it
 * read-only touches no other test.
 */
import { execFileSync, fork } from "node:child_process"
import { mkdirSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const symbols = ["SOLUSDT", "XRPUSDT"]
const frameRate = 1000
const faultsDatabase = "mds_faults"
const faultsUrl = (() => {
  const url = new URL(postgresUrl)
  url.pathname = `/${faultsDatabase}`
  return url.toString()
})()
const holdMs = 20_000

const admin = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(Layer.fresh(postgresLayer(postgresUrl))), Effect.scoped)
const inFaults = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(Layer.fresh(postgresLayer(faultsUrl))), Effect.scoped)

const terminateBackends = admin(SqlClient.SqlClient.use((sql) =>
  sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${faultsDatabase} AND pid <> pg_backend_pid()`.pipe(Effect.asVoid)
))

const prepare = Effect.gen(function*() {
  yield* admin(SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const exists = yield* sql`SELECT 1 FROM pg_database WHERE datname = ${faultsDatabase}`
      if (exists.length === 0) yield* sql.unsafe(`CREATE DATABASE ${faultsDatabase}`)
      yield* sql.unsafe(`ALTER DATABASE ${faultsDatabase} RESET default_transaction_read_only`)
    })
  ))
  yield* inFaults(Effect.gen(function*() {
    yield* truncateAll
    const sql = yield* SqlClient.SqlClient
    // A slow statement on demand: every insert into large_trades sleeps while fault_control says so.
    yield* sql`CREATE TABLE IF NOT EXISTS fault_control (sleep_ms INTEGER NOT NULL)`
    yield* sql`DELETE FROM fault_control`
    yield* sql`INSERT INTO fault_control VALUES (0)`
    yield* sql.unsafe(`CREATE OR REPLACE FUNCTION fault_sleep() RETURNS trigger AS $$
      BEGIN PERFORM pg_sleep((SELECT sleep_ms FROM fault_control) / 1000.0); RETURN NULL; END $$ LANGUAGE plpgsql`)
    yield* sql.unsafe(`DROP TRIGGER IF EXISTS fault_sleep ON large_trades`)
    yield* sql.unsafe(`CREATE TRIGGER fault_sleep BEFORE INSERT ON large_trades FOR EACH STATEMENT EXECUTE FUNCTION fault_sleep()`)
  }))
})

const storedTrades = inFaults(SqlClient.SqlClient.use((sql) =>
  sql<{ symbol: string; trade_id: string }>`SELECT symbol, trade_id FROM large_trades WHERE exchange = 'binance'`.pipe(
    Effect.map((rows) => rows.map((r) => `${r.symbol}:${r.trade_id}`))
  )
))

interface Flood {
  readonly port: number
  readonly pace: (rate: number) => void
  readonly counts: Effect.Effect<{ readonly sent: number; readonly trades: Record<string, number> }>
}

/**
 * The bench's flood venue (Binance spot protocol, its own process): trades with consecutive ids per symbol at
 * `frameRate` frames a second, half of them trades, so every id it sent is known.
 */
const flood = Effect.acquireRelease(
  Effect.callback<{ flood: Flood; kill: () => void }>((resume) => {
    const child = fork(new URL("../bench/flood-exchange.ts", import.meta.url).pathname, [], {
      env: { ...process.env, FLOOD_SYMBOLS: symbols.join(",") },
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    const waiting: Array<(counts: { sent: number; trades: Record<string, number> }) => void> = []
    child.on("message", (message: { readonly port?: number; readonly sent?: number; readonly trades?: Record<string, number> }) => {
      if (message.sent !== undefined) waiting.shift()?.({ sent: message.sent, trades: message.trades ?? {} })
      if (message.port === undefined) return
      resume(Effect.succeed({
        kill: () => child.kill(),
        flood: {
          port: message.port,
          pace: (rate) => child.send({ rate }),
          counts: Effect.callback((answer) => {
            waiting.push((counts) => answer(Effect.succeed(counts)))
            child.send({ counts: true })
          })
        }
      }))
    })
  }),
  ({ kill }) => Effect.sync(kill)
).pipe(Effect.map(({ flood }) => flood))

const count = (query: string) => inFaults(SqlClient.SqlClient.use((sql) =>
  sql.unsafe<{ n: bigint }>(query).pipe(Effect.map((rows) => Number(rows[0]!.n)))
))

/** A tmpfs of 128 MB as a tablespace: a disk that really fills. Undone whatever happens. */
const tinyDisk = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = `/tmp/mds-tiny-disk-${process.pid}`
    mkdirSync(dir, { recursive: true })
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=128m", "tmpfs", dir])
    execFileSync("chown", ["postgres:postgres", dir])
    return dir
  }),
  (dir) =>
    Effect.gen(function*() {
      yield* inFaults(SqlClient.SqlClient.use((sql) =>
        Effect.gen(function*() {
          yield* sql.unsafe(`DROP TABLE IF EXISTS disk_filler`)
          yield* sql.unsafe(`ALTER TABLE large_trades SET TABLESPACE pg_default`)
        })
      )).pipe(Effect.ignore)
      yield* admin(SqlClient.SqlClient.use((sql) => sql.unsafe(`DROP TABLESPACE IF EXISTS mds_tiny`))).pipe(Effect.ignore)
      yield* Effect.sync(() => execFileSync("umount", ["-l", dir]))
    })
)

interface Observed {
  readonly sqlstates: Set<string>
  dropped: number
  rejected: number
}

/** Polls /health through a fault, collecting the SQLSTATEs the large-trades table was degraded with. */
const watchHealth = (base: string, observed: Observed) =>
  Effect.forever(Effect.gen(function*() {
    const { body } = yield* getJson(`${base}/health`).pipe(Effect.catchDefect(() => Effect.succeed({ status: 0, body: undefined as any })))
    for (const degraded of body?.database?.degraded_tables ?? []) {
      if (degraded.table === "large_trades") observed.sqlstates.add(degraded.sqlstate ?? "none")
    }
    yield* Effect.sleep("250 millis")
  }))

describe("the database refusing writes for a while", () => {
  it.live("read-only failover, a locked table, statement timeouts and a full disk: 0 trades lost, 0 duplicates", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* prepare
      const venue = yield* flood
      const port = freePort()
      const base = `http://127.0.0.1:${port}`
      yield* startService({
        DATABASE_URL: faultsUrl,
        PORT: String(port),
        HOST: "127.0.0.1",
        EXCHANGES: "binance",
        BINANCE_SYMBOLS: symbols.join(","),
        BINANCE_WS_URL: `ws://127.0.0.1:${venue.port}`,
        BINANCE_REST_URL: `http://127.0.0.1:${venue.port}`,
        LARGE_TRADE_THRESHOLD_DEFAULT: "1",
        WRITER_FLUSH_MS: "20",
        WRITER_RETRY_MAX_SECONDS: "1",
        WRITER_LOCK_TIMEOUT_MS: "1000",
        WRITER_STATEMENT_TIMEOUT_MS: "3000",
        LOG_LEVEL: "Error"
      })
      yield* eventually("the venue connected", Effect.map(getJson(`${base}/health`), ({ body }) =>
        body?.feeds?.some((f: any) => f.state === "connected") ? true : undefined).pipe(Effect.catchDefect(() => Effect.succeed(undefined))), 40_000)
      venue.pace(frameRate)
      yield* eventually("trades stored", Effect.map(storedTrades, (ids) => (ids.length >= 5 ? true : undefined)), 40_000)
      const figures: Array<string> = []

      const duringFault = (name: string, start: Effect.Effect<void, unknown>, clear: Effect.Effect<void, unknown>) =>
        Effect.gen(function*() {
          const observed: Observed = { sqlstates: new Set(), dropped: 0, rejected: 0 }
          const before = (yield* storedTrades).length
          yield* start
          const watcher = yield* Effect.forkChild(watchHealth(base, observed))
          yield* Effect.sleep(holdMs)
          const storedDuring = (yield* storedTrades).length
          yield* clear
          yield* eventually(`${name}: the writer takes batches again`, Effect.map(getJson(`${base}/health`), ({ body }) =>
            (body.database?.degraded_tables ?? []).length === 0 && body.queues?.large_trades?.queued === 0 ? true : undefined), 60_000)
          yield* Fiber.interrupt(watcher)
          figures.push(`${name}: held ${holdMs / 1000} s, degraded with ${[...observed.sqlstates].join(", ") || "nothing"}, ` +
            `${before} trades stored before, ${storedDuring - before} stored during the fault`)
          return observed
        })

      // 1. A failover to a read-only replica: sessions end, and the new ones cannot write.
      const readOnly = yield* duringFault(
        "read-only failover",
        Effect.andThen(
          admin(SqlClient.SqlClient.use((sql) => sql.unsafe(`ALTER DATABASE ${faultsDatabase} SET default_transaction_read_only = on`))),
          terminateBackends
        ),
        // The primary is back: writable again, and the read-only sessions are gone as a failover back ends them.
        Effect.andThen(
          admin(SqlClient.SqlClient.use((sql) => sql.unsafe(`ALTER DATABASE ${faultsDatabase} RESET default_transaction_read_only`))),
          terminateBackends
        )
      )
      assert.isTrue(readOnly.sqlstates.has("25006"), `read-only seen as 25006: ${[...readOnly.sqlstates]}`)

      // 2. Another session holds ACCESS EXCLUSIVE on large_trades: the writer's lock_timeout (1 s) fires.
      const lockHolder = yield* Effect.forkChild(inFaults(SqlClient.SqlClient.use((sql) =>
        sql.withTransaction(Effect.andThen(
          sql`LOCK TABLE large_trades IN ACCESS EXCLUSIVE MODE`,
          sql`SELECT pg_sleep(${holdMs / 1000})`
        ))
      )))
      const locked = yield* duringFault("table locked", Effect.void, Fiber.join(lockHolder).pipe(Effect.asVoid))
      assert.isTrue(locked.sqlstates.has("55P03"), `lock timeout seen as 55P03: ${[...locked.sqlstates]}`)

      // 3. Every insert takes 4 s, past the writer's statement_timeout of 3 s.
      const slow = yield* duringFault(
        "statement timeout",
        inFaults(SqlClient.SqlClient.use((sql) => sql`UPDATE fault_control SET sleep_ms = 4000`)).pipe(Effect.asVoid),
        inFaults(SqlClient.SqlClient.use((sql) => sql`UPDATE fault_control SET sleep_ms = 0`)).pipe(Effect.asVoid)
      )
      assert.isTrue(slow.sqlstates.has("57014"), `statement timeout seen as 57014: ${[...slow.sqlstates]}`)

      // 4. The disk fills: large_trades moves to a 128 MB tablespace, and a filler table takes the rest of it.
      const dir = yield* tinyDisk
      const full = yield* duringFault(
        "disk full",
        Effect.gen(function*() {
          yield* admin(SqlClient.SqlClient.use((sql) => sql.unsafe(`CREATE TABLESPACE mds_tiny LOCATION '${dir}'`)))
          yield* inFaults(SqlClient.SqlClient.use((sql) =>
            Effect.gen(function*() {
              // The move waits for the writer's inserts in flight (on a loaded machine, a backlog's batch can take
              // longer than this pool's own 10 s lock_timeout): no timeout for it.
              yield* sql.withTransaction(Effect.andThen(sql`SET LOCAL lock_timeout = 0`, sql.unsafe(`ALTER TABLE large_trades SET TABLESPACE mds_tiny`)))
              yield* sql.unsafe(`CREATE TABLE disk_filler (pad TEXT) TABLESPACE mds_tiny`)
              // Insert until PostgreSQL says the device is full (53100); each round is about 10 MB of random text
              // (rows under the TOAST threshold, so stored as they are, uncompressed).
              for (let round = 0; round < 40; round++) {
                const filled = yield* sql.unsafe(`INSERT INTO disk_filler SELECT (SELECT string_agg(md5(random()::text || g::text || i::text), '')
                  FROM generate_series(1, 30) i) FROM generate_series(1, 10000) g`).pipe(
                  Effect.as(false),
                  Effect.catch(() => Effect.succeed(true))
                )
                if (filled) break
              }
            })
          ))
        }),
        inFaults(SqlClient.SqlClient.use((sql) => sql.unsafe(`DROP TABLE disk_filler`))).pipe(Effect.asVoid)
      )
      assert.isTrue(full.sqlstates.has("53100"), `disk full seen as 53100: ${[...full.sqlstates]}`)

      yield* Effect.sleep("2 seconds")
      venue.pace(-1)
      const { sent, trades } = yield* venue.counts
      const expected = Object.entries(trades).flatMap(([symbol, n]) => Array.from({ length: n }, (_, i) => `${symbol}:${5_000_001 + i}`))
      const stored = yield* eventually("every trade stored", Effect.map(storedTrades, (ids) => (ids.length >= expected.length ? ids : undefined)), 60_000)
      const storedSet = new Set(stored)
      assert.strictEqual(expected.filter((id) => !storedSet.has(id)).length, 0, "every trade sent is stored")
      assert.strictEqual(stored.length, expected.length, "and nothing else")
      const duplicates = yield* count(`SELECT count(*) AS n FROM (SELECT 1 FROM large_trades GROUP BY exchange, symbol, trade_id HAVING count(*) > 1) d`)
      const deadLetters = yield* count(`SELECT count(*) AS n FROM rejected_rows`)
      const { body } = yield* getJson(`${base}/health`)
      const queues = body.queues as Record<string, { dropped: number; rejected: number; unstored: number }>
      assert.strictEqual(duplicates, 0)
      assert.strictEqual(deadLetters, 0, "nothing taken for a bad row")
      for (const [table, queue] of Object.entries(queues)) {
        assert.strictEqual(queue.dropped, 0, `${table}: nothing dropped`)
        assert.strictEqual(queue.rejected, 0, `${table}: nothing refused`)
      }
      console.log(`database faults:\n  ${figures.join("\n  ")}\n  ${stored.length}/${expected.length} trades of the session stored, ` +
        `${expected.filter((id) => !storedSet.has(id)).length} lost, ${duplicates} duplicates, ${deadLetters} dead-lettered; ${sent} frames sent at ${frameRate}/s`)
    })), { timeout: 400_000 })
})
