/**
 * The service: collectors -> queues -> batched writer -> database, and the HTTP
 * API reading it. SIGTERM/SIGINT interrupt the collectors first (sockets close),
 * then the writer drains its queues, then the publisher and then the webhooks
 * get their bounded time to empty the outbox tables, then the database closes.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeWS from "@effect/platform-node/NodeWS"
import { existsSync, readFileSync } from "node:fs"
import { Config, ConfigProvider, Effect, Layer, Metric, References, Schema } from "effect"
import { AlertDelivery } from "./alerts/delivery.ts"
import { CrossCheck } from "./alerts/cross-venue.ts"
import { CrossVenueAnalytics } from "./analytics/sampler.ts"
import { LiveBooks } from "./book/live.ts"
import { AlertEngine } from "./alerts/engine.ts"
import { ApiServerLive } from "./api/server.ts"
import { CollectorsLive } from "./collectors.ts"
import { FeedRegistry } from "./feed/status.ts"
import { CoverageRecorder } from "./gaps/coverage.ts"
import { GapLedger } from "./gaps/ledger.ts"
import { DatabaseInfo, DatabaseLive } from "./storage/database.ts"
import { EventLoopDelayLive } from "./observability/event-loop.ts"
import { Outbox } from "./storage/outbox.ts"
import { Publisher } from "./publish/publisher.ts"
import { StreamHub } from "./stream/hub.ts"
import { Writer } from "./storage/writer.ts"

const StartupLog = Layer.effectDiscard(
  Effect.gen(function*() {
    const database = yield* DatabaseInfo
    yield* Effect.logInfo(`market-data-service on node ${process.version}; database: ${database.kind} (${database.location})`)
    yield* Effect.addFinalizer(() => Effect.logInfo("shutting down: feeds stopped; the writer drains its queues"))
  })
)

/** LOG_LEVEL (default Info): Warn keeps only problems, Debug shows every decision. */
const LogLevelLive = Layer.unwrap(Effect.gen(function*() {
  const level = yield* Config.schema(Schema.Literals(["All", "Fatal", "Error", "Warn", "Info", "Debug", "Trace", "None"]), "LOG_LEVEL").pipe(
    Config.withDefault("Info" as const)
  )
  return Layer.succeed(References.MinimumLogLevel, level)
}))

/** Every row the writer does not store is a gap in the ledger (followed in the ledger's scope, so its last losses at shutdown are too). */
const WriterLossGaps = Layer.effectDiscard(Effect.gen(function*() {
  const ledger = yield* GapLedger
  yield* ledger.followLosses((yield* Writer).losses)
}))

export const AppLive = Layer.mergeAll(ApiServerLive, CollectorsLive, StartupLog, WriterLossGaps, EventLoopDelayLive).pipe(
  // The coverage recorder outlives the collectors: its last sample sees the feeds stopped.
  Layer.provideMerge(Layer.mergeAll(AlertEngine.layer, StreamHub.layer, CoverageRecorder.layer)),
  Layer.provideMerge(CrossCheck.layer),
  // Spreads and arbitrage from the live books; stopped before the writer drains, so their last rows are stored.
  Layer.provideMerge(CrossVenueAnalytics.layer),
  Layer.provideMerge(LiveBooks.layer),
  // The ledger outlives the writer: the rows the writer could not store at shutdown become gaps.
  Layer.provideMerge(Writer.layer),
  Layer.provideMerge(GapLedger.layer),
  // Released in the reverse order: the writer drains first, then the publisher empties the outbox, then the webhooks theirs.
  Layer.provideMerge(Publisher.layer),
  Layer.provideMerge(AlertDelivery.layer),
  Layer.provideMerge(Outbox.layer),
  Layer.provideMerge(DatabaseLive),
  Layer.provide([FeedRegistry.layer, NodeWS.layerWebSocketConstructor, NodeHttpClient.layerUndici]),
  Layer.provide(Metric.enableRuntimeMetricsLayer),
  Layer.provide(LogLevelLive)
)

/**
 * Environment variables first, then an optional dotenv-format file: CONFIG_FILE
 * if set (it must exist), otherwise ./.env when present.
 */
export const ConfigLive = Layer.unwrap(Effect.sync(() => {
  const file = process.env.CONFIG_FILE ?? (existsSync(".env") ? ".env" : undefined)
  if (file === undefined) return Layer.empty
  const fromFile = ConfigProvider.fromDotEnvContents(readFileSync(file, "utf8"))
  return ConfigProvider.layer(ConfigProvider.orElse(ConfigProvider.fromEnv(), fromFile))
}))

if (import.meta.main) Layer.launch(AppLive.pipe(Layer.provide(ConfigLive))).pipe(NodeRuntime.runMain)
