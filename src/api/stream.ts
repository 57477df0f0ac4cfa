/**
 * `GET /api/v1/stream`: Server-Sent Events (one-way, proxy-friendly, resumed
 * by the browser itself with Last-Event-ID; a WebSocket would add nothing a
 * reader needs) of large trades, liquidations, funding, open interest, gaps,
 * alerts and feed states, with the query endpoints' filters: `kinds`,
 * `exchange`, `symbol`, `min_value_usd`. Events come from the stream hub (the
 * pipeline), not from the database; after a reconnect, what was missed since
 * the Last-Event-ID (header, or `last_event_id`) is replayed from the
 * database first. A `dropped` event says why the service ended a stream.
 */
import { Effect, Layer, Result, Schema, Stream } from "effect"
import { Sse } from "effect/encoding"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { baseAssetPattern, streamReplay } from "../storage/queries.ts"
import { type StreamEvent, type StreamFilter, StreamHub, type StreamKind, streamKinds } from "../stream/hub.ts"
import { queryParameters } from "./contract.ts"
import { errorResponse, makeGuard } from "./middleware.ts"

const known = new Set(["kinds", "exchange", "symbol", "min_value_usd", "last_event_id"])
const decodeExchange = Schema.decodeUnknownResult(queryParameters.exchange)
const decodeSymbol = Schema.decodeUnknownResult(queryParameters.symbol)
const decodeMinValue = Schema.decodeUnknownResult(Schema.FiniteFromString.check(Schema.isGreaterThanOrEqualTo(0)))
const encoder = new TextEncoder()
const heartbeatMs = 15_000
const replayLimit = 10_000

/** The request's filters, or the 400 that names what is wrong. */
const filterOf = (params: URLSearchParams): { filter: StreamFilter; lastEventId: string | undefined; symbol: string | undefined } | string => {
  for (const name of new Set(params.keys())) {
    if (!known.has(name)) return `unknown parameter ${name}; the stream takes ${[...known].join(", ")}`
    if (params.getAll(name).length > 1) return `${name} is given more than once`
  }
  const kindsText = params.get("kinds")
  const kinds = kindsText === null ? [...streamKinds] : kindsText.split(",").map((k) => k.trim().toLowerCase()).filter((k) => k.length > 0)
  const unknownKind = kinds.find((k) => !(streamKinds as ReadonlyArray<string>).includes(k))
  if (unknownKind !== undefined || kinds.length === 0) return `kinds must list some of ${streamKinds.join(", ")}; got ${JSON.stringify(kindsText)}`
  let exchange: string | undefined
  if (params.has("exchange")) {
    const decoded = decodeExchange(params.get("exchange"))
    if (Result.isFailure(decoded)) return `exchange: ${decoded.failure.message}`
    exchange = decoded.success
  }
  let symbol: string | undefined
  if (params.has("symbol")) {
    const decoded = decodeSymbol(params.get("symbol"))
    if (Result.isFailure(decoded)) return `symbol must be a native symbol or a base asset, got ${JSON.stringify(params.get("symbol"))}`
    symbol = decoded.success
  }
  let minValueUsd: number | undefined
  if (params.has("min_value_usd")) {
    const decoded = decodeMinValue(params.get("min_value_usd"))
    if (Result.isFailure(decoded)) return `min_value_usd must be a number of at least 0, got ${JSON.stringify(params.get("min_value_usd"))}`
    minValueUsd = decoded.success
  }
  const pattern = symbol === undefined ? undefined : new RegExp(baseAssetPattern(symbol))
  return {
    filter: {
      kinds: new Set(kinds as Array<StreamKind>),
      exchange,
      symbol: symbol === undefined ? undefined : (s) => s === symbol || pattern!.test(s),
      minValueUsd
    },
    lastEventId: params.get("last_event_id") ?? undefined,
    symbol
  }
}

const frame = (event: StreamEvent) => Sse.encoder.write({ _tag: "Event", event: event.kind, id: event.id, data: event.data })

export const StreamRoute = Layer.unwrap(Effect.map(makeGuard, (guard) => HttpRouter.add("GET", "/api/v1/stream", (request) =>
  Effect.gen(function*() {
    const refused = yield* guard(request)
    if (refused !== undefined) return refused
    const url = new URL(request.url, "http://localhost")
    const parsed = filterOf(url.searchParams)
    if (typeof parsed === "string") return errorResponse(400, "INVALID_PARAMETER", parsed)
    const lastEventId = request.headers["last-event-id"] ?? parsed.lastEventId
    const since = lastEventId === undefined ? undefined : Number(lastEventId.split(":")[0])
    if (since !== undefined && !Number.isFinite(since)) return errorResponse(400, "INVALID_PARAMETER", `Last-Event-ID must be an id this stream sent (<ms>:<kind>:<id>), got ${JSON.stringify(lastEventId)}`)
    const hub = yield* StreamHub
    // Subscribe first, then read what was missed: nothing falls between the two (an event in both is sent twice; ids tell).
    const subscribed = hub.subscribe(parsed.filter)
    if (typeof subscribed === "string") return errorResponse(503, "OVERLOADED", subscribed, { "retry-after": "5" })
    const subscription = subscribed
    const replayed: Array<StreamEvent> = []
    if (since !== undefined) {
      const rows = yield* streamReplay({ since, kinds: parsed.filter.kinds, exchange: parsed.filter.exchange, symbol: parsed.symbol, limit: replayLimit }).pipe(
        Effect.catch(() => Effect.succeed([]))
      )
      for (const r of rows) {
        const event: StreamEvent = { id: `${r.time}:${r.kind}:${r.id}`, kind: r.kind as StreamKind, exchange: r.exchange, symbol: r.symbol, valueUsd: r.valueUsd, time: r.time, data: JSON.stringify(r.row) }
        if (event.id === lastEventId) continue
        if (parsed.filter.minValueUsd !== undefined && event.valueUsd !== null && event.valueUsd < parsed.filter.minValueUsd) continue
        replayed.push(event)
      }
    }
    async function* body(): AsyncGenerator<Uint8Array> {
      yield encoder.encode(`retry: 3000\n: ${replayed.length} events replayed from the database\n\n`)
      for (const event of replayed) yield encoder.encode(frame(event))
      let idle: ReturnType<typeof setTimeout> | undefined
      while (true) {
        const next = await Promise.race([
          subscription.take(),
          new Promise<"heartbeat">((resolve) => (idle = setTimeout(() => resolve("heartbeat"), heartbeatMs)))
        ])
        clearTimeout(idle)
        if (next === "heartbeat") {
          yield encoder.encode(": keep-alive\n\n")
          continue
        }
        if ("dropped" in next) {
          yield encoder.encode(Sse.encoder.write({ _tag: "Event", event: "dropped", id: undefined, data: JSON.stringify({ reason: next.dropped }) }))
          return
        }
        if (next.length > 0) yield encoder.encode(next.map(frame).join(""))
      }
    }
    const stream = Stream.fromAsyncIterable(body(), (error) => error).pipe(Stream.ensuring(Effect.sync(() => subscription.close())))
    return HttpServerResponse.stream(stream, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no", connection: "keep-alive" }
    })
  }))))


