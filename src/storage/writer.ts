/**
 * The batched writer: one bounded queue per table, drained by a fiber that turns
 * up to `batchSize` rows (whatever is queued, after lingering up to
 * `flushInterval` for more) into one INSERT. A failed insert is retried with capped backoff, holding its rows; when
 * the database answers but the batch is refused, the batch is bisected so only
 * the offending rows are dropped (and counted). A full queue drops new rows and
 * counts them: the queue's bound is what protects memory.
 */
import { type Cause, Clock, Config, Context, Duration, Effect, Fiber, Layer, Metric, Option, Queue } from "effect"
import { SqlClient } from "effect/sql"
import { type CursorRow, type RowBatch, type RowsByTable, type TableName, tableNames } from "../domain/rows.ts"

type AnyRow = RowsByTable[TableName] | CursorRow
import {
  queueDepth,
  queueDropped,
  rowsOffered,
  rowsWritten,
  writerBatchSeconds,
  writerBatchSize,
  writerDatabaseUp,
  writerFailures
} from "../observability/metrics.ts"
import { insertRows } from "./inserts.ts"
import { LagHistogram } from "../observability/lag.ts"
import { Outbox } from "./outbox.ts"

export interface WriterOptions {
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly queueCapacity: number
  readonly retryInitialMs: number
  readonly retryMaxMs: number
  /** How long shutdown waits for the queues to drain. */
  readonly drainTimeoutMs: number
}

export const WriterOptions = Config.all({
  batchSize: Config.Int("WRITER_BATCH_SIZE").pipe(Config.withDefault(2000)),
  flushIntervalMs: Config.Int("WRITER_FLUSH_MS").pipe(Config.withDefault(50)),
  queueCapacity: Config.Int("WRITER_QUEUE_CAPACITY").pipe(Config.withDefault(200_000)),
  retryInitialMs: Config.succeed(250),
  // A short cap: once the database is back, the backlog starts draining within seconds.
  retryMaxMs: Config.Number("WRITER_RETRY_MAX_SECONDS").pipe(Config.withDefault(5), Config.map((s) => s * 1000)),
  drainTimeoutMs: Config.Int("WRITER_DRAIN_TIMEOUT_MS").pipe(Config.withDefault(15_000))
})

export interface TableState {
  readonly table: TableName
  queued: number
  written: number
  offered: number
  dropped: number
  rejected: number
}

export interface WriterState {
  databaseUp: boolean
  lastError: string | null
  lastFailureAt: number | null
  lastSuccessAt: number | null
  retrying: boolean
  readonly tables: Record<TableName, TableState>
  /** Exchange time to commit, per table, for every row stored since start. */
  readonly lag: Record<TableName, LagHistogram>
}

