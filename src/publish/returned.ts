/**
 * The messages the broker returned (no queue bound to their routing key),
 * kept in `outbox_returned` by the publisher: what an operator reads and, once
 * a queue is bound, puts back into the outbox for the running service to
 * publish again (`npm run cli -- returned [--requeue]`).
 */
import { Clock, Effect } from "effect"
import { SqlClient } from "effect/sql"

export interface ReturnedSummary {
  readonly kind: string
  readonly exchange: string
  readonly reply: string
  readonly messages: number
  readonly first: string
  readonly last: string
  readonly example_routing_key: string
}

/** Returned messages kept, per kind, exchange and the broker's reason. */
export const returnedSummary = SqlClient.SqlClient.use((sql) =>
  sql<{ kind: string; exchange: string; reply_code: number | null; reply_text: string | null; n: string; first: Date; last: Date; example: string }>`
    SELECT kind, exchange, reply_code, reply_text, count(*)::text AS n, min(returned_at) AS first, max(returned_at) AS last, min(routing_key) AS example
    FROM outbox_returned GROUP BY kind, exchange, reply_code, reply_text ORDER BY kind, exchange`.pipe(
    Effect.map((rows): Array<ReturnedSummary> => rows.map((r) => ({
      kind: r.kind,
      exchange: r.exchange,
      reply: `${r.reply_code ?? ""} ${r.reply_text ?? ""}`.trim(),
      messages: Number(r.n),
      first: r.first.toISOString(),
      last: r.last.toISOString(),
      example_routing_key: r.example
    })))
  )
)

/**
 * Moves the returned messages (of `kind`, or all) back into the outbox in one transaction, in the order they
 * were kept, staged anew (OUTBOX_MAX_AGE_HOURS counts from now). One still in the outbox is left there once.
 */
export const requeueReturned = (kind: string | undefined) =>
  SqlClient.SqlClient.use((sql) =>
    Effect.gen(function*() {
      const now = new Date(yield* Clock.currentTimeMillis).toISOString()
      const [row] = yield* sql.withTransaction(sql<{ n: string }>`
        WITH moved AS (
          DELETE FROM outbox_returned WHERE ${kind === undefined ? sql`TRUE` : sql`kind = ${kind}`}
          RETURNING position, id, kind, routing_key, body
        ), staged AS (
          INSERT INTO outbox (id, kind, routing_key, body, created_at)
          SELECT id, kind, routing_key, body, ${now}::timestamptz FROM moved ORDER BY position
          ON CONFLICT (id) DO NOTHING
          RETURNING 1
        )
        SELECT (SELECT count(*) FROM moved)::text AS n`)
      return Number(row?.n ?? 0)
    })
  )
