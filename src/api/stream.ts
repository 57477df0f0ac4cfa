/**
 * `GET /api/v1/stream`: Server-Sent Events (one-way, proxy-friendly, resumed
 * by the browser itself with Last-Event-ID; a WebSocket would add nothing a
 * reader needs) of large trades, liquidations, funding, open interest, gaps,
 * alerts and feed states, with the query endpoints' filters: `kinds`,
 * `exchange`, `symbol`, `min_value_usd`. Events come from the stream hub (the
 * pipeline), not from the database.
 *
 * After a reconnect with a Last-Event-ID (header, or `last_event_id`), what
 * was missed comes first: from the hub's ring when it still holds the
 * client's event (exactly the events after it), otherwise from the database
 * by insert time and then from the ring (see stream/hub.ts for the ids). The
 * body is one Effect Stream: the replay, then the live queue merged with a
 * heartbeat on a Schedule; the subscription lives in its scope.
 *
 * Named events besides the data: `truncated` (more than STREAM_REPLAY_LIMIT
 * to replay: its id is where to continue, and the stream ends, so a browser
 * continues by itself), `error` (the replay failed or was refused by
 * admission control: the stream ends, nothing was skipped, reconnect with the
 * same id), `dropped` (the client fell too far behind, or there are too many).
 */
import { Duration, Effect, Layer, Metric, Result, Schedule, Schema, Stream } from "effect"
import { Sse } from "effect/encoding"
import { HttpRouter, HttpServerResponse } from "effect/http"
import type { SqlClient } from "effect/sql"
import { baseAssetPattern, type ReplayStart, streamReplay, streamStoredUpTo } from "../storage/queries.ts"
import {
  delivered,
  type EventPosition,
  parseEventId,
  type ResumePlan,
  type StreamEvent,
  type StreamFilter,
  StreamHub,
  type StreamKind,
  storedEventId,
  streamConfig,
  streamKinds
} from "../stream/hub.ts"
import { QueryAdmission } from "./admission.ts"
import { queryParameters } from "./contract.ts"
import { errorResponse, makeGuard } from "./middleware.ts"

const known = new Set(["kinds", "exchange", "symbol", "min_value_usd", "last_event_id"])
const decodeExchange = Schema.decodeUnknownResult(queryParameters.exchange)
const decodeSymbol = Schema.decodeUnknownResult(queryParameters.symbol)
const decodeMinValue = Schema.decodeUnknownResult(Schema.FiniteFromString.check(Schema.isGreaterThanOrEqualTo(0)))
const replayTimeout = Duration.seconds(10)

interface Parsed {
  readonly filter: StreamFilter
  readonly lastEventId: string | undefined
  readonly symbol: string | undefined
}

