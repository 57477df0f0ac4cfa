/**
 * The dead letters the writer kept (`rejected_rows`): what an operator reads
 * and, once the cause is fixed (a column widened, a constraint relaxed, a bug
 * in a normalizer mended), replays. A replayed row goes through the same
 * insert as live rows (ids are deterministic, so replaying twice stores it
 * once); one the database still refuses stays, with its new reason.
 *
 * A replayed row is what a live row is: when the outbox is configured
 * (`AMQP_URL`), its broker message is staged in the same transaction as its
 * insert (and as the mark that it was replayed), exactly as the writer does.
 * And the `rejected` gaps the ledger opened over the refused rows are settled
 * afterwards, in SQL: `verified` once every refused row in the gap's span is
 * stored, `partial` (with how many still wait) when only some are; each new
 * gap state is staged for the broker in the same transaction as its update.
 */
import { Clock, Effect, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { gapMessage } from "../domain/messages.ts"
import { TableName } from "../domain/rows.ts"
import { insertRows } from "./inserts.ts"
import { Outbox } from "./outbox.ts"
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

/** A `rejected` gap whose state the replay changed. */
export interface SettledGap {
  readonly id: string
  readonly status: "verified" | "partial"
  /** Refused rows in the gap's span now stored, and those still waiting in rejected_rows. */
  readonly stored: number
  readonly waiting: number
}

/**
 * Settles the ledger's `rejected` gaps (open or partial) against rejected_rows: the refused rows of a gap are
 * those of its table and stream (exchange, symbol, and channel: liquidations apart from trades, as the writer
 * reports losses) whose exchange time lies in the gap's span. Every one stored (and at least as many as the
 * gap counted): `verified`; some: `partial`, with how many still wait; none: left as it is. Only gaps whose
 * state changes are written, so replaying again publishes nothing twice.
 */
export const settleRejectedGaps = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const outbox = yield* Effect.serviceOption(Outbox)
  return yield* sql.withTransaction(Effect.gen(function*() {
    const changed = yield* sql<{
      id: string; exchange: string; channel: string; symbol: string; start_ms: string; end_ms: string | null; cause: string
      estimated_missing: string | null; repair_status: "verified" | "partial"; repaired_count: string; waiting: string; metadata: Record<string, unknown>
    }>`
      WITH gaps AS (
        SELECT id, metadata ->> 'table' AS table_name, channel, exchange, symbol, estimated_missing, repair_status, repaired_count,
          extract(epoch FROM gap_start) * 1000 AS start_ms, extract(epoch FROM COALESCE(gap_end, gap_start)) * 1000 AS end_ms
        FROM data_gaps WHERE cause = 'rejected' AND repair_status IN ('open', 'partial')
      ),
      dead AS (
        SELECT table_name, replayed_at, message,
          CASE table_name
            WHEN 'large_trades' THEN CASE WHEN row ->> 'isLiquidation' = 'true' THEN 'liquidations' ELSE 'trades' END
            WHEN 'funding_rates' THEN 'funding'
            WHEN 'exchange_orderbooks' THEN 'book'
            ELSE table_name END AS channel,
          row ->> 'exchange' AS exchange,
          COALESCE(row ->> 'indexName', row ->> 'instrument', row ->> 'symbol', row ->> 'root') AS symbol,
          CASE WHEN jsonb_typeof(row -> 'timestamp') = 'number' THEN (row ->> 'timestamp')::numeric END AS at_ms
        FROM rejected_rows
      ),
      tally AS (
        SELECT g.id, g.estimated_missing, g.repair_status AS was, g.repaired_count AS had,
          count(d.table_name) FILTER (WHERE d.replayed_at IS NOT NULL) AS stored,
          count(d.table_name) FILTER (WHERE d.replayed_at IS NULL) AS waiting,
          min(d.message) FILTER (WHERE d.replayed_at IS NULL) AS example
        FROM gaps g LEFT JOIN dead d ON d.table_name = g.table_name AND d.channel = g.channel AND d.exchange = g.exchange
          AND d.symbol = g.symbol AND d.at_ms BETWEEN g.start_ms AND g.end_ms
        GROUP BY g.id, g.estimated_missing, g.repair_status, g.repaired_count
      ),
      settled AS (
        SELECT id, stored, waiting, example,
          CASE WHEN waiting = 0 AND stored >= COALESCE(estimated_missing, 1) THEN 'verified' ELSE 'partial' END AS status
        FROM tally WHERE stored > 0
          AND (was, had) IS DISTINCT FROM (CASE WHEN waiting = 0 AND stored >= COALESCE(estimated_missing, 1) THEN 'verified' ELSE 'partial' END, stored)
      )
      UPDATE data_gaps g SET repair_status = s.status, repaired_count = s.stored, updated_at = NOW(),
        metadata = COALESCE(g.metadata, '{}'::jsonb) || CASE WHEN s.status = 'verified'
          THEN jsonb_build_object('reason', 'the database refused these rows as data; replayed from rejected_rows, every one is stored',
            'replayed', s.stored, 'still_refused', 0)
          ELSE jsonb_build_object('reason', s.stored || ' rows replayed from rejected_rows and stored; ' ||
            CASE WHEN s.waiting > 0 THEN s.waiting || ' still refused, waiting in rejected_rows (' || s.example || ')'
              ELSE 'the others this gap counted are not in rejected_rows' END,
            'replayed', s.stored, 'still_refused', s.waiting) END
      FROM settled s WHERE g.id = s.id
      RETURNING g.id, g.exchange, g.channel, g.symbol, (extract(epoch FROM g.gap_start) * 1000)::bigint::text AS start_ms,
        (extract(epoch FROM g.gap_end) * 1000)::bigint::text AS end_ms, g.cause, g.estimated_missing::text AS estimated_missing,
        g.repair_status, g.repaired_count::text AS repaired_count, s.waiting::text AS waiting, g.metadata`
    if (Option.isSome(outbox)) {
      yield* outbox.value.stageMessages(changed.map((g) => gapMessage({
        id: g.id,
        exchange: g.exchange,
        channel: g.channel,
        symbol: g.symbol,
        start: Number(g.start_ms),
        end: g.end_ms === null ? null : Number(g.end_ms),
        cause: g.cause,
        estimatedMissing: g.estimated_missing === null ? null : Number(g.estimated_missing),
        status: g.repair_status,
        repairedCount: Number(g.repaired_count),
        metadata: g.metadata
      })))
    }
    return changed.map((g): SettledGap => ({ id: g.id, status: g.repair_status, stored: Number(g.repaired_count), waiting: Number(g.waiting) }))
  }))
})

