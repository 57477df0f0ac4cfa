/**
 * The batched writer, the sink of record: one bounded queue per table, drained
 * by a fiber that turns up to `batchSize` rows (whatever is queued, after
 * lingering up to `flushInterval` for more) into one INSERT.
 *
 * What the database says decides what happens to a batch, by SQLSTATE:
 * - class 22 (data exception) and 23 (integrity): the rows themselves are at
 *   fault. The batch is bisected until the refused rows stand alone; each goes
 *   to `rejected_rows` (table, id, SQLSTATE, message, the row as JSON) with a
 *   metric, and its neighbours are stored.
 * - the database's state (08 connection, 25006 read-only, 40 serialization,
 *   53 out of resources, 55P03 lock timeout, 57 operator intervention and
 *   statement timeout, 58, XX, or no SQLSTATE at all): the database may take
 *   the batch later. It is held and retried with capped, jittered backoff,
 *   forever, and the table shows as `degraded` (with the SQLSTATE) in /health
 *   meanwhile.
 * - anything else (another SQLSTATE, or a fault while the statement ran): it
 *   is held the same way for `WRITER_SUSPECT_ATTEMPTS` attempts; if it still
 *   fails, it is taken as the rows' fault and isolated like a data error, so
 *   one row no class foresaw cannot hold its table (and fill its queue) forever.
 * A row that cannot be encoded (a non-finite number, an invalid time, a value
 * that throws while its statement is built) never reaches the database: it is
 * refused at this boundary with a typed error and dead-lettered the same way.
 * No defect ends a drainer.
 *
 * A full queue drops new rows and counts them: the queue's bound is what
 * protects memory. Every row not stored (dropped, rejected, left at shutdown)
 * is also reported on `losses`, per table and stream, so the gap ledger can
 * record the hole it leaves.
 */
