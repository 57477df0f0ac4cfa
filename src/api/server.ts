/**
 * The HTTP API: the contract's query endpoints, /health, /metrics and the
 * OpenAPI document. Every answer is JSON in the contract's envelope; a bad
 * parameter is a 400 naming it, a database outage a 503, never a hang.
 */
import { createServer, type Server } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Clock, Config, Duration, Effect, Layer, Metric } from "effect"
import { HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { SqlClient } from "effect/sql"
import { FeedRegistry } from "../feed/status.ts"
import { apiRequests, queueDepth } from "../observability/metrics.ts"
import { DatabaseInfo, DatabaseProbe, readPoolLayer } from "../storage/database.ts"
import { admissionConfig, type Overloaded, QueryAdmission } from "./admission.ts"
import {
  basis,
  coverage,
  fundingRates,
  gaps,
  largeTrades,
  latestOrderBooks,
  openInterest,
  optionChain,
  rolls,
  settlements,
  volatilityIndex
} from "../storage/queries.ts"
import { Writer } from "../storage/writer.ts"
import { tableNames } from "../domain/rows.ts"
import { endpointParams, openApiDocument } from "./openapi.ts"
import { BadParameter, parseQuery, type ParamName, type Parsed } from "./params.ts"
import { failure, raw, success } from "./respond.ts"

const queryTimeout = Duration.seconds(10)

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

class DatabaseUnavailable {
  readonly _tag = "DatabaseUnavailable"
}

/** Runs a query; any database failure or a timeout becomes DatabaseUnavailable (a 503). */
const guarded = <A, E, R>(query: Effect.Effect<A, E, R>) =>
  query.pipe(
    Effect.timeoutOrElse({ duration: queryTimeout, orElse: () => Effect.fail(new DatabaseUnavailable()) }),
    Effect.mapError(() => new DatabaseUnavailable())
  )

const filtersOf = (parsed: Record<string, unknown>, hours: number | undefined) =>
  hours === undefined ? parsed : { ...parsed, hours }

const queryEndpoint = <N extends ParamName, A, R>(
  allowed: ReadonlyArray<N>,
  run: (parsed: Parsed<N>) => Effect.Effect<A, unknown, R>,
  withHours: boolean,
  gapChannels?: (parsed: Parsed<N>) => ReadonlyArray<string>
) =>
(search: URLSearchParams) =>
  Effect.gen(function*() {
    const parsed = parseQuery(search, allowed)
    if (parsed instanceof BadParameter) return failure(400, "INVALID_PARAMETER", parsed.message)
    const hours = withHours ? ((parsed as { hours?: number }).hours ?? 24) : undefined
    const window = parsed as { symbol?: string; exchange?: string; hours?: number }
    const admission = yield* QueryAdmission
    // Long windows queue in the heavy lane: they can be shed, never hold up short ones or /health.
    return yield* admission.admit(admission.laneOf(hours), Effect.gen(function*() {
      const data = yield* guarded(run(parsed))
      const covered = gapChannels === undefined ? undefined : yield* guarded(coverage({
        symbol: window.symbol,
        exchange: window.exchange,
        hours: window.hours ?? 24,
        channels: gapChannels(parsed)
      }))
      return success(data, filtersOf(parsed as Record<string, unknown>, hours), covered)
    }))
  })

const routes: Record<string, (search: URLSearchParams) => Effect.Effect<HttpServerResponse.HttpServerResponse, DatabaseUnavailable | Overloaded, SqlClient.SqlClient | QueryAdmission>> = {
  "/api/v1/exchange/large-trades": queryEndpoint(endpointParams.largeTrades, (p) =>
    largeTrades({
      symbol: p.symbol,
      exchange: p.exchange,
      hours: p.hours ?? 24,
      limit: p.limit ?? 100,
      minValueUsd: p.min_value_usd,
      onlyLiquidations: p.only_liquidations,
      side: p.side
    }), true, (p) => (p.only_liquidations === true ? ["liquidations"] : ["trades", "liquidations"])),
  "/api/v1/exchange/funding-rates": queryEndpoint(endpointParams.fundingRates, (p) =>
    fundingRates({ symbol: p.symbol, exchange: p.exchange, hours: p.hours ?? 24, limit: p.limit ?? 100 }), true, () => ["funding"]),
  "/api/v1/exchange/open-interest": queryEndpoint(endpointParams.openInterest, (p) =>
    openInterest({ symbol: p.symbol, exchange: p.exchange, hours: p.hours ?? 24, limit: p.limit ?? 100 }), true, () => ["open_interest"]),
  "/api/v1/exchange/orderbooks": queryEndpoint(endpointParams.orderbooks, (p) =>
    latestOrderBooks({ symbol: p.symbol, exchange: p.exchange, depth: p.depth }), false),
  "/api/v1/exchange/gaps": queryEndpoint(endpointParams.gaps, (p) =>
    gaps({
      symbol: p.symbol,
      exchange: p.exchange,
      hours: p.hours ?? 24,
      limit: p.limit ?? 100,
      channels: p.channel === undefined ? undefined : [p.channel],
      status: p.status
    }), true),
  "/api/v1/exchange/volatility-index": queryEndpoint(endpointParams.volatilityIndex, (p) =>
    volatilityIndex({ index: p.index, exchange: p.exchange, hours: p.hours ?? 24, limit: p.limit ?? 100 }), true),
  "/api/v1/exchange/option-chain": queryEndpoint(endpointParams.optionChain, (p) =>
    optionChain({ currency: p.currency, expiry: p.expiry, exchange: p.exchange, limit: p.limit ?? 1000 }), false),
  "/api/v1/exchange/settlements": queryEndpoint(endpointParams.settlements, (p) =>
    settlements({ symbol: p.symbol, exchange: p.exchange, hours: p.hours ?? 24 * 7, limit: p.limit ?? 100 }), true),
  "/api/v1/exchange/basis": queryEndpoint(endpointParams.basis, (p) =>
    basis({ symbol: p.symbol, exchange: p.exchange, hours: p.hours ?? 24 * 7, limit: p.limit ?? 100 }), true),
  "/api/v1/exchange/rolls": queryEndpoint(endpointParams.rolls, (p) =>
    rolls({ root: p.root, exchange: p.exchange, hours: p.hours ?? 24 * 90, limit: p.limit ?? 100 }), true)
}

const health = Effect.gen(function*() {
  const registry = yield* FeedRegistry
  const writer = yield* Writer
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
    streams: feed.streams()
  }))
  const venues = Object.fromEntries(registry.venues())
  const healthy = feeds.every((f) => f.state === "connected") && Object.values(venues).every((v) => v === "running")
  const body = {
    status: !reachable ? "unavailable" : healthy ? "ok" : "degraded",
    venues,
    venue_reasons: Object.fromEntries(registry.venueReasons()),
    database: {
      kind: database.kind,
      location: database.location,
      reachable,
      writer_retrying: writerState.retrying,
      last_error: writerState.lastError,
      last_success: writerState.lastSuccessAt === null ? null : new Date(writerState.lastSuccessAt).toISOString()
    },
    queues: writerState.tables,
    feeds,
    timestamp: new Date(now).toISOString()
  }
  return raw(reachable ? 200 : 503, body)
})

