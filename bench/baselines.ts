/**
 * Baselines measured in the same run as the figures they divide, so a ratio
 * survives a machine that is busier today than yesterday: JSON.parse alone on
 * the frames the end-to-end flood sends, a `SELECT 1` round trip on the API's
 * database, and the RSS of a bare Node process (bench/service-process.ts).
 * `withRatio` puts a ratio column beside the absolute one in a printed table.
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { cellNumber } from "./results.ts"
import { median, quantile, type Table } from "./report.ts"

/** Frames per second of JSON.parse alone over `frames` (median of 5 passes, one warm-up). */
export const parseRate = (frames: ReadonlyArray<string>): number => {
  const pass = () => {
    const started = performance.now()
    for (let i = 0; i < frames.length; i++) JSON.parse(frames[i]!)
    return frames.length / ((performance.now() - started) / 1000)
  }
  pass()
  return median(Array.from({ length: 5 }, pass))
}

/** `SELECT 1` round trips from `connections` loops at once for `seconds`: p50 and p99 in ms. */
export const selectOneLatency = (url: string, connections: number, seconds: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT 1`
    const latencies: Array<number> = []
    const until = performance.now() + seconds * 1000
    const loop = Effect.gen(function*() {
      while (performance.now() < until) {
        const started = performance.now()
        yield* sql`SELECT 1`
        latencies.push(performance.now() - started)
      }
    })
    yield* Effect.all(Array.from({ length: connections }, () => loop), { concurrency: "unbounded" })
    return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), count: latencies.length }
  }).pipe(Effect.provide(postgresLayer(url)), Effect.scoped)

/**
 * `table` with a column `name` right after `column`: each row's value there
 * divided by `divisor`, as "1.23x" ("n/a" where the cell is no number). A
 * table without that column is returned as it was.
 */
export const withRatio = (table: Table, column: string, name: string, divisor: number): Table => {
  const at = table.header.indexOf(column)
  if (at < 0) return table
  const insert = <A>(cells: ReadonlyArray<A>, cell: A) => [...cells.slice(0, at + 1), cell, ...cells.slice(at + 1)]
  return {
    ...table,
    header: insert(table.header, name),
    rows: table.rows.map((row) => {
      const value = cellNumber(row[at] ?? "")
      return insert(row, value === undefined || !(divisor > 0) ? "n/a" : `${(value / divisor).toFixed(value / divisor < 0.1 ? 3 : 2)}x`)
    })
  }
}
