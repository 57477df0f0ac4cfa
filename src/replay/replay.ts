/**
 * Runs recorded frames through exactly the pipeline the live feeds use
 * (decode -> normalize -> detect -> writer queues). Recorded REST responses play
 * the part of the venue's REST API: metadata first, and each recorded depth
 * snapshot is served once, when the book machinery asks for it.
 */
import { Clock, Effect } from "effect"
import type { NormalizedRecord } from "../domain/records.ts"
import { describeRefused } from "../domain/validate.ts"
import { RowBatch, type TableName, tableNames } from "../domain/rows.ts"
import { makeFrameHandler, makeProcessor, makeVenueRuntime, type PipelineSettings, type VenueRuntime } from "../pipeline/runtime.ts"
import type { RecordedRest, VenueDefinition } from "../venues/venue.ts"
import type { Recording } from "./recorded.ts"

export interface ReplayStats {
  frames: number
  records: number
  /** Frames that could not be read, and records the shared check refused (`refusedRecords`, counted in here too). */
  decodeErrors: number
  /** Records refused for a non-finite number or an impossible time (domain/validate.ts). */
  refusedRecords: number
  snapshotsServed: number
  rows: Record<TableName, number>
}

const isDepthSnapshot = (rest: RecordedRest) => /\/depth$/.test(new URL(rest.url).pathname)

/**
 * Replays may lack metadata: `venue` with each record's unknown symbol
 * registered from the venue's guess as it is decoded, so trades can still be valued.
 */
export const withGuessedInstruments = (venue: VenueDefinition, runtime: VenueRuntime): VenueDefinition => ({
  ...venue,
  decodeFrame: (frame, out) => {
    const start = out.length
    const error = venue.decodeFrame(frame, out)
    for (let i = start; i < out.length; i++) {
      const record = out[i]!
      if (runtime.instruments.get(record.venue, record.symbol) === undefined) {
        const guess = venue.guessInstrument(record.symbol)
        if (guess !== undefined) runtime.instruments.add(guess)
      }
    }
    return error
  }
})

export const replayRecording = (
  venue: VenueDefinition,
  recording: Recording,
  settings: PipelineSettings,
  emit: (batch: RowBatch) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const stats: ReplayStats = {
      frames: 0,
      records: 0,
      decodeErrors: 0,
      refusedRecords: 0,
      snapshotsServed: 0,
      rows: Object.fromEntries(tableNames.map((table) => [table, 0])) as Record<TableName, number>
    }
    const counting = (batch: RowBatch) => {
      for (const table of tableNames) stats.rows[table] += batch[table].length
      return emit(batch)
    }
    const runtime = makeVenueRuntime(settings, counting)
    const snapshots = new Map<string, Array<ReadonlyArray<NormalizedRecord>>>()
    const otherRest: Array<RecordedRest> = []
    for (const rest of [...recording.rest].sort((a, b) => a.receivedAt - b.receivedAt)) {
      const parsed = venue.fromRest(rest)
      for (const instrument of parsed.instruments ?? []) runtime.instruments.add(instrument)
      if (parsed.records === undefined) continue
      if (isDepthSnapshot(rest)) {
        const symbol = new URL(rest.url).searchParams.get("symbol") ?? ""
        snapshots.set(symbol, [...(snapshots.get(symbol) ?? []), parsed.records])
      } else {
        otherRest.push(rest)
      }
    }
    const requested = new Set<string>()
    const processor = makeProcessor(runtime, venue.id, {
      sequenceRule: venue.sequenceRule,
      requestSnapshot: (symbol) => {
        requested.add(symbol)
      }
    })
    const guessing = withGuessedInstruments(venue, runtime)
    const counted: VenueDefinition = {
      ...guessing,
      decodeFrame: (frame, out) => {
        const start = out.length
        const error = guessing.decodeFrame(frame, out)
        stats.records += out.length - start
        if (error !== undefined) stats.decodeErrors++
        return error
      }
    }
    const handle = makeFrameHandler(counted, processor, `${venue.id}/replay`, counting)
    const serveSnapshots = (now: number) =>
      Effect.gen(function*() {
        for (const symbol of [...requested]) {
          requested.delete(symbol)
          const next = snapshots.get(symbol)?.shift()
          if (next === undefined) continue
          stats.snapshotsServed++
          const batch = new RowBatch()
          processor.process(next, now, batch)
          if (batch.size > 0) yield* counting(batch)
        }
      })
    const frames = [...recording.frames].sort((a, b) => (a.receivedAt ?? 0) - (b.receivedAt ?? 0))
    let restIndex = 0
    // Frames recorded without a time (plain frame files) count as received when the replay starts: no record can be from later.
    let now = yield* Clock.currentTimeMillis
    for (const frame of frames) {
      now = frame.receivedAt ?? now
      while (restIndex < otherRest.length && otherRest[restIndex]!.receivedAt <= now) {
        const batch = new RowBatch()
        processor.process(venue.fromRest(otherRest[restIndex++]!).records ?? [], now, batch)
        if (batch.size > 0) yield* counting(batch)
      }
      stats.frames++
      yield* handle([frame.text], now)
      yield* serveSnapshots(now)
    }
    // The recording ends: the minute bars still open are written, their last minute not watched to its end.
    const last = new RowBatch()
    processor.stop(now, last)
    if (last.size > 0) yield* counting(last)
    // REST answers, snapshots and frames all went through the processor's check: what it refused is a decode error.
    stats.refusedRecords = processor.counters.invalid
    stats.decodeErrors += processor.counters.invalid
    if (processor.counters.invalid > 0) {
      yield* Effect.logWarning("records refused: a non-finite number or an impossible time").pipe(
        Effect.annotateLogs({ venue: venue.id, refused: processor.counters.invalid, last: describeRefused(processor.lastRefused!) })
      )
    }
    return stats
  })