const metrics = Effect.gen(function*() {
  const writer = yield* Writer
  const state = writer.state()
  for (const table of tableNames) {
    yield* Metric.update(Metric.withAttributes(queueDepth, { table }), state.tables[table].queued)
  }
  const body = yield* PrometheusMetrics.format()
  return HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
})

const countRequest = (route: string, status: number) =>
  Metric.update(Metric.withAttributes(apiRequests, { route, status: String(status) }), 1)

export const app = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const url = new URL(request.url, "http://localhost")
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname
  const known = path in routes || path === "/health" || path === "/metrics" || path === "/openapi.json"
  if (!known) {
    yield* countRequest("unknown", 404)
    return failure(404, "NOT_FOUND", `no route ${request.method} ${path.slice(0, 100)}`)
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    yield* countRequest(path, 405)
    return failure(405, "METHOD_NOT_ALLOWED", `${path} accepts GET only`)
  }
  const response = path === "/health"
    ? yield* health
    : path === "/metrics"
    ? yield* metrics
    : path === "/openapi.json"
    ? raw(200, openApiDocument)
    : yield* routes[path]!(url.searchParams).pipe(
      Effect.catchTag("DatabaseUnavailable", () =>
        Effect.succeed(failure(503, "DATABASE_UNAVAILABLE", "the database did not answer; try again shortly"))),
      Effect.catchTag("Overloaded", (overloaded) =>
        Effect.succeed(failure(
          503,
          "OVERLOADED",
          `too many ${overloaded.lane === "heavy" ? "long-window " : ""}queries at once; retry after ${overloaded.retryAfterSeconds} s`,
          { "retry-after": String(overloaded.retryAfterSeconds) }
        )))
    )
  yield* countRequest(path, response.status)
  return response
}).pipe(
  // Whatever went wrong, the client gets the contract's JSON, never an empty 500.
  Effect.catchCause((cause) =>
    Effect.logError("request failed", cause).pipe(
      Effect.as(failure(500, "INTERNAL_ERROR", "the request failed unexpectedly; it has been logged"))
    )
  )
)

export const ApiServerLive = Layer.unwrap(Effect.gen(function*() {
  const port = yield* Config.Port("PORT").pipe(Config.withDefault(8002))
  const host = yield* Config.String("HOST").pipe(Config.withDefault("0.0.0.0"))
  const statementTimeoutMs = yield* Config.Number("API_STATEMENT_TIMEOUT_SECONDS").pipe(Config.withDefault(5), Config.map((s) => s * 1000))
  const { light, heavy } = yield* admissionConfig
  return HttpServer.serve(app).pipe(
    HttpServer.withLogAddress,
    Layer.provideMerge(NodeHttpServer.layer(() => answerMalformedRequests(createServer()), { port, host })),
    // The API reads through its own pool (sized for what admission lets in), beside the writer's.
    Layer.provide([
      readPoolLayer({ connections: 2 * (light + heavy), statementTimeoutMs }),
      QueryAdmission.layer,
      DatabaseProbe.layer(Duration.seconds(2))
    ])
  )
}))
