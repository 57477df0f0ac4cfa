/**
 * One supervised WebSocket feed: connect, subscribe, read frames in batches,
 * detect silence, rotate before the venue's connection lifetime, and on any
 * failure reconnect after a capped, jittered exponential backoff. Knows no venue.
 */
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Metric, Random, type Scope } from "effect"
import { Socket } from "effect/socket"
import { FeedClosedError, FeedConnectError, type FeedError, FeedStaleError } from "../domain/errors.ts"
import { transportCause } from "../domain/transport.ts"
import { feedConnected, feedMessages, feedReconnects } from "../observability/metrics.ts"
import type { Pacer } from "./pacing.ts"
import type { FeedStatus } from "./status.ts"

/** Handles the frames of one connection; built anew for every connection. */
export interface FeedSession {
  readonly onFrames: (frames: ReadonlyArray<string>, receivedAt: number) => Effect.Effect<void>
}

export interface FeedSpec<R = never> {
  readonly feed: string
  readonly venue: string
  readonly url: string
  readonly subscribeMessages: ReadonlyArray<string>
  /** No frame for this long means the connection is dead even if the socket looks open. */
  readonly staleAfterMs: number
  /** Reconnect before the venue's own connection limit (Binance: 24 h). */
  readonly maxLifetimeMs: number
  /**
   * The pacer every outgoing frame of a connection waits for (see pacing.ts):
   * a new one per connection where the venue counts per connection, the same
   * one for all where it counts per IP. None: unpaced.
   */
  readonly pacer?: (() => Pacer) | undefined
  /** Application-level keepalive for venues that need one (protocol pings are answered by `ws`). */
  readonly keepalive?: { readonly intervalMs: number; readonly message: string } | undefined
  /**
   * Called for every connection; `send` writes to that connection (subscriptions,
   * resubscriptions). `handover` is true when it replaces a live connection;
   * `rotate` asks for this connection to be replaced now, make-before-break
   * (the venue announced it will close it: Binance `serverShutdown`).
   */
  readonly openSession: (
    send: (message: string) => Effect.Effect<void>,
    context: { readonly handover: boolean; readonly rotate: Effect.Effect<void> }
  ) => Effect.Effect<FeedSession, never, Scope.Scope | R>
}

export interface Backoff {
  readonly initialMs: number
  readonly maxMs: number
  /** A session that stayed up this long resets the backoff. */
  readonly resetAfterMs: number
}

export const defaultBackoff: Backoff = { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 }

/** Capped exponential with "equal jitter": half fixed, half random, so reconnects never stampede. */
export const backoffDelay = (backoff: Backoff, attempt: number, random: number): number => {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30))
  return ceiling / 2 + (ceiling / 2) * random
}

const describeSocketError = (error: Socket.SocketError): string => {
  const reason = error.reason
  switch (reason._tag) {
    case "SocketCloseError":
      return `closed with code ${reason.code}${reason.closeReason ? `: ${reason.closeReason}` : ""}`
    case "SocketOpenError": {
      const cause = transportCause(reason.cause)
      return `open failed (${reason.kind === "Timeout" ? "timed out" : "error"})${cause === undefined ? "" : `: ${cause}`}`
    }
    default: {
      const cause = transportCause(reason.cause)
      return cause === undefined ? reason._tag : `${reason._tag}: ${cause}`
    }
  }
}

const toFeedError = (feed: string, opened: boolean) => (error: Socket.SocketError): FeedError => {
  const detail = describeSocketError(error)
  if (!opened) return new FeedConnectError({ feed, detail })
  return error.reason._tag === "SocketCloseError"
    ? new FeedClosedError({ feed, detail, code: error.reason.code })
    : new FeedClosedError({ feed, detail })
}

export interface SessionOptions {
  /** This connection replaces a live one (make-before-break): nothing was missed, nothing starts over. */
  readonly handover: boolean
  /** Completed once the connection has delivered and handled its first frames. */
  readonly ready: Deferred.Deferred<void>
  /** Completed when the session asks to be replaced before its lifetime is up. */
  readonly rotation: Deferred.Deferred<void>
}

/**
 * Handing the event loop back to I/O for a turn before the next pull lets the
 * frames that arrived meanwhile gather into one batch: per-batch work (timers,
 * metrics, queue offers) is then paid once per burst, not once per frame.
 */
const letFramesGather = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** One connection, from dial to close. Ends only by failing (or by interruption). */
export const runSession = <R>(spec: FeedSpec<R>, status: FeedStatus, options: SessionOptions) =>
  Effect.gen(function*() {
    if (!options.handover) status.state = "connecting"
    const socket = yield* Socket.makeWebSocket(spec.url, { openTimeout: Duration.seconds(10) })
    const pull = yield* Socket.readerString(socket).pipe(Effect.mapError(toFeedError(spec.feed, false)))
    const openedAt = yield* Clock.currentTimeMillis
    status.state = "connected"
    status.connectedAt = openedAt
    status.openSessions++
    const connected = Metric.withAttributes(feedConnected, { feed: spec.feed })
    yield* Metric.update(connected, 1)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        status.openSessions--
        return status.openSessions === 0 ? Metric.update(connected, 0) : Effect.void
      })
    )
    const writer = yield* socket.writer
    const pacer = spec.pacer?.()
    const write = (message: string) => pacer === undefined ? writer.write(message) : Effect.andThen(pacer.take, writer.write(message))
    const session = yield* spec.openSession((message) => Effect.ignore(write(message)), {
      handover: options.handover,
      rotate: Effect.asVoid(Deferred.succeed(options.rotation, undefined))
    })
    for (const message of spec.subscribeMessages) {
      yield* write(message).pipe(Effect.mapError(toFeedError(spec.feed, true)))
    }
    if (spec.keepalive !== undefined) {
      const { intervalMs, message } = spec.keepalive
      yield* write(message).pipe(
        Effect.delay(Duration.millis(intervalMs)),
        Effect.forever,
        Effect.ignore,
        Effect.forkScoped
      )
    }
    const messages = Metric.withAttributes(feedMessages, { feed: spec.feed })
    const stale = Effect.suspend(() =>
      Effect.fail(new FeedStaleError({ feed: spec.feed, detail: "no frame within the stale limit", silentForMs: spec.staleAfterMs }))
    )
    while (true) {
      const frames = yield* pull.pipe(
        Effect.mapError(toFeedError(spec.feed, true)),
        Effect.timeoutOrElse({ duration: Duration.millis(spec.staleAfterMs), orElse: () => stale })
      )
      const receivedAt = yield* Clock.currentTimeMillis
      status.lastMessageAt = receivedAt
      status.messages += frames.length
      yield* Metric.update(messages, frames.length)
      yield* session.onFrames(frames, receivedAt)
      yield* Deferred.succeed(options.ready, undefined)
      yield* letFramesGather
    }
  }).pipe(Effect.scoped)

