/**
 * `GET /api/v1/stream`: Server-Sent Events (one-way, proxy-friendly, resumed
 * by the browser itself with Last-Event-ID; the same over a WebSocket in
 * stream-ws.ts) of large trades, liquidations, funding, open interest, gaps,
 * alerts and feed states, and of the cross-venue kinds (stream/hub.ts
 * streamKinds):
 * - `spread`: an asset's sample of the live books (quotes in USD, pair spreads
 *   in bps, books excluded and why), only when it changed;
 * - `arbitrage`: an opportunity after taker fees at open, new peak, every 10 s
 *   while open and at close (its row as /exchange/arbitrage has it);
 * - `bar`: a venue's minute bar when written (OHLC, volumes, volume delta,
 *   liquidations, whether watched whole), or with `correction: true` only
 *   the trades to add (late ones, or a minute not watched from its start);
 * with the query endpoints' filters: `kinds`, `exchange`, `symbol`,
 * `min_value_usd`. Events come from the stream hub (the pipeline), not from
 * the database.
 *
 * After a reconnect with a Last-Event-ID (header, or `last_event_id`), what
 * was missed comes first: from the hub's ring when it still holds the
 * client's event (exactly the events after it), otherwise from the database
 * by insert time and then from the ring (see stream/hub.ts for the ids);
 * such a resume first gets the open arbitrage opportunities as one snapshot
 * event (spread and arbitrage events are in the ring only: hub.ts).
 * Both transports admit a client the same way (makeStreamAdmission) and
 * encode the same Effect Stream of items (streamItems: the snapshot, the
 * replay, then the live queue, and at most one end); each merges its own
 * heartbeat on a Schedule; the subscription lives in the stream's scope.
 *
 * Named events besides the data: `truncated` (more than STREAM_REPLAY_LIMIT
 * to replay: its id is where to continue, and the stream ends, so a browser
 * continues by itself), `error` (the replay failed or was refused by
 * admission control: the stream ends, nothing was skipped, reconnect with the
 * same id), `dropped` (the client fell too far behind, or there are too many).
 */
import { Array as Arr, type Context, Duration, Effect, Layer, Metric, Result, Schedule, Schema, Stream } from "effect"
import { Sse } from "effect/encoding"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import type { SqlClient } from "effect/sql"
import { baseAssetPattern, type ReplayStart, streamReplay, type StreamReplayRow, streamStoredUpTo } from "../storage/queries.ts"
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

export interface Parsed {
  readonly filter: StreamFilter
  readonly lastEventId: string | undefined
  readonly symbol: string | undefined
}

/** The request's filters, or the 400 that names what is wrong. */
export const filterOf = (params: URLSearchParams): Parsed | string => {
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

/** How the stream ended before going live, or why the hub let the client go: the same for every transport. */
export interface StreamEnd {
  readonly _tag: "End"
  /** The event's name: `truncated`, `error` or `dropped`. */
  readonly name: "truncated" | "error" | "dropped"
  /** `truncated`: where to continue from. */
  readonly id: string | undefined
  readonly data: Readonly<Record<string, unknown>>
  /** Why, for a transport that says it again in its own terms (the WebSocket's close code). */
  readonly cause: "truncated" | "overloaded" | "database" | "too_slow" | "too_many_clients"
}

/**
 * What a stream client is sent, whatever the transport: data events (the
 * feeds' snapshot without ids, the replay, then live), how many the replay
 * sent and from where, and at most one end, last.
 */
export type StreamItem =
  | { readonly _tag: "Event"; readonly event: StreamEvent }
  | { readonly _tag: "Replayed"; readonly count: number; readonly source: string }
  | StreamEnd

/** What the replay sends, and how it ends: `undefined` goes on live; otherwise the item that ends the stream. */
interface Replayed {
  readonly events: ReadonlyArray<StreamEvent>
  readonly source: string
  readonly end: StreamEnd | undefined
}

export interface Limits {
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
  end: {
    _tag: "End",
    name: "truncated",
    id: continueFrom,
    cause: "truncated",
    data: {
      reason: `more than ${limit} events to replay (STREAM_REPLAY_LIMIT); resume from ${continueFrom} for the rest (Last-Event-ID, or the WebSocket's resume message)`,
      replayed: events.length,
      continue_from: continueFrom
    }
  }
})

const failed = (reason: "overloaded" | "database", message: string, lastEventId: string): Replayed => ({
  events: [],
  source: "nothing",
  end: { _tag: "End", name: "error", id: undefined, cause: reason, data: { reason, message, continue_from: lastEventId } }
})

