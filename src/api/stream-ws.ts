/**
 * `GET /api/v1/stream/ws`: the events of `GET /api/v1/stream` over a
 * WebSocket, for strategy engines and notebooks that speak nothing else. The
 * same admission (access, filters, client limit), the same one Stream of
 * items (snapshot, replay, live, end: see stream.ts), the same ids and the
 * same bounded buffer per client in the hub; only the encoding differs.
 *
 * - Frames: one JSON text message each, `{"kind", "id", "data"}` (WsFrame):
 *   the SSE event's name, id and data (parsed, not a string). Besides the
 *   event kinds: `replayed` (SSE's comment), `truncated`, `error`, `dropped`
 *   (as SSE), `heartbeat` (SSE's keep-alive comment: an application frame,
 *   since Effect's Socket writer sends no pings and a browser cannot see them;
 *   the server answers a client's pings by itself).
 * - Resume: the id as the `last_event_id` parameter (or a Last-Event-ID
 *   header), or as the client's first message `{"resume": "<id>"}`
 *   (WsResumeMessage), which the server waits `STREAM_WS_RESUME_WAIT_MS` for
 *   before going live (`{"resume": null}` goes live at once). Any other
 *   message is a protocol error (close 1008): a resume that came late must not
 *   pass for one that was served.
 * - Ends: the frame saying why, then a close with its code (wsCloseCodes).
 *
 * `ws`'s send never waits, so the writer waits for the connection to drain
 * when Node says it is full: a client that stops reading stops the writer,
 * its hub buffer fills and the hub drops it, exactly as on SSE, instead of
 * its events piling up in this process.
 */
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Array as Arr, Config, Duration, Effect, Layer, Option, Result, Schedule, Schema, Stream } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Socket } from "effect/socket"
import type { SqlClient } from "effect/sql"
import { type StreamEvent, StreamHub, streamConfig, streamKinds } from "../stream/hub.ts"
import type { QueryAdmission } from "./admission.ts"
import { errorResponse } from "./middleware.ts"
import { isOpening, makeStreamAdmission, type Resume, resumeOf, type StreamEnd, type StreamItem, streamItems } from "./stream.ts"

export const streamWsConfig = Config.all({
  /** How long the server waits for the optional resume message before it goes live. */
  resumeWaitMs: Config.Int("STREAM_WS_RESUME_WAIT_MS").pipe(Config.withDefault(1_000))
})

/** The client's first message, if any: the id of the last event it saw, or `null` to go live at once. */
export const WsResumeMessage = Schema.Struct({ resume: Schema.optionalKey(Schema.NullOr(Schema.String)) })
const decodeResumeMessage = Schema.decodeUnknownResult(Schema.fromJsonString(WsResumeMessage))

export const wsFrameKinds = [...streamKinds, "replayed", "truncated", "error", "dropped", "heartbeat"] as const

/** Every frame the server sends. `id` is null but on events from the hub or the database, and on `truncated`. */
export const WsFrame = Schema.Struct({
  kind: Schema.Literals(wsFrameKinds),
  id: Schema.NullOr(Schema.String),
  data: Schema.Record(Schema.String, Schema.Unknown)
})
export type WsFrame = typeof WsFrame.Type

/** How the server closes; 1001 (going away) when the service stops. */
export const wsCloseCodes = {
  /** `dropped`: the client's buffer filled (too slow); resume from the last id it got. */
  tooSlow: 4000,
  /** `truncated`: more than STREAM_REPLAY_LIMIT to replay; resume from the frame's id. */
  truncated: 4001,
  /** `error`: the replay failed or was refused; resume from `continue_from` (the same id). */
  replayFailed: 4002,
  /** `dropped`: STREAM_MAX_CLIENTS reached at subscription (Try Again Later). */
  tooManyClients: 1013,
  /** `error` with reason `protocol`: a first message that is not a resume message, or any later message. */
  protocol: 1008
} as const

const closeOf = (end: StreamEnd): Socket.CloseEvent => {
  switch (end.cause) {
    case "too_slow":
      return new Socket.CloseEvent(wsCloseCodes.tooSlow, "dropped: too slow")
    case "too_many_clients":
      return new Socket.CloseEvent(wsCloseCodes.tooManyClients, "dropped: too many clients")
    case "truncated":
      return new Socket.CloseEvent(wsCloseCodes.truncated, "truncated: resume from the frame's id")
    case "overloaded":
    case "database":
      return new Socket.CloseEvent(wsCloseCodes.replayFailed, `replay failed: ${end.cause}`)
  }
}

/** A frame to send, and the close that follows it when it ends the stream. */
interface Outgoing {
  readonly text: string
  readonly close: Socket.CloseEvent | undefined
}

const frameText = (frame: WsFrame) => JSON.stringify(frame)

// The event's data is JSON already: spliced in, not parsed and written again.
const eventText = (event: StreamEvent) =>
  `{"kind":${JSON.stringify(event.kind)},"id":${event.id === undefined ? "null" : JSON.stringify(event.id)},"data":${event.data}}`