const describeFailure = (cause: Cause.Cause<unknown>): { readonly tag: string; readonly message: string } => {
  const error = Cause.squash(cause)
  const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "defect"
  const detail = typeof error === "object" && error !== null && "detail" in error ? String(error.detail) : undefined
  const message = detail !== undefined
    ? `${tag}: ${detail}`
    : error instanceof Error
    ? `${tag}: ${error.message}`
    : Cause.pretty(cause)
  return { tag, message }
}

/** How long a replacement connection may take to deliver before the rotation is abandoned (and retried). */
const handoverTimeout = Duration.seconds(30)
/** After a failed rotation the venue announced, the next try (Binance closes ~10 minutes after its notice). */
const announcedRetry = Duration.seconds(5)

/**
 * Runs a feed forever. Typed failures and defects alike are recorded and followed
 * by a reconnect after a backoff; only interruption (shutdown) ends it. Before
 * the venue's connection lifetime runs out, the connection is rotated
 * make-before-break: the replacement is opened and must deliver before the old
 * one is closed, so a rotation loses nothing.
 */
export const superviseFeed = <R>(spec: FeedSpec<R>, status: FeedStatus, backoff: Backoff = defaultBackoff) =>
  Effect.gen(function*() {
    let attempt = 0
    const start = (handover: boolean) =>
      Effect.gen(function*() {
        const ready = yield* Deferred.make<void>()
        const rotation = yield* Deferred.make<void>()
        const fiber = yield* Effect.forkChild(Effect.exit(runSession(spec, status, { handover, ready, rotation })))
        return { fiber, ready, rotation }
      })
    while (true) {
      const startedAt = yield* Clock.currentTimeMillis
      let current = yield* start(false)
      let exit: Exit.Exit<void, unknown>
      // Serve from `current` until it fails; rotate it when its lifetime is up or the venue announces its end.
      while (true) {
        const outcome = yield* Effect.raceAll([
          Effect.map(Fiber.join(current.fiber), (exit) => ({ _tag: "ended" as const, exit })),
          Effect.as(Effect.sleep(Duration.millis(spec.maxLifetimeMs)), { _tag: "rotate" as const, announced: false }),
          Effect.as(Deferred.await(current.rotation), { _tag: "rotate" as const, announced: true })
        ])
        if (outcome._tag === "ended") {
          exit = outcome.exit
          break
        }
        const next = yield* start(true)
        const delivered = yield* Deferred.await(next.ready).pipe(
          Effect.raceFirst(Effect.flatMap(Fiber.join(next.fiber), () => Effect.fail("ended" as const))),
          Effect.timeoutOrElse({ duration: handoverTimeout, orElse: () => Effect.fail("timeout" as const) }),
          Effect.as(true),
          Effect.catch(() => Effect.succeed(false))
        )
        if (!delivered) {
          // The old connection keeps serving; the next lifetime tick (or, when the venue announced
          // the end, a retry shortly) tries again.
          yield* Fiber.interrupt(next.fiber)
          yield* Effect.logWarning("connection rotation failed; keeping the current connection").pipe(
            Effect.annotateLogs({ feed: spec.feed, announced: outcome.announced })
          )
          if (outcome.announced) yield* Effect.sleep(announcedRetry)
          continue
        }
        yield* Fiber.interrupt(current.fiber)
        current = next
        status.rotations++
        yield* Metric.update(Metric.withAttributes(feedReconnects, { feed: spec.feed, cause: "rotation" }), 1)
      }
      const endedAt = yield* Clock.currentTimeMillis
      status.state = "backoff"
      status.connectedAt = null
      status.reconnects++
      if (Exit.isSuccess(exit)) continue
      if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
      const failure = describeFailure(exit.cause)
      status.lastError = failure.message
      status.lastCause = failure.tag
      if (endedAt - startedAt >= backoff.resetAfterMs) attempt = 0
      yield* Effect.logWarning("feed disconnected").pipe(
        Effect.annotateLogs({ feed: spec.feed, cause: failure.tag, error: failure.message })
      )
      yield* Metric.update(Metric.withAttributes(feedReconnects, { feed: spec.feed, cause: failure.tag }), 1)
      const delay = backoffDelay(backoff, attempt++, yield* Random.next)
      yield* Effect.sleep(Duration.millis(delay))
    }
  }).pipe(Effect.ensuring(Effect.sync(() => {
    status.state = "stopped"
  })))
