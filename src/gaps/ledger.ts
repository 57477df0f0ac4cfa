/**
 * The gap ledger: every hole in what was collected (a disconnect, a sequence
 * break, a silent stream, a restart), with its bounds, cause, estimated size and
 * repair status, persisted in `data_gaps`. Also the per-stream cursors that let
 * a restarted process find where it left off. Callers are synchronous pipeline
 * code: they enqueue, a background fiber writes (retrying through outages).
 */
import { Context, Duration, Effect, Layer, Metric, Option, Queue } from "effect"
import { SqlClient } from "effect/sql"
import { gapMessage } from "../domain/messages.ts"
import { Outbox } from "../storage/outbox.ts"

export type GapChannel = "trades" | "book" | "liquidations" | "funding"
/** `missed`: trades the venue's REST history has and its stream never delivered (venues without trade sequences, found by reconciliation). */
export type GapCause = "disconnect" | "sequence_gap" | "checksum" | "stale" | "rate_limited" | "restart" | "missed"
export type RepairStatus = "open" | "repairing" | "verified" | "partial" | "unrecoverable"

export interface Gap {
  readonly id: string
  readonly exchange: string
  readonly channel: GapChannel
  readonly symbol: string
  readonly start: number
  end: number | null
  readonly cause: GapCause
  estimatedMissing: number | null
  status: RepairStatus
  repairedCount: number
  metadata: Record<string, unknown>
}

export interface Cursor {
  readonly sequence: number
  readonly time: number
}

export const gapsOpened = Metric.counter("gaps_total", { description: "Gaps recorded, per venue, channel and cause", incremental: true })
export const gapTradesRepaired = Metric.counter("gap_trades_repaired_total", {
  description: "Trades recovered over REST to fill gaps",
  incremental: true
})

export const gapId = (exchange: string, channel: string, symbol: string, start: number, cause: string) =>
  `${exchange}_${channel}_${symbol}_${start}_${cause}`

export class GapLedger extends Context.Service<GapLedger, {
  readonly open: (gap: Omit<Gap, "id" | "repairedCount"> & { readonly repairedCount?: number }) => Gap
  readonly update: (gap: Gap) => void
  readonly recent: () => ReadonlyArray<Gap>
  /** Calls `listener` with every gap opened or changed from now on (synchronously: it must only hand the gap on). */
  readonly watch: (listener: (gap: Gap) => void) => void
  readonly loadCursors: (exchange: string, channel: string) => Effect.Effect<ReadonlyMap<string, Cursor>>
}>()("market-data/gaps/GapLedger") {
  static readonly layer = Layer.effect(
    GapLedger,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pending = yield* Queue.unbounded<Gap>()
      const recent: Array<Gap> = []
      const knownIds = new Set<string>()

      const upsert = (gap: Gap) =>
        sql`INSERT INTO data_gaps (id, exchange, channel, symbol, gap_start, gap_end, cause, estimated_missing, repair_status, repaired_count, metadata)
          VALUES (${gap.id}, ${gap.exchange}, ${gap.channel}, ${gap.symbol},
            (${new Date(gap.start).toISOString()}::timestamptz AT TIME ZONE 'UTC'),
            (${gap.end === null ? null : new Date(gap.end).toISOString()}::timestamptz AT TIME ZONE 'UTC'),
            ${gap.cause}, ${gap.estimatedMissing === null ? null : String(gap.estimatedMissing)}::bigint, ${gap.status},
            ${String(gap.repairedCount)}::bigint, ${JSON.stringify(gap.metadata)}::jsonb)
          ON CONFLICT (id) DO UPDATE SET gap_end = EXCLUDED.gap_end, estimated_missing = EXCLUDED.estimated_missing,
            repair_status = EXCLUDED.repair_status, repaired_count = EXCLUDED.repaired_count,
            metadata = EXCLUDED.metadata, updated_at = NOW()`

      // Each state of a gap is published: its message is staged in the upsert's transaction (storage/outbox.ts).
      const outbox = yield* Effect.serviceOption(Outbox)
      const persist = (gap: Gap) =>
        Option.isNone(outbox) ? upsert(gap) : sql.withTransaction(Effect.andThen(upsert(gap), outbox.value.stageMessages([gapMessage(gap)])))

      const writeLoop = Effect.gen(function*() {
        while (true) {
          const gap = yield* Queue.take(pending)
          let attempt = 0
          while (true) {
            const result = yield* Effect.result(persist(gap))
            if (result._tag === "Success") break
            yield* Effect.sleep(Duration.millis(Math.min(5_000, 250 * 2 ** Math.min(attempt++, 10))))
          }
        }
      })
      yield* Effect.forkScoped(writeLoop)
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          for (const gap of yield* Queue.clear(pending)) yield* persist(gap).pipe(Effect.ignore)
        }).pipe(Effect.timeout(Duration.seconds(5)), Effect.ignore)
      )

      const listeners: Array<(gap: Gap) => void> = []
      const enqueue = (gap: Gap) => {
        Queue.offerUnsafe(pending, gap)
        for (const listener of listeners) listener(gap)
      }

      return GapLedger.of({
        open: (input) => {
          const gap: Gap = {
            ...input,
            id: gapId(input.exchange, input.channel, input.symbol, input.start, input.cause),
            repairedCount: input.repairedCount ?? 0
          }
          if (!knownIds.has(gap.id)) {
            knownIds.add(gap.id)
            recent.push(gap)
            if (recent.length > 1000) recent.shift()
            Effect.runFork(Metric.update(Metric.withAttributes(gapsOpened, {
              exchange: gap.exchange,
              channel: gap.channel,
              cause: gap.cause
            }), 1))
          }
          enqueue(gap)
          return gap
        },
        update: enqueue,
        recent: () => recent,
        watch: (listener) => {
          listeners.push(listener)
        },
        loadCursors: (exchange, channel) =>
          sql<{ symbol: string; last_sequence: bigint | string; last_time: Date }>`SELECT symbol, last_sequence, last_time
            FROM feed_cursors WHERE exchange = ${exchange} AND channel = ${channel}`.pipe(
            Effect.map((rows) =>
              new Map(rows.map((r) => [r.symbol, { sequence: Number(r.last_sequence), time: r.last_time.getTime() }]))
            ),
            Effect.catchCause(() => Effect.succeed(new Map<string, Cursor>()))
          )
      })
    })
  )
}
