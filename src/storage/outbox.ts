/**
 * The transactional outbox. When a broker is configured (`AMQP_URL`), the
 * messages describing rows are inserted into `outbox` by whoever stores those
 * rows, in the SAME transaction: a row committed always has its message
 * staged, a row rolled back never has one. The publisher reads the table in
 * position order and deletes a message only once the broker confirmed it, so a
 * crash, a SIGTERM or a broker away for days loses nothing below the age bound
 * (OUTBOX_MAX_AGE_HOURS, enforced and counted by the publisher).
 *
 * Staging twice is harmless: the message id is unique and a second insert of
 * it does nothing. Once published and deleted, a row stored again (a replay, a
 * repair of trades already kept) is staged and published again: delivery is at
 * least once, and consumers drop duplicates by message id.
 */
import { PgTypes } from "@effect/sql-pg"
import { Clock, Config, Context, Effect, Layer, Option, Result } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { type OutboundMessage, rowMessages } from "../domain/messages.ts"
import type { TableName } from "../domain/rows.ts"

export const outboxConfig = Config.all({
  enabled: Config.Redacted("AMQP_URL").pipe(Config.option, Config.map(Option.isSome)),
  orderBooks: Config.Boolean("PUBLISH_ORDERBOOKS").pipe(Config.withDefault(false)),
  maxAgeHours: Config.Number("OUTBOX_MAX_AGE_HOURS").pipe(Config.withDefault(168))
})

type Stage<A> = (input: A) => Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient>

export class Outbox extends Context.Service<Outbox, {
  /** Stages the messages for rows of `table` (none for tables that are not published). Run it inside the rows' transaction. */
  readonly stage: (table: TableName, rows: ReadonlyArray<unknown>) => Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient>
  /** Stages messages that are not rows of a table (a gap, an alert). Run it inside their row's transaction. */
  readonly stageMessages: Stage<ReadonlyArray<OutboundMessage>>
}>()("market-data/storage/Outbox") {
  static readonly layer = Layer.effect(Outbox, Effect.gen(function*() {
    const config = yield* outboxConfig
    if (!config.enabled) return Outbox.of({ stage: () => Effect.void, stageMessages: () => Effect.void })
    const stageMessages: Stage<ReadonlyArray<OutboundMessage>> = (messages) => (messages.length === 0 ? Effect.void : insertMessages(messages))
    return Outbox.of({
      stage: (table, rows) => stageMessages(rowMessages(table, rows, config)),
      stageMessages
    })
  }))
}

const text = (values: ReadonlyArray<string>) => Result.getOrThrow(PgTypes.array(values, PgTypes.OID.text))

/** One statement per call whatever its size (every column one text[] through unnest); a message id staged before is left alone. */
const insertMessages = (messages: ReadonlyArray<OutboundMessage>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = new Date(yield* Clock.currentTimeMillis).toISOString()
    yield* sql`INSERT INTO outbox (id, kind, routing_key, body, created_at)
      SELECT u.id, u.kind, u.routing_key, u.body, ${now}::timestamptz
      FROM unnest(${text(messages.map((m) => m.id))}, ${text(messages.map((m) => m.kind))},
        ${text(messages.map((m) => m.routingKey))}, ${text(messages.map((m) => m.body))}) WITH ORDINALITY AS u(id, kind, routing_key, body, n)
      ORDER BY u.n
      ON CONFLICT (id) DO NOTHING`
  })
