/**
 * Starts every enabled venue as a supervised fiber: a venue that fails (even
 * with a defect) is logged and restarted after a pause; it never stops another.
 */
import { Cause, Config, Duration, Effect, Layer } from "effect"
import { AlertEngine } from "./alerts/engine.ts"
import { FeedRegistry } from "./feed/status.ts"
import { GapLedger } from "./gaps/ledger.ts"
import { makeVenueRuntime, PipelineSettings, type VenueRuntime } from "./pipeline/runtime.ts"
import { alertJson } from "./alerts/delivery.ts"
import { gapStreamEvent, StreamHub } from "./stream/hub.ts"
import { Writer } from "./storage/writer.ts"
import { venueById, venues } from "./venues/registry.ts"

export const EnabledVenues = Config.String("EXCHANGES").pipe(
  Config.withDefault(venues.map((v) => v.id).join(",")),
  // "none" runs the API alone (an empty value would fall back to the default).
  Config.map((list) => list.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0 && s !== "none"))
)

export const CollectorsLive = Layer.effectDiscard(Effect.gen(function*() {
  const enabled = yield* EnabledVenues
  const settings = yield* PipelineSettings
  const writer = yield* Writer
  const alerts = yield* AlertEngine
  const hub = yield* StreamHub
  const registry = yield* FeedRegistry
  // The one fan-out point: every batch to the broker's outbox, the alert engine's queue and the stream hub
  // (none ever waits), and to the writer, the sink of record.
  const runtime: VenueRuntime = makeVenueRuntime(settings, (batch) =>
    Effect.andThen(
      Effect.sync(() => {
        alerts.offer(batch, lookup)
        hub.offer(batch)
      }),
      writer.offer(batch)
    ))
  const lookup = (exchange: string, symbol: string) => runtime.instruments.get(exchange, symbol)
  // Gaps leave through the ledger (they are not rows of a batch): every opening and change to the broker too.
  const ledger = yield* GapLedger
  ledger.watch((gap) => {
    hub.offerEvent(gapStreamEvent(gap))
  })
  alerts.watch((alert) =>
    hub.offerEvent({
      id: `${alert.firedAt}:alert:${alert.id}`,
      kind: "alert",
      exchange: alert.exchange,
      symbol: alert.symbol,
      valueUsd: null,
      time: alert.firedAt,
      data: JSON.stringify({ kind: "alert", ...alertJson(alert) })
    })
  )
  for (const id of enabled) {
    const venue = venueById(id)
    if (venue === undefined) {
      yield* Effect.logError(`unknown venue in EXCHANGES: ${id}; known: ${venues.map((v) => v.id).join(", ")}`)
      continue
    }
    yield* Effect.sync(() => registry.setVenueState(id, "starting")).pipe(
      Effect.andThen(venue.live(runtime)),
      Effect.scoped,
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.failCause(cause)
          : Effect.logError(`venue ${id} stopped; restarting in 10 s`, cause).pipe(
            Effect.andThen(Effect.sync(() => registry.setVenueState(id, "restarting"))),
            Effect.andThen(Effect.sleep(Duration.seconds(10)))
          )
      ),
      Effect.forever,
      Effect.forkScoped
    )
  }
}))
