/**
 * The HTTP server: the data endpoints declared in contract.ts (effect/http-api:
 * validation, OpenAPI at /openapi.json, a documentation page at /docs),
 * /health and /metrics beside them, the dashboard and its session, and the
 * contract's JSON for everything else: 404 for an unknown route, 405 for a
 * known one asked with another method, 500 for the unexpected, never an empty body.
 */
import { createServer, type Server } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Cause, Clock, Config, Duration, Effect, Layer, Metric, Option } from "effect"
import { HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiScalar } from "effect/http-api"
import { PrometheusMetrics } from "effect/observability"
import type * as Types from "effect/Types"
import { tableNames } from "../domain/rows.ts"
import { FeedRegistry } from "../feed/status.ts"
import { apiRequests, apiRequestsAbandoned, feedTradeLag, queueDepth } from "../observability/metrics.ts"
import { DatabaseInfo, DatabaseProbe, readPoolLayer } from "../storage/database.ts"
import { AlertEngine } from "../alerts/engine.ts"
import { StreamHub } from "../stream/hub.ts"
import { Publisher } from "../publish/publisher.ts"
import { Writer } from "../storage/writer.ts"
import { admissionConfig, QueryAdmission } from "./admission.ts"
import { endpointParameters, MarketDataApi } from "./contract.ts"
import { ExchangeDataLive } from "./handlers.ts"
import { CrossVenueSettings } from "../analytics/views.ts"
import { ApiAccess, expiredSessionCookie, SessionRoutes } from "./access.ts"
import { ContractMiddlewareLive, errorResponse, makeGuard } from "./middleware.ts"
import { StreamRoute } from "./stream.ts"
import { StreamWsRoute } from "./stream-ws.ts"
import { DashboardRoutes, dashboardPaths } from "./dashboard.ts"

const json = (status: number, body: unknown) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json" })

/**
 * Requests Node's parser rejects before any handler runs (a URL or headers over
 * its 16 KB limit, bytes that are not HTTP) would get a bare status line with no
 * body; answer them in the contract's error envelope instead.
 */
const answerMalformedRequests = (server: Server) =>
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy()
    const tooLarge = error.code === "HPE_HEADER_OVERFLOW"
    const body = JSON.stringify({
      success: false,
      error: {
        code: "INVALID_PARAMETER",
        message: tooLarge ? "the request line and headers exceed 16 KB: shorten the query string" : `malformed HTTP request (${error.code ?? "parse error"})`
      },
      timestamp: new Date().toISOString()
    })
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    )
  })

/**
 * `/health`: open to anyone as a liveness answer (status only; 200, or 503
 * when the database is unreachable) for orchestrators and the Dockerfile's
 * HEALTHCHECK. The detail (error texts, the database's location, webhook
 * origins, feeds) needs what the data needs when API_TOKENS is set.
 */