/** The request's filters, or the 400 that names what is wrong. */
const filterOf = (params: URLSearchParams): Parsed | string => {
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
const named = (event: string, id: string | undefined, data: unknown) => Sse.encoder.write({ _tag: "Event", event, id, data: JSON.stringify(data) })

/** What the replay sends, and how it ends: `undefined` goes on live; otherwise the frame that ends the stream. */
interface Replayed {
  readonly events: ReadonlyArray<StreamEvent>
  readonly source: string
  readonly end: string | undefined
}

interface Limits {
  readonly replayLimit: number
  readonly resumeOverlapMs: number
  readonly replayLatenessHours: number
}

/** Cut at the limit: the truncated event's id is the position to continue from. */
const capped = (events: ReadonlyArray<StreamEvent>, limit: number, source: string): Replayed =>
  events.length <= limit
    ? { events, source, end: undefined }
    : truncatedAt(events.slice(0, limit), events[limit - 1]!.id!, limit, source)

const truncatedAt = (events: ReadonlyArray<StreamEvent>, continueFrom: string, limit: number, source: string): Replayed => ({
  events,
  source,
  end: named("truncated", continueFrom, {
    reason: `more than ${limit} events to replay (STREAM_REPLAY_LIMIT); reconnect with Last-Event-ID ${continueFrom} for the rest`,
    replayed: events.length,
    continue_from: continueFrom
  })
})

const failed = (reason: "overloaded" | "database", message: string, lastEventId: string): Replayed => ({
  events: [],
  source: "nothing",
  end: named("error", undefined, { reason, message, continue_from: lastEventId })
})

/** The database part of a resume, then the ring's events the database did not give. */
const fromDatabase = (
  plan: Extract<ResumePlan, { _tag: "Database" }>,
  after: EventPosition,
  lastEventId: string,
  parsed: Parsed,
  limits: Limits
): Effect.Effect<Replayed, never, SqlClient.SqlClient | QueryAdmission> =>
  Effect.gen(function*() {
    const admission = yield* QueryAdmission
    const start: ReplayStart = after._tag === "Stored"
      ? { _tag: "After", insertedMicros: after.insertedMicros, kind: after.key.slice(0, after.key.indexOf(":")), rowId: after.rowId }
      : { _tag: "InsertedSince", ms: (after._tag === "Live" ? after.arrivedAt : after.time) - limits.resumeOverlapMs }
    const startMs = start._tag === "After" ? Number(start.insertedMicros / 1000n) : start.ms
    const earliest = startMs - limits.replayLatenessHours * 3_600_000
    const lane = admission.laneOf((plan.until - earliest) / 3_600_000)
    const work = Effect.gen(function*() {
      const stored = yield* streamReplay({
        start, until: plan.until, earliest, kinds: parsed.filter.kinds, exchange: parsed.filter.exchange, symbol: parsed.symbol,
        minValueUsd: parsed.filter.minValueUsd, limit: limits.replayLimit
      })
      // The client's own event, read again by the overlap, is not sent twice.
      const events = stored.rows
        .map((r): StreamEvent => {
          const id = storedEventId(r.insertedMicros, r.kind as StreamKind, r.id)
          return { id, key: `${r.kind}:${r.id}`, rowId: r.id, kind: r.kind as StreamKind, exchange: r.exchange, symbol: r.symbol, valueUsd: r.valueUsd, time: r.time, data: JSON.stringify(r.row) }
        })
      const sent = events.filter((e) => e.key !== after.key)
      if (stored.more) {
        // Continue after the last row read (sent or not), so the next request always moves on.
        const last = stored.rows.at(-1)!
        return truncatedAt(sent, storedEventId(last.insertedMicros, last.kind as StreamKind, last.id), limits.replayLimit, "the database")
      }
      const given = new Set(events.map((e) => e.key))
      const pending = plan.ring.filter((e) => !given.has(e.key))
      // From a database position, ring events the client already had from the database before it are left out.
      const had = after._tag === "Stored" && pending.length > 0 ? yield* streamStoredUpTo(pending.map((e) => e.key), after.insertedMicros) : new Set<string>()
      return capped([...sent, ...pending.filter((e) => !had.has(e.key))], limits.replayLimit, "the database, then the ring")
    }).pipe(
      Effect.timeoutOrElse({ duration: replayTimeout, orElse: () => Effect.fail("timeout" as const) }),
      Effect.catch((e) => Effect.succeed(failed("database", e === "timeout" ? "the database did not answer in time" : "the database failed to replay what was missed", lastEventId)))
    )
    return yield* admission.admit(lane, work).pipe(
      Effect.catchTag("Overloaded", (e) => Effect.succeed(failed("overloaded", `too many queries at once; reconnect after ${e.retryAfterSeconds} s with the same Last-Event-ID`, lastEventId)))
    )
  })

export const StreamRoute = Layer.unwrap(Effect.gen(function*() {
  const guard = yield* makeGuard
  const config = yield* streamConfig
  const heartbeat = Stream.fromSchedule(Schedule.spaced(Duration.millis(Math.max(1, config.heartbeatMs)))).pipe(Stream.map(() => ": keep-alive\n\n"))
  return HttpRouter.add("GET", "/api/v1/stream", (request) =>
    Effect.gen(function*() {
      const refused = yield* guard(request)
      if (refused !== undefined) return refused
      const url = new URL(request.url, "http://localhost")
      const parsed = filterOf(url.searchParams)
      if (typeof parsed === "string") return errorResponse(400, "INVALID_PARAMETER", parsed)
      const lastEventId = request.headers["last-event-id"] ?? parsed.lastEventId
      const after = lastEventId === undefined ? undefined : parseEventId(lastEventId)
      if (lastEventId !== undefined && after === undefined) {
        return errorResponse(400, "INVALID_PARAMETER", `Last-Event-ID must be an id this stream sent (<epoch>.<seq>.<ms>:<kind>:<row id> or db.<µs>:<kind>:<row id>), got ${JSON.stringify(lastEventId)}`)
      }
      const hub = yield* StreamHub
      if (hub.clients() >= config.maxClients) return errorResponse(503, "OVERLOADED", `the stream has ${config.maxClients} clients already (STREAM_MAX_CLIENTS)`, { "retry-after": "5" })
      const services = yield* Effect.context<SqlClient.SqlClient | QueryAdmission>()

      const body = Stream.unwrap(Effect.gen(function*() {
        // Lives as long as this response stream: its scope ends the subscription.
        const subscription = yield* hub.subscribe(parsed.filter, after)
        const replayed: Replayed = subscription.resume === undefined || after === undefined
          ? { events: [], source: "nothing", end: undefined }
          : subscription.resume._tag === "Ring"
          ? capped(subscription.resume.events, config.replayLimit, "the ring")
          : yield* fromDatabase(subscription.resume, after, lastEventId!, parsed, config).pipe(Effect.provideContext(services))
        yield* Metric.update(delivered, replayed.events.length)
        const head = [
          "retry: 3000\n\n",
          ...subscription.snapshot.map(frame),
          ...replayed.events.map(frame),
          ...(replayed.source === "nothing" ? [] : [`: ${replayed.events.length} events replayed from ${replayed.source}\n\n`])
        ]
        if (replayed.end !== undefined) return Stream.fromIterable([...head, replayed.end])
        const live = subscription.live.pipe(
          Stream.mapArrayEffect((events) => Effect.as(Metric.update(delivered, events.length), [events.map(frame).join("")] as const)),
          Stream.catchTag("ClientDropped", (e) => Stream.succeed(named("dropped", undefined, { reason: e.reason })))
        )
        return Stream.concat(Stream.fromIterable(head), Stream.merge(live, heartbeat, { haltStrategy: "left" }))
      })).pipe(
        Stream.catchTag("TooManyClients", (e) => Stream.succeed(named("dropped", undefined, { reason: e.message })))
      )
      return HttpServerResponse.stream(Stream.encodeText(body), {
        contentType: "text/event-stream",
        headers: { "cache-control": "no-cache", "x-accel-buffering": "no", connection: "keep-alive" }
      })
    }))
}))