/**
 * The client's own event, read again by the overlap, is not sent twice. A bar's row changes in place (a
 * correction merges into it), so its key says nothing of its content: a stored bar is the client's own
 * only at the very position the client gave; any other version is sent (the whole bar, to replace:
 * sending it again is harmless, leaving it out loses the trades merged since).
 */
export const isClientsOwn = (event: StreamEvent, after: EventPosition, lastEventId: string): boolean =>
  event.kind === "bar" ? event.id === lastEventId : event.key === after.key

/**
 * What a ring event is matched by against the database: its key; a bar's key and contribution, since
 * the stored row holds an event's trades only once that contribution is merged into it (a correction
 * still on its way to the database is not in the row the database gave).
 */
export const heldKey = (event: StreamEvent): string =>
  event.kind === "bar" && event.contribution !== undefined ? `${event.key}\u0000${event.contribution}` : event.key

/** The keys (heldKey's form) the database's rows hold: a bar's once per contribution. */
export const heldKeys = (rows: ReadonlyArray<StreamReplayRow>): Set<string> => {
  const out = new Set<string>()
  for (const r of rows) {
    if (r.kind === "bar" && r.contributions !== undefined) for (const c of r.contributions) out.add(`bar:${r.id}\u0000${c}`)
    else out.add(`${r.kind}:${r.id}`)
  }
  return out
}

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
      const events = stored.rows
        .map((r): StreamEvent => {
          const id = storedEventId(r.insertedMicros, r.kind as StreamKind, r.id)
          return { id, key: `${r.kind}:${r.id}`, rowId: r.id, kind: r.kind as StreamKind, exchange: r.exchange, symbol: r.symbol, valueUsd: r.valueUsd, time: r.time, data: JSON.stringify(r.row) }
        })
      const sent = events.filter((e) => !isClientsOwn(e, after, lastEventId))
      if (stored.more) {
        // Continue after the last row read (sent or not), so the next request always moves on.
        const last = stored.rows.at(-1)!
        return truncatedAt(sent, storedEventId(last.insertedMicros, last.kind as StreamKind, last.id), limits.replayLimit, "the database")
      }
      const given = heldKeys(stored.rows)
      const pending = plan.ring.filter((e) => !given.has(heldKey(e)))
      // From a database position, ring events the client already had from the database before it are left out.
      const had = after._tag === "Stored" && pending.length > 0 ? yield* streamStoredUpTo(pending.map((e) => e.key), after.insertedMicros) : new Set<string>()
      return capped([...sent, ...pending.filter((e) => !had.has(heldKey(e)))], limits.replayLimit, "the database, then the ring")
    }).pipe(
      Effect.timeoutOrElse({ duration: replayTimeout, orElse: () => Effect.fail("timeout" as const) }),
      Effect.catch((e) => Effect.succeed(failed("database", e === "timeout" ? "the database did not answer in time" : "the database failed to replay what was missed", lastEventId)))
    )
    return yield* admission.admit(lane, work).pipe(
      Effect.catchTag("Overloaded", (e) => Effect.succeed(failed("overloaded", `too many queries at once; reconnect after ${e.retryAfterSeconds} s with the same Last-Event-ID`, lastEventId)))
    )
  })

/** Where a client resumes from: the id it gave, as a position; `undefined` when it gave none. */
export interface Resume {
  readonly lastEventId: string
  readonly after: EventPosition
}

/** The position an id names, or the message for a client that gave an id this stream never sent. */
export const resumeOf = (lastEventId: string | undefined): Resume | undefined | string => {
  if (lastEventId === undefined) return undefined
  const after = parseEventId(lastEventId)
  return after === undefined
    ? `Last-Event-ID must be an id this stream sent (<epoch>.<seq>.<ms>:<kind>:<row id> or db.<µs>:<kind>:<row id>), got ${JSON.stringify(lastEventId)}`
    : { lastEventId, after }
}

/** A request the stream accepts: its filters, and the id it gave to resume from (Last-Event-ID header, or `last_event_id`). */
export interface Opening {
  readonly parsed: Parsed
  readonly resume: Resume | undefined
}

/**
 * What every stream transport checks before it answers, in this order: access
 * (ApiAccess's guard: token or session cookie, budget), the filters, the
 * resume id, the client limit. The refusal as a response, or the opening.
 */