import { Cause, Clock, Config, Context, Duration, Effect, Fiber, Layer, Metric, Option, PubSub, Queue, Schedule, Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { type CursorRow, type RowBatch, type RowsByTable, type TableName, tableNames } from "../domain/rows.ts"
import { LagHistogram } from "../observability/lag.ts"
import {
  queueDepth,
  queueDropped,
  rowsOffered,
  rowsWritten,
  writerBatchSeconds,
  writerBatchSize,
  writerDatabaseUp,
  writerFailures,
  writerRowsRejected,
  writerRowsUnstored,
  writerTableDegraded
} from "../observability/metrics.ts"
import { insertRows, StatementBuildError } from "./inserts.ts"
import { Outbox } from "./outbox.ts"

type AnyRow = RowsByTable[TableName] | CursorRow

export interface WriterOptions {
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly queueCapacity: number
  readonly retryInitialMs: number
  readonly retryMaxMs: number
  /** How long shutdown waits for the queues to drain. */
  readonly drainTimeoutMs: number
  /** Attempts at a batch failing outside the data and passing classes before its rows are isolated. */
  readonly suspectAttempts: number
}

export const WriterOptions = Config.all({
  batchSize: Config.Int("WRITER_BATCH_SIZE").pipe(Config.withDefault(2000)),
  flushIntervalMs: Config.Int("WRITER_FLUSH_MS").pipe(Config.withDefault(50)),
  queueCapacity: Config.Int("WRITER_QUEUE_CAPACITY").pipe(Config.withDefault(200_000)),
  retryInitialMs: Config.succeed(250),
  // A short cap: once the database is back, the backlog starts draining within seconds.
  retryMaxMs: Config.Number("WRITER_RETRY_MAX_SECONDS").pipe(Config.withDefault(5), Config.map((s) => s * 1000)),
  drainTimeoutMs: Config.Int("WRITER_DRAIN_TIMEOUT_MS").pipe(Config.withDefault(15_000)),
  suspectAttempts: Config.Int("WRITER_SUSPECT_ATTEMPTS").pipe(Config.withDefault(5))
})

/** A row refused before it reached the database: it cannot be written as it is. */
export class RowEncodeError extends Schema.TaggedError<RowEncodeError>()("RowEncodeError", {
  table: Schema.String,
  id: Schema.NullOr(Schema.String),
  detail: Schema.String
}) {}

/** A fault while a statement ran (a driver defect): neither the rows' nor the database's known state. */
export class WriteDefect extends Schema.TaggedError<WriteDefect>()("WriteDefect", {
  detail: Schema.String
}) {}

/** The SQLSTATE of a failed statement, where the database gave one (the driver keeps the server's fields on the cause). */
export const sqlStateOf = (error: unknown): string | null => {
  let current = error as { readonly code?: unknown; readonly reason?: unknown; readonly cause?: unknown } | null | undefined
  for (let depth = 0; depth < 6 && current != null && typeof current === "object"; depth++) {
    if (typeof current.code === "string" && /^[0-9A-Z]{5}$/.test(current.code)) return current.code
    current = (current.reason ?? current.cause) as typeof current
  }
  return null
}

/**
 * Only data errors isolate rows: the database refuses these rows and would
 * refuse them again. Everything else is the database's state, and passes.
 */
export const isDataError = (sqlState: string | null): boolean =>
  sqlState !== null && (sqlState.startsWith("22") || sqlState.startsWith("23"))

const passingClasses = ["08", "40", "53", "57", "58", "XX"]
/** The database's state, which passes: held and retried for as long as it lasts. No SQLSTATE means no answer at all. */
export const isPassingError = (sqlState: string | null): boolean =>
  sqlState === null || sqlState === "25006" || sqlState === "55P03" || passingClasses.some((c) => sqlState.startsWith(c))

/** How the writer treats a failed attempt at a batch. */
export const verdictOf = (error: unknown): "data" | "passing" | "suspect" =>
  error instanceof RowEncodeError || error instanceof StatementBuildError || isDataError(sqlStateOf(error))
    ? "data"
    : error instanceof WriteDefect || !isPassingError(sqlStateOf(error))
    ? "suspect"
    : "passing"

const timeFields = new Set(["timestamp", "time", "expiry", "tradeDate", "nextFundingTime", "openedAt", "closedAt", "lastSeenAt", "peakAt"])
/** PostgreSQL's TIMESTAMP and JavaScript's Date both hold this much; beyond it `toISOString` throws. */
const maxTimeMs = 8.64e15

const badLevel = (levels: unknown): boolean =>
  Array.isArray(levels) && levels.some((level) => !Number.isFinite(level[0]) || !Number.isFinite(level[1]))

/** Why a row cannot be encoded, or undefined when it can. */
export const unencodable = (row: object): string | undefined => {
  const fields = row as Record<string, unknown>
  for (const key in fields) {
    const value = fields[key]
    if (typeof value === "number") {
      if (!Number.isFinite(value)) return `${key} is ${value}`
      if (timeFields.has(key) && Math.abs(value) > maxTimeMs) return `${key} ${value} is not a time`
    } else if ((key === "bids" || key === "asks") && badLevel(value)) {
      return `${key} holds a non-finite price or size`
    }
  }
  return undefined
}

/** Rows not stored, per table, cause and stream, with the span of exchange time they cover. */
export interface RowLoss {
  readonly table: TableName
  /** `overload`: a full queue dropped them; `rejected`: refused as data (dead-lettered); `shutdown`: still queued at the drain deadline. */
  readonly cause: "overload" | "rejected" | "shutdown"
  readonly exchange: string
  readonly symbol: string
  /** Earliest and latest exchange time (epoch ms) of the lost rows. */
  readonly from: number
  readonly to: number
  readonly count: number
  /** For large trades: whether the lost rows were liquidations. */
  readonly liquidation: boolean
}

export interface TableDegradation {
  readonly sqlstate: string | null
  readonly message: string
  readonly since: string
}

export interface TableState {
  readonly table: TableName
  queued: number
  /** New rows inserted (conflicts excluded). */
  written: number
  /** Data rows the database acknowledged (inserted or already present). */
  offered: number
  /** Dropped by a full queue. */
  dropped: number
  /** Refused as data and kept in rejected_rows. */
  rejected: number
  /** Still queued or in flight when shutdown's drain deadline passed. */
  unstored: number
  /** Set while the table holds a batch the database refused for a passing reason. */
  degraded: TableDegradation | null
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

const rowId = (row: AnyRow): string | null =>
  "kind" in row ? `cursor_${row.exchange}_${row.channel}_${row.symbol}` : row.id

const rowTime = (row: AnyRow): number => ("kind" in row ? row.time : "lastSeenAt" in row ? row.lastSeenAt : row.timestamp)

/** Cross-venue analytics rows (spreads, arbitrage) belong to no one venue: their stream is the asset's. */
const crossVenue = "cross-venue"

const rowStream = (row: AnyRow): { readonly exchange: string; readonly symbol: string; readonly liquidation: boolean } =>
  "asset" in row
    ? { exchange: crossVenue, symbol: row.asset, liquidation: false }
    : "indexName" in row
    ? { exchange: row.exchange, symbol: row.indexName, liquidation: false }
    : "instrument" in row
    ? { exchange: row.exchange, symbol: row.instrument, liquidation: false }
    : "root" in row && !("symbol" in row)
    ? { exchange: row.exchange, symbol: row.root, liquidation: false }
    : { exchange: row.exchange, symbol: (row as { symbol: string }).symbol, liquidation: "isLiquidation" in row && row.isLiquidation }

/** A row as JSON for the dead-letter table; PostgreSQL's jsonb refuses \u0000, so it is taken out. */
const rowJson = (row: AnyRow): string => {
  try {
    return JSON.stringify(row, (_key, value) => (typeof value === "number" && !Number.isFinite(value) ? String(value) : value)).replaceAll("\\u0000", "")
  } catch (error) {
    return JSON.stringify({ unserializable: String(error) })
  }
}

const describe = (error: unknown): string => {
  if (error instanceof RowEncodeError || error instanceof StatementBuildError || error instanceof WriteDefect) return error.detail
  const sqlState = sqlStateOf(error)
  let current = error as { readonly message?: unknown; readonly reason?: unknown; readonly cause?: unknown } | null | undefined
  let deepest: string | undefined
  for (let depth = 0; depth < 6 && current != null && typeof current === "object"; depth++) {
    if (typeof current.message === "string" && current.message.length > 0) deepest = current.message
    current = (current.reason ?? current.cause) as typeof current
  }
  const text = deepest ?? String(error)
  return sqlState === null ? text : `${text} (SQLSTATE ${sqlState})`
}

export class Writer extends Context.Service<Writer, {
  /** Hands a batch of rows to the queues without waiting for the database. */
  readonly offer: (batch: RowBatch) => Effect.Effect<void>
  readonly state: () => WriterState
  /**
   * The time up to which every row offered is accounted for: stored, dead-lettered or reported lost, never
   * only queued in memory (`now` while the queues are empty). What a crash cannot take away: the coverage
   * recorder claims no live time beyond it.
   */
  readonly durableUntil: (now: number) => number
  /**
   * Every row not stored, coalesced per table, cause and stream about once a second; a subscriber sees losses
   * from when it starts. It ends once the writer has shut down, after the losses of its drain deadline.
   */
  readonly losses: Stream.Stream<RowLoss>
}>()("market-data/storage/Writer") {
  static readonly make = (options: WriterOptions) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Effect.serviceOption(Outbox)
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
          rejected: 0,
          unstored: 0,
          degraded: null
        }])) as Record<TableName, TableState>,
        lag: Object.fromEntries(tableNames.map((table) => [table, new LagHistogram()])) as Record<TableName, LagHistogram>
      }
      const queues = {} as Record<TableName, Queue.Queue<AnyRow, Cause.Done>>
      for (const table of tableNames) queues[table] = yield* Queue.dropping<AnyRow, Cause.Done>(options.queueCapacity)

      // Losses are summed per stream and published once a second, so a sustained overload is a handful of
      // reports, not one per dropped row; the pending map is bounded by the number of streams.
      // `null` ends the stream: the writer has shut down and published its last losses (those left at the drain deadline).
      const lossHub = yield* PubSub.unbounded<RowLoss | null>()
      const pendingLosses = new Map<string, RowLoss>()
      const noteLoss = (table: TableName, cause: RowLoss["cause"], rows: ReadonlyArray<AnyRow>) => {
        for (const row of rows) {
          if ("kind" in row) continue
          const stream = rowStream(row)
          const time = rowTime(row)
          const key = `${table}\u0000${cause}\u0000${stream.exchange}\u0000${stream.symbol}\u0000${stream.liquidation}`
          const known = pendingLosses.get(key)
          pendingLosses.set(key, known === undefined
            ? { table, cause, ...stream, from: time, to: time, count: 1 }
            : { ...known, from: Math.min(known.from, time), to: Math.max(known.to, time), count: known.count + 1 })
        }
      }
      const publishLosses = Effect.suspend(() => {
        if (pendingLosses.size === 0) return Effect.void
        const losses = [...pendingLosses.values()]
        pendingLosses.clear()
        return PubSub.publishAll(lossHub, losses)
      })
      yield* Effect.forkScoped(Effect.repeat(publishLosses, Schedule.spaced("1 second")))

      const backoff = Schedule.min([Schedule.exponential(Duration.millis(options.retryInitialMs)), Schedule.spaced(Duration.millis(options.retryMaxMs))]).pipe(
        Schedule.jittered
      )

      const markHeld = (table: TableName, rows: number, error: unknown) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const sqlstate = sqlStateOf(error)
          const message = describe(error)
          const tableState = state.tables[table]
          const first = tableState.degraded === null || tableState.degraded.sqlstate !== sqlstate
          tableState.degraded = { sqlstate, message, since: tableState.degraded?.since ?? new Date(now).toISOString() }
          state.retrying = true
          state.lastError = message
          state.lastFailureAt = now
          // No SQLSTATE means the statement never got an answer: the database is unreachable, not only refusing.
          if (sqlstate === null || sqlstate.startsWith("08")) {
            state.databaseUp = false
            yield* Metric.update(writerDatabaseUp, 0)
          }
          yield* Metric.update(Metric.withAttributes(writerFailures, { table }), 1)
          yield* Metric.update(Metric.withAttributes(writerTableDegraded, { table }), 1)
          if (first) {
            yield* Effect.logWarning("the database cannot take a batch now; holding it and retrying").pipe(
              Effect.annotateLogs({ table, rows, sqlstate: sqlstate ?? "none", error: message })
            )
          }
        })

      const markStored = (table: TableName, rows: ReadonlyArray<AnyRow>, inserted: number, started: number) =>
        Effect.gen(function*() {
          const finished = yield* Clock.currentTimeMillis
          const tableState = state.tables[table]
          const dataRows = rows.reduce((n, row) => ("kind" in row ? n : n + 1), 0)
          tableState.written += inserted
          tableState.offered += dataRows
          state.lag[table].record(rows, finished)
          if (tableState.degraded !== null) {
            yield* Effect.logInfo("the database takes the table's batches again").pipe(
              Effect.annotateLogs({ table, sqlstate: tableState.degraded.sqlstate ?? "none", since: tableState.degraded.since })
            )
            tableState.degraded = null
            yield* Metric.update(Metric.withAttributes(writerTableDegraded, { table }), 0)
          }
          state.databaseUp = true
          state.retrying = tableNames.some((t) => state.tables[t].degraded !== null)
          state.lastSuccessAt = finished
          yield* Metric.update(writerDatabaseUp, 1)
          yield* Metric.update(Metric.withAttributes(rowsWritten, { table }), inserted)
          yield* Metric.update(Metric.withAttributes(rowsOffered, { table }), dataRows)
          yield* Metric.update(Metric.withAttributes(writerBatchSize, { table }), dataRows)
          yield* Metric.update(Metric.withAttributes(writerBatchSeconds, { table }), (finished - started) / 1000)
        })

      /**
       * One attempt: encode-check, insert and stage the batch's messages in one
       * transaction. A value that throws while the statement is built fails
       * typed (StatementBuildError); a fault while it runs is a WriteDefect.
       */
      const attempt = (table: TableName, rows: ReadonlyArray<AnyRow>) =>
        Effect.suspend(() => {
          for (const row of rows) {
            const why = unencodable(row)
            if (why !== undefined) return Effect.fail(new RowEncodeError({ table, id: rowId(row), detail: why }))
          }
          const insert = insertRows(table, rows as ReadonlyArray<never>)
          return Option.isNone(outbox)
            ? insert
            : sql.withTransaction(Effect.tap(insert, () => outbox.value.stage(table, rows)))
        }).pipe(
          Effect.catchDefect((defect) => Effect.fail(new WriteDefect({ detail: `the statement failed unexpectedly: ${String(defect)}` }))),
          Effect.provideService(SqlClient.SqlClient, sql)
        )

      const deadLetter = (table: TableName, row: AnyRow, error: unknown) =>
        Effect.gen(function*() {
          const sqlstate = sqlStateOf(error)
          const message = describe(error)
          const now = yield* Clock.currentTimeMillis
          yield* sql`INSERT INTO rejected_rows (table_name, row_id, sqlstate, message, row, rejected_at)
            VALUES (${table}, ${rowId(row)}, ${sqlstate}, ${message}, ${rowJson(row)}::jsonb, (${new Date(now).toISOString()}::timestamptz AT TIME ZONE 'UTC'))`.pipe(
            // The dead-letter table itself may be unreachable for a while: hold the row until it is not.
            Effect.tapError((failure) => markHeld(table, 1, failure)),
            Effect.retry(backoff),
            // The schedule never ends, so this cannot fail.
            Effect.orDie
          )
          state.tables[table].rejected++
          noteLoss(table, "rejected", [row])
          yield* Metric.update(Metric.withAttributes(writerRowsRejected, { table, sqlstate: sqlstate ?? (error instanceof WriteDefect ? "defect" : "unencodable") }), 1)
          yield* Effect.logError("row refused by the database; kept in rejected_rows").pipe(
            Effect.annotateLogs({ table, id: rowId(row) ?? "", sqlstate: sqlstate ?? "none", error: message })
          )
        })

      /**
       * Stores rows: holds them through passing refusals, isolates and
       * dead-letters the rows refused as data. A suspect failure (see the top)
       * is retried from one budget shared by the whole batch and its halves, so
       * isolating a batch that fails throughout costs one attempt per part.
       */
      const write = (table: TableName, rows: ReadonlyArray<AnyRow>, budget = { suspectAttempts: options.suspectAttempts }): Effect.Effect<void> =>
        Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          const result = yield* attempt(table, rows).pipe(
            Effect.tapError((error) => verdictOf(error) === "data" ? Effect.void : markHeld(table, rows.length, error)),
            Effect.retry({
              schedule: backoff,
              while: (error) => {
                const verdict = verdictOf(error)
                return verdict === "passing" || (verdict === "suspect" && --budget.suspectAttempts > 0)
              }
            }),
            Effect.result
          )
          if (result._tag === "Success") return yield* markStored(table, rows, result.success, started)
          if (rows.length === 1) return yield* deadLetter(table, rows[0]!, result.failure)
          const middle = rows.length >>> 1
          yield* write(table, rows.slice(0, middle), budget)
          yield* write(table, rows.slice(middle), budget)
        })

      /**
       * One fiber per table: take what is queued (at least one row), linger up to
       * the flush interval for a fuller batch unless it is full already, insert,
       * repeat. Under load, batches fill while the previous insert runs, so the
       * database sees few large statements; when quiet, a row waits at most the
       * flush interval. Ends once the queue has ended and is empty.
       */
      // The durable watermark: rows offered and handled (stored, dead-lettered) per table, in queue order, with
      // checkpoints "at this time, this many had been offered" taken at most every 100 ms; bounded by that.
      const startedAt = yield* Clock.currentTimeMillis
      const accepted = Object.fromEntries(tableNames.map((table) => [table, 0])) as Record<TableName, number>
      const handled = Object.fromEntries(tableNames.map((table) => [table, 0])) as Record<TableName, number>
      const checkpoints = Object.fromEntries(tableNames.map((table) => [table, [{ at: startedAt, offeredBefore: 0 }]])) as Record<
        TableName,
        Array<{ readonly at: number; readonly offeredBefore: number }>
      >
      /** Drops the marks passed but the last, which is the table's watermark. */
      const prune = (table: TableName) => {
        const marks = checkpoints[table]
        while (marks.length > 1 && marks[1]!.offeredBefore <= handled[table]) marks.shift()
        return marks
      }
      const checkpoint = (table: TableName, now: number) => {
        const marks = prune(table)
        if (now - marks[marks.length - 1]!.at >= 100) marks.push({ at: now, offeredBefore: accepted[table] })
      }
      const durableUntil = (now: number) => {
        let until = now
        for (const table of tableNames) {
          if (handled[table] < accepted[table]) until = Math.min(until, prune(table)[0]!.at)
        }
        return until
      }

      const inFlight = Object.fromEntries(tableNames.map((table) => [table, 0])) as Record<TableName, number>
      const inFlightRows = {} as Record<TableName, ReadonlyArray<AnyRow>>
      const drainOnce = (table: TableName) =>
        Effect.gen(function*() {
          const queue = queues[table]
          let rows: Array<AnyRow> = yield* Queue.takeBetween(queue, 1, options.batchSize)
          if (rows.length < options.batchSize && options.flushIntervalMs > 0) {
            yield* Effect.sleep(Duration.millis(options.flushIntervalMs))
            const more = yield* Effect.result(Queue.takeBetween(queue, 0, options.batchSize - rows.length))
            if (more._tag === "Success" && more.success.length > 0) rows = rows.concat(more.success)
          }
          state.tables[table].queued = Queue.sizeUnsafe(queue)
          inFlight[table] = rows.length
          inFlightRows[table] = rows
          yield* write(table, rows).pipe(
            // Nothing below should fail or die; if something does, the rows are dead-lettered, never the drainer ended.
            Effect.catchCause((cause) =>
              Cause.hasInterruptsOnly(cause)
                ? Effect.failCause(cause)
                : Effect.logError("writer failed a batch unexpectedly; dead-lettering its rows", cause).pipe(
                  Effect.andThen(Effect.forEach(rows, (row) => deadLetter(table, row, Cause.squash(cause)), { discard: true }))
                )
            )
          )
          inFlight[table] = 0
          inFlightRows[table] = []
          handled[table] += rows.length
        })
      const drain = (table: TableName) =>
        drainOnce(table).pipe(
          Effect.forever,
          // The queue ended (shutdown) and is empty: the drainer's work is done.
          Effect.catchIf((error): error is Cause.Done => Cause.isDone(error), () => Effect.void)
        )
      const drainers = yield* Effect.forEach(tableNames, (table) => Effect.forkScoped(drain(table)))

      // Shutdown: stop accepting, let the drainers empty the queues, but never hang forever; say what is left.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          for (const table of tableNames) yield* Queue.end(queues[table])
          yield* Fiber.joinAll(drainers).pipe(
            Effect.timeout(Duration.millis(options.drainTimeoutMs)),
            Effect.andThen(Effect.logInfo("writer drained its queues")),
            Effect.catchCause(() =>
              Effect.gen(function*() {
                yield* Fiber.interruptAll(drainers)
                const left: Record<string, number> = {}
                for (const table of tableNames) {
                  const rows = [...inFlightRows[table] ?? [], ...yield* Queue.clear(queues[table])]
                  const count = rows.reduce((n, row) => ("kind" in row ? n : n + 1), 0)
                  if (count === 0) continue
                  left[table] = count
                  state.tables[table].unstored += count
                  noteLoss(table, "shutdown", rows)
                  yield* Metric.update(Metric.withAttributes(writerRowsUnstored, { table }), count)
                }
                yield* Effect.logError("writer did not drain before the shutdown deadline; these rows were not stored").pipe(
                  Effect.annotateLogs({ unstored: JSON.stringify(left), deadlineMs: options.drainTimeoutMs })
                )
              })
            )
          )
          yield* publishLosses
          yield* PubSub.publish(lossHub, null)
        })
      )

      const offerTable = (table: TableName, rows: ReadonlyArray<AnyRow>) =>
        Effect.gen(function*() {
          if (rows.length === 0) return
          const queue = queues[table]
          checkpoint(table, yield* Clock.currentTimeMillis)
          const rejected = Queue.offerAllUnsafe(queue, rows)
          accepted[table] += rows.length - rejected.length
          const tableState = state.tables[table]
          tableState.queued = Queue.sizeUnsafe(queue)
          yield* Metric.update(Metric.withAttributes(queueDepth, { table }), tableState.queued)
          if (rejected.length > 0) {
            const dataRows = rejected.reduce((n, row) => ("kind" in row ? n : n + 1), 0)
            tableState.dropped += dataRows
            noteLoss(table, "overload", rejected)
            yield* Metric.update(Metric.withAttributes(queueDropped, { table }), dataRows)
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
            yield* offerTable("trade_bars", batch.trade_bars)
            yield* offerTable("volatility_index", batch.volatility_index)
            yield* offerTable("option_chain", batch.option_chain)
            yield* offerTable("futures_settlements", batch.futures_settlements)
            yield* offerTable("futures_basis", batch.futures_basis)
            yield* offerTable("futures_rolls", batch.futures_rolls)
            // Every sample reaches the stream and the arbitrage; only those the sampler marks stored reach the table.
            yield* offerTable("exchange_spreads", batch.exchange_spreads.filter((r) => r.stored !== false))
            yield* offerTable("arbitrage_opportunities", batch.arbitrage_opportunities)
          }),
        durableUntil,
        state: () => {
          for (const table of tableNames) state.tables[table].queued = Queue.sizeUnsafe(queues[table]) + inFlight[table]
          return state
        },
        losses: Stream.fromPubSub(lossHub).pipe(
          Stream.takeWhile((loss) => loss !== null),
          Stream.filter((loss): loss is RowLoss => loss !== null)
        )
      })
    })

  static readonly layer = Layer.effect(
    Writer,
    Effect.gen(function*() {
      return yield* Writer.make(yield* WriterOptions)
    })
  )
}