const health = (access: ApiAccess["Service"]) => (request: HttpServerRequest.HttpServerRequest) => Effect.gen(function*() {
  const caller = yield* access.identify(request)
  const detailed = caller._tag === "Open" || caller._tag === "Verified"
  const registry = yield* FeedRegistry
  const writer = yield* Writer
  const publisher = yield* Publisher
  const alerts = yield* AlertEngine
  const hub = yield* StreamHub
  const database = yield* DatabaseInfo
  // Its own connection: never queued behind API queries, so a busy API is not reported as a dead database.
  const reachable = yield* (yield* DatabaseProbe).reachable
  const now = yield* Clock.currentTimeMillis
  const writerState = writer.state()
  const feeds = registry.all().map((feed) => ({
    feed: feed.feed,
    venue: feed.venue,
    state: feed.state,
    last_message_age_ms: feed.lastMessageAt === null ? null : now - feed.lastMessageAt,
    connected_for_ms: feed.connectedAt === null ? null : now - feed.connectedAt,
    messages: feed.messages,
    reconnects: feed.reconnects,
    rotations: feed.rotations,
    open_connections: feed.openSessions,
    last_error: feed.lastError,
    books: feed.books(),
    // From the venue's match time to receipt, over the last 5 to 10 minutes (null without trades).
    trade_lag_ms: feed.freshness?.exchangeLag(now) ?? null,
    streams: feed.freshness?.status(now) ?? []
  }))
  const venues = Object.fromEntries(registry.venues())
  const broker = publisher.state()
  // A table whose batches the database refuses for now (read-only, disk full, timeouts) is held and retried: degraded.
  const degradedTables = Object.values(writerState.tables).filter((t) => t.degraded !== null)
    .map((t) => ({ table: t.table, ...t.degraded! }))
  const healthy = feeds.every((f) => f.state === "connected") && Object.values(venues).every((v) => v === "running") &&
    (!broker.enabled || broker.state === "connected") && degradedTables.length === 0
  const status = !reachable ? "unavailable" : healthy ? "ok" : "degraded"
  if (!detailed) {
    const clear = (caller._tag === "Anonymous" || caller._tag === "Refused") && caller.clearCookie
    return HttpServerResponse.text(
      JSON.stringify({ status, detail: "send a valid token (Authorization: Bearer) for the detail", timestamp: new Date(now).toISOString() }),
      { status: reachable ? 200 : 503, contentType: "application/json", ...(clear ? { headers: { "set-cookie": expiredSessionCookie } } : {}) }
    )
  }
  const body = {
    status,
    venues,
    venue_reasons: Object.fromEntries(registry.venueReasons()),
    database: {
      kind: database.kind,
      location: database.location,
      reachable,
      writer_retrying: writerState.retrying,
      degraded_tables: degradedTables,
      last_error: writerState.lastError,
      last_success: writerState.lastSuccessAt === null ? null : new Date(writerState.lastSuccessAt).toISOString()
    },
    queues: writerState.tables,
    broker,
    alerts: alerts.state(),
    stream: { clients: hub.clients() },
    feeds,
    timestamp: new Date(now).toISOString()
  }
  return json(reachable ? 200 : 503, body)
})

/** Prometheus text; behind the same access control as the data when API_TOKENS is set. */
const MetricsRoute = Layer.unwrap(Effect.map(makeGuard, (guard) => HttpRouter.add("GET", "/metrics", (request) =>
  Effect.gen(function*() {
    const refused = yield* guard(request)
    if (refused !== undefined) return refused
    const writer = yield* Writer
    const state = writer.state()
    for (const table of tableNames) {
      yield* Metric.update(Metric.withAttributes(queueDepth, { table }), state.tables[table].queued)
    }
    const now = yield* Clock.currentTimeMillis
    for (const feed of (yield* FeedRegistry).all()) {
      const lag = feed.freshness?.exchangeLag(now)
      if (lag == null) continue
      for (const [quantile, ms] of [["0", lag.min_ms], ["0.5", lag.p50_ms], ["0.99", lag.p99_ms]] as const) {
        yield* Metric.update(Metric.withAttributes(feedTradeLag, { feed: feed.feed, quantile }), ms)
      }
    }
    const body = yield* PrometheusMetrics.format()
    return HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
  }))))

const HealthRoute = Layer.unwrap(Effect.map(ApiAccess, (access) => HttpRouter.add("GET", "/health", health(access))))

/** The methods a known path answers, for a 405's Allow. */
const methodsOf = (path: string) => (path === "/api/v1/session" ? "GET, POST, DELETE" : "GET, HEAD")

/** Paths the API serves: another method on them is a 405, anything else a 404. */
const knownPath = (path: string) =>
  path === "/health" || path === "/metrics" || path === "/openapi.json" || path === "/docs" || path === "/api/v1/stream" || path === "/api/v1/stream/ws" || path === "/api/v1/session" ||
  dashboardPaths.has(path) ||
  Object.hasOwn(endpointParameters, path)

/**
 * A request whose client closed its connection first (the server interrupts its fiber with ClientAbort):
 * nobody is left to answer and nothing failed, so it is counted and logged at Debug, not as an error.
 */
