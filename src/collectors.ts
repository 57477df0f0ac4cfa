/**
 * Starts every enabled venue as a supervised fiber: a venue that fails (even
 * with a defect) is logged and restarted after a pause; it never stops another.
 */
import { Cause, Clock, Config, Duration, Effect, Layer, Metric, Schedule } from "effect"
import { CrossCheck } from "./alerts/cross-venue.ts"
import { AlertEngine } from "./alerts/engine.ts"
import { CrossVenueAnalytics } from "./analytics/sampler.ts"
import { LiveBooks } from "./book/live.ts"
import { FeedRegistry, VenueProblem } from "./feed/status.ts"
import { GapLedger } from "./gaps/ledger.ts"
import { makeVenueRuntime, PipelineSettings, type VenueRuntime } from "./pipeline/runtime.ts"
import { alertStreamEvent, gapStreamEvent, StreamHub } from "./stream/hub.ts"
import { Writer } from "./storage/writer.ts"
import type { RowBatch } from "./domain/rows.ts"
import { venueById, venues } from "./venues/registry.ts"

export const EnabledVenues = Config.String("EXCHANGES").pipe(
  Config.withDefault(venues.map((v) => v.id).join(",")),
  // "none" runs the API alone (an empty value would fall back to the default).
  Config.map((list) => list.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0 && s !== "none"))
)

const sideSinkFailures = Metric.counter("fanout_sink_failures_total", {
  description: "Batches or events a side sink (alerts, stream) threw on at the fan-out point, per sink; the writer had them first",
  incremental: true
})

/**
 * The side sinks' failure boundary. A throw is counted per sink and logged at
 * most once a minute per sink. Synchronous callers (the ledger's and the
 * alert engine's listeners) only count; the counts reach /metrics every second.
 */
export const makeSideSinks = Effect.gen(function*() {
  const failures = new Map<string, { count: number; reported: number; loggedAt: number; last: unknown }>()
  const note = (sink: string, error: unknown) => {
    const entry = failures.get(sink) ?? { count: 0, reported: 0, loggedAt: -Infinity, last: undefined }
    entry.count++
    entry.last = error
    failures.set(sink, entry)
  }
  const runSync = (sink: string, run: () => void) => {
    try {
      run()
    } catch (error) {
      note(sink, error)
    }
  }
  const report = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    for (const [sink, entry] of failures) {
      if (entry.count === entry.reported) continue
      yield* Metric.update(Metric.withAttributes(sideSinkFailures, { sink }), entry.count - entry.reported)
      if (now - entry.loggedAt >= 60_000) {
        yield* Effect.logError(`side sink ${sink} failed; the writer stored the data, this sink missed it`).pipe(
          Effect.annotateLogs({ sink, failures: entry.count - entry.reported, error: String(entry.last) })
        )
        entry.loggedAt = now
      }
      entry.reported = entry.count
    }
  })
  yield* Effect.forkScoped(Effect.repeat(report, Schedule.spaced("1 second")))
  return {
    runSync,
    /** Runs each side sink in turn; a throw in one is noted and the next still runs. */
    run: (sinks: ReadonlyArray<readonly [string, () => void]>) =>
      Effect.sync(() => {
        for (const [sink, run] of sinks) runSync(sink, run)
      })
  }
})

/** The fan-out point: the writer takes the batch first, then each side sink behind its own boundary. */
export const fanOut = (
  store: (batch: RowBatch) => Effect.Effect<void>,
  sinks: Effect.Success<typeof makeSideSinks>,
  sides: ReadonlyArray<readonly [string, (batch: RowBatch) => void]>
) =>
(batch: RowBatch): Effect.Effect<void> =>
  Effect.andThen(store(batch), sinks.run(sides.map(([name, sink]) => [name, () => sink(batch)] as const)))

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : String(error)
}

export const CollectorsLive = Layer.effectDiscard(Effect.gen(function*() {
  const enabled = yield* EnabledVenues
  const settings = yield* PipelineSettings
  const writer = yield* Writer
  const alerts = yield* AlertEngine
  const hub = yield* StreamHub
  const crossCheck = yield* CrossCheck
  const registry = yield* FeedRegistry
  // The one fan-out point. The writer, the sink of record, takes every batch first and whatever the others
  // do (broker messages are staged by the writer, in the rows' own transaction); then the side sinks (alert
  // engine, stream hub, cross-venue check), each behind its own boundary: none ever waits, and one that throws is counted and
  // logged (at most once a minute), never felt by the rest.
  const sinks = yield* makeSideSinks
  // Declared before the runtime: the sampler may emit a batch as soon as it is attached, and the sinks call this.
  const lookup = (exchange: string, symbol: string) => runtime.instruments.get(exchange, symbol)
  const runtime: VenueRuntime = makeVenueRuntime(settings, fanOut(writer.offer, sinks, [
    ["alerts", (batch) => alerts.offer(batch, lookup)],
    ["stream", (batch) => hub.offer(batch)],
    ["cross_check", (batch) => crossCheck.offer(batch, lookup)]
  ]), yield* LiveBooks)
  // Spreads and arbitrage are sampled from the live books; their rows leave through the same fan-out point.
  yield* (yield* CrossVenueAnalytics).attach(runtime.emit)
  // Gaps leave through the ledger (they are not rows of a batch; it stages their broker messages itself): every
  // opening and change to the stream too.
  const ledger = yield* GapLedger
  ledger.watch((gap) => {
    sinks.runSync("stream", () => hub.offerEvent(gapStreamEvent(gap)))
  })
  alerts.watch((alert) => sinks.runSync("stream", () => hub.offerEvent(alertStreamEvent(alert))))
  for (const id of enabled) {
    const venue = venueById(id)
    if (venue === undefined) {
      yield* Effect.logError(`unknown venue in EXCHANGES: ${id}; known: ${venues.map((v) => v.id).join(", ")}`)
      continue
    }
    // While the venue starts, what its start-up calls fail with is its reason ("failing: ...").
    const problem = VenueProblem.of({
      report: (text) => {
        if (registry.venues().get(id) === "starting") registry.setVenueState(id, "starting", text === undefined ? undefined : `failing: ${text}`)
      }
    })
    yield* Effect.sync(() => registry.setVenueState(id, "starting")).pipe(
      Effect.andThen(venue.live(runtime)),
      Effect.provideService(VenueProblem, problem),
      Effect.scoped,
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logError(`venue ${id} stopped; restarting in 10 s`, cause).pipe(
            Effect.andThen(Effect.sync(() => registry.setVenueState(id, "restarting", `failed: ${describeCause(cause)}`))),
            Effect.andThen(Effect.sleep(Duration.seconds(10)))
          )
      ),
      Effect.forever,
      Effect.forkScoped
    )
  }
}))