/**
 * Tries every waiting row again, each in its own transaction with its broker message (when the outbox is
 * configured) and its mark as replayed; then settles the `rejected` gaps. Returns how many were stored, how
 * many are still refused (with why) and the gaps whose state changed.
 */
export const replayRejected = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const outbox = yield* Effect.serviceOption(Outbox)
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
    const now = new Date(yield* Clock.currentTimeMillis).toISOString()
    const store = Effect.gen(function*() {
      yield* insertRows(table as TableName, [row as never])
      if (Option.isSome(outbox)) yield* outbox.value.stage(table as TableName, [row])
      yield* sql`UPDATE rejected_rows SET replayed_at = (${now}::timestamptz AT TIME ZONE 'UTC') WHERE id = ${dead.id}`
    })
    const result = yield* sql.withTransaction(store).pipe(
      Effect.catchDefect((defect) => Effect.fail(new Error(`the row could not be written: ${String(defect)}`))),
      Effect.result
    )
    if (result._tag === "Failure") {
      const sqlstate = sqlStateOf(result.failure)
      refused.push({ id: String(dead.id), table, reason: sqlstate === null ? String(result.failure) : `SQLSTATE ${sqlstate}` })
      continue
    }
    stored++
  }
  const gaps = yield* settleRejectedGaps
  return { stored, refused, gaps }
})