const outgoingOf = (item: StreamItem): Outgoing => {
  switch (item._tag) {
    case "Event":
      return { text: eventText(item.event), close: undefined }
    case "Replayed":
      return { text: frameText({ kind: "replayed", id: null, data: { count: item.count, source: item.source } }), close: undefined }
    case "End":
      return { text: frameText({ kind: item.name, id: item.id ?? null, data: item.data }), close: closeOf(item) }
  }
}

const heartbeatFrame: Outgoing = { text: frameText({ kind: "heartbeat", id: null, data: {} }), close: undefined }

/**
 * Waits until Node has written what the connection holds, when it says it is
 * full (or the connection has closed).
 */
const drained = (transport: Duplex): Effect.Effect<void> =>
  !transport.writableNeedDrain || transport.destroyed
    ? Effect.void
    : Effect.callback<void>((resume) => {
      const go = () => resume(Effect.void)
      transport.once("drain", go)
      transport.once("close", go)
      return Effect.sync(() => {
        transport.off("drain", go)
        transport.off("close", go)
      })
    })

const resumeMessageHelp = `the first message, if any, is {"resume":"<last event id>"} or {"resume":null}`

/** The first message within the wait: where to resume, nothing (go live), or what is wrong with it. */
const firstMessage = (pull: Effect.Effect<ReadonlyArray<string>, Socket.SocketError>, waitMs: number) =>
  pull.pipe(
    Effect.map(Option.some),
    Effect.timeoutOrElse({ duration: Duration.millis(Math.max(0, waitMs)), orElse: () => Effect.succeed(Option.none()) }),
    Effect.map((first): Resume | undefined | string => {
      if (Option.isNone(first)) return undefined
      if (first.value.length > 1) return `${resumeMessageHelp}, and nothing else is read; got ${first.value.length} messages`
      const decoded = decodeResumeMessage(first.value[0])
      if (Result.isFailure(decoded)) return `${resumeMessageHelp}; got ${JSON.stringify(first.value[0]!.slice(0, 80))}`
      return resumeOf(decoded.success.resume ?? undefined)
    })
  )

export const StreamWsRoute = Layer.unwrap(Effect.gen(function*() {
  const admit = yield* makeStreamAdmission
  const config = yield* streamConfig
  const { resumeWaitMs } = yield* streamWsConfig
  const heartbeat = Stream.fromSchedule(Schedule.spaced(Duration.millis(Math.max(1, config.heartbeatMs)))).pipe(Stream.map(() => heartbeatFrame))
  return HttpRouter.add("GET", "/api/v1/stream/ws", (request) =>
    Effect.gen(function*() {
      const opening = yield* admit(request)
      if (!isOpening(opening)) return opening
      if (request.headers.upgrade?.toLowerCase() !== "websocket") {
        return errorResponse(426, "UPGRADE_REQUIRED", "this is a WebSocket endpoint (Upgrade: websocket); GET /api/v1/stream serves the same events as Server-Sent Events", { upgrade: "websocket" })
      }
      const hub = yield* StreamHub
      const services = yield* Effect.context<SqlClient.SqlClient | QueryAdmission>()
      const transport = (NodeHttpServerRequest.toIncomingMessage(request) as IncomingMessage).socket

      const session = Effect.gen(function*() {
        const socket = yield* request.upgrade
        const pull = yield* Socket.readerString(socket) // answers the handshake
        const writer = yield* socket.writer
        const send = (batch: Arr.NonEmptyReadonlyArray<Outgoing>) =>
          Effect.gen(function*() {
            yield* writer.writeAll(Arr.map(batch, (o) => o.text))
            const close = batch.find((o) => o.close !== undefined)?.close
            if (close !== undefined) yield* writer.write(close)
            yield* drained(transport)
          })
        const refuse = (message: string) =>
          send([{
            text: frameText({ kind: "error", id: null, data: { reason: "protocol", message } }),
            close: new Socket.CloseEvent(wsCloseCodes.protocol, "protocol: see the error frame")
          }])

        let resume = opening.resume
        if (resume === undefined) {
          const first = yield* firstMessage(pull, resumeWaitMs)
          if (typeof first === "string") return yield* refuse(first)
          resume = first
        }
        const outgoing = Stream.merge(
          streamItems(hub, { ...opening, resume }, services, config).pipe(Stream.map(outgoingOf)),
          heartbeat,
          { haltStrategy: "left" }
        )
        // Until the stream ends (its last frame and the close are sent) or the client says something or leaves.
        const outcome = yield* Effect.raceFirst(
          Effect.as(Stream.runForEachArray(outgoing, send), "sent" as const),
          Effect.as(pull, "message" as const)
        )
        if (outcome === "message") yield* refuse("the server reads no message after the first; reconnect and resume from the last id received")
      }).pipe(
        Effect.scoped,
        // The client left (or never finished the handshake): nothing to tell it.
        Effect.catchTag("SocketError", () => Effect.void)
      )
      yield* session
      return HttpServerResponse.empty()
    }))
}))