export const makeStreamAdmission = Effect.gen(function*() {
  const guard = yield* makeGuard
  const config = yield* streamConfig
  const hub = yield* StreamHub
  return (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Opening | HttpServerResponse.HttpServerResponse> =>
    Effect.gen(function*() {
      const refused = yield* guard(request)
      if (refused !== undefined) return refused
      const url = new URL(request.url, "http://localhost")
      const parsed = filterOf(url.searchParams)
      if (typeof parsed === "string") return errorResponse(400, "INVALID_PARAMETER", parsed)
      const resume = resumeOf(request.headers["last-event-id"] ?? parsed.lastEventId)
      if (typeof resume === "string") return errorResponse(400, "INVALID_PARAMETER", resume)
      if (hub.clients() >= config.maxClients) return errorResponse(503, "OVERLOADED", `the stream has ${config.maxClients} clients already (STREAM_MAX_CLIENTS)`, { "retry-after": "5" })
      return { parsed, resume } satisfies Opening
    })
})

export const isOpening = (answer: Opening | HttpServerResponse.HttpServerResponse): answer is Opening => "parsed" in answer

/**
 * The one stream every transport encodes: the feeds' snapshot, what was
 * missed since `resume` (ring or database), then the live events until the
 * hub drops the client. The subscription lives in the stream's scope.
 * Events handed to the transport are counted in `stream_events_total`.
 */
export const streamItems = (
  hub: StreamHub["Service"],
  opening: Opening,
  services: Context.Context<SqlClient.SqlClient | QueryAdmission>,
  limits: Limits
): Stream.Stream<StreamItem> =>
  Stream.unwrap(Effect.gen(function*() {
    const { parsed, resume } = opening
    const subscription = yield* hub.subscribe(parsed.filter, resume?.after)
    const replayed: Replayed = subscription.resume === undefined || resume === undefined
      ? { events: [], source: "nothing", end: undefined }
      : subscription.resume._tag === "Ring"
      ? capped(subscription.resume.events, limits.replayLimit, "the ring")
      : yield* fromDatabase(subscription.resume, resume.after, resume.lastEventId, parsed, limits).pipe(Effect.provideContext(services))
    yield* Metric.update(delivered, replayed.events.length)
    const head: Array<StreamItem> = [
      ...subscription.snapshot.map(eventItem),
      ...replayed.events.map(eventItem),
      ...(replayed.source === "nothing" ? [] : [{ _tag: "Replayed", count: replayed.events.length, source: replayed.source } as const])
    ]
    if (replayed.end !== undefined) return Stream.fromIterable([...head, replayed.end])
    const live = subscription.live.pipe(
      Stream.mapArrayEffect((events) => Effect.as(Metric.update(delivered, events.length), Arr.map(events, eventItem))),
      Stream.catchTag("ClientDropped", (e) => Stream.succeed(droppedItem("too_slow", e.reason)))
    )
    return Stream.concat(Stream.fromIterable(head), live)
  })).pipe(
    Stream.catchTag("TooManyClients", (e) => Stream.succeed(droppedItem("too_many_clients", e.message)))
  )

const eventItem = (event: StreamEvent): StreamItem => ({ _tag: "Event", event })
const droppedItem = (cause: "too_slow" | "too_many_clients", reason: string): StreamEnd => ({ _tag: "End", name: "dropped", id: undefined, cause, data: { reason } })

/** The items as Server-Sent Events; a stream's end is a named event. */
const sseOf = (item: StreamItem): string => {
  switch (item._tag) {
    case "Event":
      return Sse.encoder.write({ _tag: "Event", event: item.event.kind, id: item.event.id, data: item.event.data })
    case "Replayed":
      return `: ${item.count} events replayed from ${item.source}\n\n`
    case "End":
      return Sse.encoder.write({ _tag: "Event", event: item.name, id: item.id, data: JSON.stringify(item.data) })
  }
}

export const StreamRoute = Layer.unwrap(Effect.gen(function*() {
  const admit = yield* makeStreamAdmission
  const config = yield* streamConfig
  const heartbeat = Stream.fromSchedule(Schedule.spaced(Duration.millis(Math.max(1, config.heartbeatMs)))).pipe(Stream.map(() => ": keep-alive\n\n"))
  return HttpRouter.add("GET", "/api/v1/stream", (request) =>
    Effect.gen(function*() {
      const opening = yield* admit(request)
      if (!isOpening(opening)) return opening
      const hub = yield* StreamHub
      const services = yield* Effect.context<SqlClient.SqlClient | QueryAdmission>()
      const events = streamItems(hub, opening, services, config).pipe(
        // A chunk of live events is one write.
        Stream.mapArray((items) => [Arr.map(items, sseOf).join("")] as const)
      )
      const body = Stream.concat(Stream.succeed("retry: 3000\n\n"), Stream.merge(events, heartbeat, { haltStrategy: "left" }))
      return HttpServerResponse.stream(Stream.encodeText(body), {
        contentType: "text/event-stream",
        headers: { "cache-control": "no-cache", "x-accel-buffering": "no", connection: "keep-alive" }
      })
    }))
}))
