/**
 * The dead letters the writer kept (`rejected_rows`): what an operator reads
 * and, once the cause is fixed (a column widened, a constraint relaxed, a bug
 * in a normalizer mended), replays. A replayed row goes through the same
 * insert as live rows (ids are deterministic, so replaying twice stores it
 * once); one the database still refuses stays, with its new reason.
 */
import { Clock, Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { TableName } from "../domain/rows.ts"
import { insertRows } from "./inserts.ts"
import { sqlStateOf, unencodable } from "./writer.ts"

export interface RejectedSummary {
  readonly table: string
  readonly sqlstate: string | null
  readonly rows: number
  readonly first: string
  readonly last: string
  readonly example: string
}

/** Rows waiting for a replay, per table and SQLSTATE. */
export const rejectedSummary = SqlClient.SqlClient.use((sql) =>
  sql<{ table_name: string; sqlstate: string | null; n: bigint; first: Date; last: Date; example: string }>`
    SELECT table_name, sqlstate, count(*) AS n, min(rejected_at) AS first, max(rejected_at) AS last, min(message) AS example
    FROM rejected_rows WHERE replayed_at IS NULL GROUP BY table_name, sqlstate ORDER BY table_name, sqlstate`.pipe(
    Effect.map((rows): Array<RejectedSummary> => rows.map((r) => ({
      table: r.table_name,
      sqlstate: r.sqlstate,
      rows: Number(r.n),
      first: r.first.toISOString(),
      last: r.last.toISOString(),
      example: r.example
    })))
  )
)

const isTable = Schema.is(TableName)

/** The dead-letter JSON keeps a non-finite number as its name ("NaN"): back to the number, so it is refused again, never stored as text. */
const revive = (row: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(row).map(([key, value]) =>
    [key, value === "NaN" || value === "Infinity" || value === "-Infinity" ? Number(value) : value]))

/** Tries every waiting row again; returns how many were stored and how many are still refused (with why). */
export const replayRejected = SqlClient.SqlClient.use((sql) =>
  Effect.gen(function*() {
    const waiting = yield* sql<{ id: bigint | string; table_name: string; row: Record<string, unknown> }>`
      SELECT id, table_name, row FROM rejected_rows WHERE replayed_at IS NULL ORDER BY id`
    let stored = 0
    const refused: Array<{ readonly id: string; readonly table: string; readonly reason: string }> = []
    for (const dead of waiting) {
      const table = dead.table_name
      const row = revive(dead.row)
      const why = unencodable(row) ?? (isTable(table) ? undefined : `unknown table ${table}`)
      if (why !== undefined) {
        refused.push({ id: String(dead.id), table, reason: why })
        continue
      }
      const result = yield* Effect.result(insertRows(table as TableName, [row as never]))
      if (result._tag === "Failure") {
        refused.push({ id: String(dead.id), table, reason: `SQLSTATE ${sqlStateOf(result.failure) ?? "none"}` })
        continue
      }
      const now = new Date(yield* Clock.currentTimeMillis).toISOString()
      yield* sql`UPDATE rejected_rows SET replayed_at = (${now}::timestamptz AT TIME ZONE 'UTC') WHERE id = ${dead.id}`
      stored++
    }
    return { stored, refused }
  })
)