export const isClientAbort = (cause: Cause.Cause<unknown>) =>
  cause.reasons.length > 0 &&
  cause.reasons.every((reason) => Cause.isInterruptReason(reason) && reason.annotations.has(HttpServerError.ClientAbort.key))

/** The contract's JSON for what the router and the handlers do not answer themselves, and a count per route and status. */
const ContractFallback = HttpRouter.middleware((effect) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = new URL(request.url, "http://localhost").pathname
    const response = yield* effect.pipe(
      Effect.catchCause((cause) => {
        const error = Cause.squash(cause) as { _tag?: string; reason?: { _tag?: string } }
        if (error?.reason?._tag === "RouteNotFound") {
          const route = path.length > 1 ? path.replace(/\/+$/, "") : path
          return Effect.succeed(
            knownPath(route)
              ? errorResponse(405, "METHOD_NOT_ALLOWED", `${path.slice(0, 100)} accepts ${methodsOf(route).replace(", HEAD", "")} only`, { allow: methodsOf(route) })
              : errorResponse(404, "NOT_FOUND", `no route ${request.method} ${path.slice(0, 100)}`)
          )
        }
        if (isClientAbort(cause)) {
          const route = knownPath(path) ? path : "unknown"
          return Metric.update(Metric.withAttributes(apiRequestsAbandoned, { route }), 1).pipe(
            Effect.andThen(Effect.logDebug(`request abandoned by its client: ${request.method} ${path.slice(0, 100)}`)),
            Effect.andThen(Effect.failCause(cause))
          )
        }
        return Effect.logError("request failed", cause).pipe(
          Effect.as(errorResponse(500, "INTERNAL_ERROR", "the request failed unexpectedly; it has been logged"))
        )
      })
    )
    yield* Metric.update(Metric.withAttributes(apiRequests, { route: knownPath(path) ? path : "unknown", status: String(response.status) }), 1)
    return response
  }) as Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, HttpServerRequest.HttpServerRequest>, { global: true })

/** CORS_ORIGINS: origins allowed to call the API from a browser (`*` for any); none: no CORS headers. */
const CorsLive = Layer.unwrap(Effect.gen(function*() {
  const origins = yield* Config.String("CORS_ORIGINS").pipe(Config.option)
  if (Option.isNone(origins) || origins.value.trim() === "") return Layer.empty
  const allowedOrigins = origins.value.split(",").map((o) => o.trim()).filter((o) => o.length > 0)
  return HttpRouter.cors({ allowedOrigins, allowedMethods: ["GET", "HEAD", "OPTIONS"], allowedHeaders: ["authorization", "content-type"], maxAge: 600 })
}))

const Routes = Layer.mergeAll(
  HttpApiBuilder.layer(MarketDataApi, { openapiPath: "/openapi.json" }),
  HttpApiScalar.layer(MarketDataApi, { path: "/docs" }),
  HealthRoute,
  MetricsRoute,
  StreamRoute,
  StreamWsRoute,
  DashboardRoutes,
  SessionRoutes,
  ContractFallback,
  CorsLive
).pipe(Layer.provide(ExchangeDataLive), Layer.provide(ContractMiddlewareLive), Layer.provide(ApiAccess.layer))

export const ApiServerLive = Layer.unwrap(Effect.gen(function*() {
  const port = yield* Config.Port("PORT").pipe(Config.withDefault(8002))
  const host = yield* Config.String("HOST").pipe(Config.withDefault("0.0.0.0"))
  const statementTimeoutMs = yield* Config.Number("API_STATEMENT_TIMEOUT_SECONDS").pipe(Config.withDefault(5), Config.map((s) => s * 1000))
  const { light, heavy } = yield* admissionConfig
  return HttpRouter.serve(Routes, { disableLogger: true }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(() => answerMalformedRequests(createServer()), { port, host })),
    // The API reads through its own pool (sized for what admission lets in), beside the writer's.
    Layer.provide([
      readPoolLayer({ connections: 2 * (light + heavy), statementTimeoutMs }),
      QueryAdmission.layer,
      DatabaseProbe.layer(Duration.seconds(2)),
      CrossVenueSettings.layer
    ])
  )
}))
