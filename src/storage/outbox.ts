/**
 * What leaves the service later (broker messages) is staged with the rows it
 * describes: the writer calls `stage` inside the transaction that stores them,
 * so a message exists exactly when its row does. Without this service in the
 * context (no broker configured), nothing is staged.
 */
import { Context, type Effect } from "effect"
import type { SqlClient, SqlError } from "effect/sql"
import type { TableName } from "../domain/rows.ts"

export class Outbox extends Context.Service<Outbox, {
  readonly stage: (table: TableName, rows: ReadonlyArray<unknown>) => Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient>
}>()("market-data/storage/Outbox") {}
