/**
 * The API under a flood of expensive queries degrades, it does not fall over:
 * year-long funding summaries are admitted a few at a time and the rest shed
 * fast (503 OVERLOADED with Retry-After), while a cheap query and /health stay
 * fast (their own lane, their own connection). Bounded: a few seconds of load
 * on loopback, request counts capped.
 */
import { execFile } from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { freePort, postgresUrl, startService, truncateAll } from "./support/service.ts"

interface Sample {
  readonly status: number
  readonly ms: number
  readonly code: string | undefined
  readonly retryAfter: string | null
}

const loadClient = new URL("./support/load-client.ts", import.meta.url).pathname

const seed = Effect.gen(function*() {
  yield* truncateAll
  const sql = yield* SqlClient.SqlClient
  // 300k funding readings over a year on 21 instruments: a year-long summary reads them all.
  yield* sql.unsafe(`INSERT INTO funding_rates (id, exchange, symbol, rate, predicted_rate, timestamp, next_funding_time, metadata)
    SELECT 'load_' || i, 'binance-futures', 'SYM' || (i % 21) || 'USDT', 0.0001 * (i % 7), NULL,
           (now() AT TIME ZONE 'UTC') - (i * interval '105 seconds'), NULL, NULL
    FROM generate_series(1, 300000) AS i`)
  yield* sql.unsafe("ANALYZE funding_rates")
}).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

describe("API under load", () => {
  it.live("sheds year-long summaries fast while a cheap query and /health stay fast", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* seed
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none",
        API_MAX_HEAVY_QUERIES: "2", API_MAX_LIGHT_QUERIES: "4", API_QUEUE_WAIT_MS: "500"
      })
      const base = `http://127.0.0.1:${port}`
      // The load comes from another process, as it would: its own work does not slow the service it measures.
      const results = yield* Effect.promise(() =>
        new Promise<{ heavy: Array<Sample>; cheap: Array<Sample>; health: Array<Sample> }>((resolve, reject) =>
          execFile(process.execPath, [loadClient, base, "6", "40"], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (error, stdout) =>
            error === null ? resolve(JSON.parse(stdout)) : reject(error))
        ))
      const worst = (samples: ReadonlyArray<Sample>) => Math.max(...samples.map((s) => s.ms))
      const admitted = results.heavy.filter((s) => s.status === 200)
      const shed = results.heavy.filter((s) => s.status === 503)
      console.log(`load: ${results.heavy.length} year-long summaries (${admitted.length} answered, ${shed.length} shed), ` +
        `cheap query worst ${worst(results.cheap).toFixed(0)} ms over ${results.cheap.length}, /health worst ${worst(results.health).toFixed(0)} ms over ${results.health.length}`)
      assert.isAbove(admitted.length, 0, "some expensive queries are answered")
      assert.isAbove(shed.length, 0, "the excess is shed")
      assert.strictEqual(admitted.length + shed.length, results.heavy.length, "nothing but answers and sheds")
      for (const s of shed) {
        assert.strictEqual(s.code, "OVERLOADED")
        assert.strictEqual(s.retryAfter, "1")
      }
      assert.isBelow(Math.max(...shed.map((s) => s.ms)), 3_000, "shed fast, after a bounded wait")
      assert.isTrue(results.cheap.every((s) => s.status === 200), "the cheap query is always answered")
      assert.isBelow(worst(results.cheap), 2_000)
      assert.isTrue(results.health.every((s) => s.status === 200), "/health never reports the busy database as down")
      assert.isBelow(worst(results.health), 1_500)
    })), { timeout: 60_000 })
})
