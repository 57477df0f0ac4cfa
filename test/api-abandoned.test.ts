/**
 * A client that closes its connection before its answer is not an error (under
 * autocannon every closed connection used to log `ERROR request failed
 * InterruptError`): it is counted in api_requests_abandoned_total and logged
 * at Debug. The request is held in the database (large_trades locked by the
 * test's own transaction) until the client has gone, so the close always
 * lands while the handler runs.
 */
import { connect } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { eventually, freePort, postgresUrl, startService, truncateAll } from "./support/service.ts"

const abandonedLine = /^api_requests_abandoned_total\{route="\/api\/v1\/exchange\/large-trades"\} (\d+)/m

describe("a client that closes its connection", () => {
  it.live("is counted and logged at Debug, never as an error", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
      const logged: Array<{ level: LogLevel.LogLevel; message: string }> = []
      const logger = Logger.make((options) => {
        const parts = Array.isArray(options.message) ? options.message : [options.message]
        logged.push({ level: options.logLevel, message: parts.map(String).join(" ") })
      })
      const port = freePort()
      yield* startService(
        { DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none", LOG_LEVEL: "Debug" },
        Logger.layer([logger]) as Layer.Layer<never>
      )
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`LOCK TABLE large_trades IN ACCESS EXCLUSIVE MODE`
        const socket = connect(port, "127.0.0.1")
        yield* Effect.promise(() => new Promise<void>((resolve) => socket.once("connect", () => resolve())))
        socket.write(`GET /api/v1/exchange/large-trades?hours=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
        // The API's query is waiting for the lock: the handler is running.
        // (pg_stat_activity is read once per transaction unless its snapshot is cleared.)
        yield* eventually("the API query waiting on the lock", Effect.map(
          Effect.andThen(sql`SELECT pg_stat_clear_snapshot()`, sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE application_name = 'market-data-api' AND wait_event_type = 'Lock' AND query LIKE '%FROM large_trades%'`),
          ([row]) => (row!.n > 0 ? true : undefined)
        ), 15_000)
        socket.destroy()
        yield* eventually("the abandoned request counted", Effect.promise(async () => {
          const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
          return abandonedLine.exec(metrics)?.[1] === "1" ? true : undefined
        }), 15_000)
      }))
      const abandoned = logged.filter((l) => l.message.includes("request abandoned by its client"))
      assert.strictEqual(abandoned.length, 1)
      assert.strictEqual(abandoned[0]!.level, "Debug")
      assert.include(abandoned[0]!.message, "GET /api/v1/exchange/large-trades")
      assert.deepStrictEqual(logged.filter((l) => l.level === "Error" || l.level === "Fatal").map((l) => l.message), [])
      // The service still answers afterwards, now that the lock is gone.
      const after = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/api/v1/exchange/large-trades?hours=1`))
      assert.strictEqual(after.status, 200)
    }).pipe(Effect.provide(postgresLayer(postgresUrl)))), 60_000)
})