export class Writer extends Context.Service<Writer, {
  /** Hands a batch of rows to the queues without waiting for the database. */
  readonly offer: (batch: RowBatch) => Effect.Effect<void>
  readonly state: () => WriterState
}>()("market-data/storage/Writer") {
  static readonly make = (options: WriterOptions) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // The rows' broker messages are staged in the rows' own transaction (storage/outbox.ts).
      const outbox = yield* Effect.serviceOption(Outbox)
      const stage = (table: TableName, rows: ReadonlyArray<AnyRow>) => Option.isSome(outbox) ? outbox.value.stage(table, rows) : Effect.void
      const state: WriterState = {
        databaseUp: true,
        lastError: null,
        lastFailureAt: null,
        lastSuccessAt: null,
        retrying: false,
        tables: Object.fromEntries(tableNames.map((table) => [table, {
          table,
          queued: 0,
          written: 0,
          offered: 0,
          dropped: 0,
          rejected: 0
        }])) as Record<TableName, TableState>,
        lag: Object.fromEntries(tableNames.map((table) => [table, new LagHistogram()])) as Record<TableName, LagHistogram>
      }
      const queues = {} as Record<TableName, Queue.Queue<AnyRow, Cause.Done>>
      for (const table of tableNames) queues[table] = yield* Queue.dropping<AnyRow, Cause.Done>(options.queueCapacity)
      const databaseUpGauge = writerDatabaseUp

      const markDown = (error: unknown) =>
        Effect.gen(function*() {
          state.databaseUp = false
          state.retrying = true
          state.lastError = error instanceof Error ? error.message : String(error)
          state.lastFailureAt = yield* Clock.currentTimeMillis
          yield* Metric.update(databaseUpGauge, 0)
        })

      const databaseAnswers = sql`SELECT 1`.pipe(
        Effect.timeout(Duration.seconds(5)),
        Effect.as(true),
        Effect.catchCause(() => Effect.succeed(false))
      )

      /** Inserts rows, retrying outages forever and bisecting batches the database refuses. */
      const write = (table: TableName, rows: ReadonlyArray<AnyRow>): Effect.Effect<void> =>
        Effect.gen(function*() {
          const tableState = state.tables[table]
          let attempt = 0
          while (true) {
            const started = yield* Clock.currentTimeMillis
            const result = yield* Effect.result(
              sql.withTransaction(Effect.tap(insertRows(table, rows as ReadonlyArray<never>), () => stage(table, rows))).pipe(
                Effect.provideService(SqlClient.SqlClient, sql)
              )
            )
            const finished = yield* Clock.currentTimeMillis
            if (result._tag === "Success") {
              const inserted = result.success
              const dataRows = rows.reduce((n, row) => ("kind" in row ? n : n + 1), 0)
              tableState.written += inserted
              state.lag[table].record(rows, finished)
              tableState.offered += dataRows
              state.databaseUp = true
              state.retrying = false
              state.lastSuccessAt = finished
              yield* Metric.update(databaseUpGauge, 1)
              yield* Metric.update(Metric.withAttributes(rowsWritten, { table }), inserted)
              yield* Metric.update(Metric.withAttributes(rowsOffered, { table }), dataRows)
              yield* Metric.update(Metric.withAttributes(writerBatchSize, { table }), dataRows)
              yield* Metric.update(Metric.withAttributes(writerBatchSeconds, { table }), (finished - started) / 1000)
              return
            }
            yield* Metric.update(Metric.withAttributes(writerFailures, { table }), 1)
            if (yield* databaseAnswers) {
              // The database is up, so this batch itself is refused: isolate the bad rows.
              if (rows.length === 1) {
                tableState.rejected++
                yield* Effect.logError("row refused by the database; dropped").pipe(
                  Effect.annotateLogs({ table, id: (rows[0] as { id: string }).id, error: String(result.failure) })
                )
                return
              }
              const middle = rows.length >>> 1
              yield* write(table, rows.slice(0, middle))
              yield* write(table, rows.slice(middle))
              return
            }
            yield* markDown(result.failure)
            const delay = Math.min(options.retryMaxMs, options.retryInitialMs * 2 ** Math.min(attempt++, 20))
            yield* Effect.logWarning("database unreachable; holding the batch and retrying").pipe(
              Effect.annotateLogs({ table, rows: rows.length, retryInMs: delay })
            )
            yield* Effect.sleep(Duration.millis(delay))
          }
        })

      /**
       * One fiber per table: take what is queued (at least one row), linger up to
       * the flush interval for a fuller batch unless it is full already, insert,
       * repeat. Under load, batches fill while the previous insert runs, so the
       * database sees few large statements; when quiet, a row waits at most the
       * flush interval. Ends once the queue has ended and is empty.
       */
      const drain = (table: TableName) => {
        const queue = queues[table]
        const linger = Duration.millis(options.flushIntervalMs)
        return Effect.gen(function*() {
          while (true) {
            const taken = yield* Effect.result(Queue.takeBetween(queue, 1, options.batchSize))
            if (taken._tag === "Failure") return
            let rows: Array<AnyRow> = taken.success
            if (rows.length < options.batchSize && options.flushIntervalMs > 0) {
              yield* Effect.sleep(linger)
              const more = yield* Effect.result(Queue.takeBetween(queue, 0, options.batchSize - rows.length))
              if (more._tag === "Success" && more.success.length > 0) rows = rows.concat(more.success)
            }
            state.tables[table].queued = Queue.sizeUnsafe(queue)
            yield* write(table, rows)
          }
        })
      }
      const drainers = yield* Effect.forEach(tableNames, (table) => Effect.forkDetach(drain(table)))

      // Shutdown: stop accepting, let the drainers empty the queues, but never hang forever.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          for (const table of tableNames) yield* Queue.end(queues[table])
          yield* Fiber.joinAll(drainers).pipe(
            Effect.timeout(Duration.millis(options.drainTimeoutMs)),
            Effect.andThen(Effect.logInfo("writer drained its queues")),
            Effect.catchCause(() =>
              Effect.logWarning("writer did not drain before the shutdown deadline").pipe(
                Effect.andThen(Fiber.interruptAll(drainers))
              )
            )
          )
        })
      )

      const offerTable = (table: TableName, rows: ReadonlyArray<AnyRow>) =>
        Effect.gen(function*() {
          if (rows.length === 0) return
          const queue = queues[table]
          const rejected = Queue.offerAllUnsafe(queue, rows)
          const tableState = state.tables[table]
          tableState.queued = Queue.sizeUnsafe(queue)
          yield* Metric.update(Metric.withAttributes(queueDepth, { table }), tableState.queued)
          if (rejected.length > 0) {
            tableState.dropped += rejected.length
            yield* Metric.update(Metric.withAttributes(queueDropped, { table }), rejected.length)
          }
        })

      return Writer.of({
        offer: (batch) =>
          Effect.gen(function*() {
            // Cursors ride behind the trades they cover, in the same queue.
            yield* offerTable("large_trades", batch.cursors.length === 0 ? batch.large_trades : [...batch.large_trades, ...batch.cursors])
            yield* offerTable("funding_rates", batch.funding_rates)
            yield* offerTable("open_interest", batch.open_interest)
            yield* offerTable("exchange_orderbooks", batch.exchange_orderbooks)
            yield* offerTable("volatility_index", batch.volatility_index)
            yield* offerTable("option_chain", batch.option_chain)
            yield* offerTable("futures_settlements", batch.futures_settlements)
            yield* offerTable("futures_basis", batch.futures_basis)
            yield* offerTable("futures_rolls", batch.futures_rolls)
          }),
        state: () => {
          for (const table of tableNames) state.tables[table].queued = Queue.sizeUnsafe(queues[table])
          return state
        }
      })
    })

  static readonly layer = Layer.effect(
    Writer,
    Effect.gen(function*() {
      return yield* Writer.make(yield* WriterOptions)
    })
  )
}
