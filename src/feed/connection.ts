/**
 * One supervised WebSocket feed: connect, subscribe, read frames in batches,
 * detect silence, rotate before the venue's connection lifetime, and on any
 * failure reconnect after a capped, jittered exponential backoff. Knows no venue.
 */
import { Cause, Clock, Duration, Effect, Exit, Metric, Random, type Scope } from "effect"
import { Socket } from "effect/socket"
import { FeedClosedError, FeedConnectError, type FeedError, FeedStaleError } from "../domain/errors.ts"
import { feedConnected, feedMessages, feedReconnects } from "../observability/metrics.ts"
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
  /** Application-level keepalive for venues that need one (protocol pings are answered by `ws`). */
  readonly keepalive?: { readonly intervalMs: number; readonly message: string } | undefined
  /** Called for every connection; `send` writes to that connection (subscriptions, resubscriptions). */
  readonly openSession: (send: (message: string) => Effect.Effect<void>) => Effect.Effect<FeedSession, never, Scope.Scope | R>
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
    case "SocketOpenError":
      return `open failed (${reason.kind})`
    default:
      return reason._tag
  }
}

const toFeedError = (feed: string, opened: boolean) => (error: Socket.SocketError): FeedError => {
  const detail = describeSocketError(error)
  if (!opened) return new FeedConnectError({ feed, detail })
  return error.reason._tag === "SocketCloseError"
    ? new FeedClosedError({ feed, detail, code: error.reason.code })
    : new FeedClosedError({ feed, detail })
}

/** One connection, from dial to close. Ends normally only for a planned rotation. */
export const runSession = <R>(spec: FeedSpec<R>, status: FeedStatus) =>
  Effect.gen(function*() {
    status.state = "connecting"
    const socket = yield* Socket.makeWebSocket(spec.url, { openTimeout: Duration.seconds(10) })
    const pull = yield* Socket.readerString(socket).pipe(Effect.mapError(toFeedError(spec.feed, false)))
    const openedAt = yield* Clock.currentTimeMillis
    status.state = "connected"
    status.connectedAt = openedAt
    const connected = Metric.withAttributes(feedConnected, { feed: spec.feed })
    yield* Metric.update(connected, 1)
    yield* Effect.addFinalizer(() => Metric.update(connected, 0))
    const writer = yield* socket.writer
    const session = yield* spec.openSession((message) => Effect.ignore(writer.write(message)))
    for (const message of spec.subscribeMessages) {
      yield* writer.write(message).pipe(Effect.mapError(toFeedError(spec.feed, true)))
    }
    if (spec.keepalive !== undefined) {
      const { intervalMs, message } = spec.keepalive
      yield* writer.write(message).pipe(
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
    const readLoop = Effect.gen(function*() {
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
      }
    })
    // The lifetime timer wins only when the socket outlives the venue's limit: a planned rotation.
    yield* Effect.raceFirst(readLoop, Effect.sleep(Duration.millis(spec.maxLifetimeMs)))
  }).pipe(Effect.scoped)

/**
 * Runs a feed forever. Typed failures and defects alike are recorded and followed
 * by a reconnect; only interruption (shutdown) ends it.
 */
export const superviseFeed = <R>(spec: FeedSpec<R>, status: FeedStatus, backoff: Backoff = defaultBackoff) =>
  Effect.gen(function*() {
    let attempt = 0
    while (true) {
      const startedAt = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(runSession(spec, status))
      const endedAt = yield* Clock.currentTimeMillis
      status.state = "backoff"
      status.connectedAt = null
      status.reconnects++
      let cause: string
      if (Exit.isSuccess(exit)) {
        cause = "rotation"
        status.lastError = "planned rotation before the venue's connection lifetime"
        attempt = 0
      } else {
        if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
        const error = Cause.squash(exit.cause)
        cause = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "defect"
        const detail = typeof error === "object" && error !== null && "detail" in error ? String(error.detail) : undefined
        status.lastError = detail !== undefined
          ? `${cause}: ${detail}`
          : error instanceof Error
          ? `${cause}: ${error.message}`
          : Cause.pretty(exit.cause)
        if (endedAt - startedAt >= backoff.resetAfterMs) attempt = 0
        yield* Effect.logWarning("feed disconnected").pipe(
          Effect.annotateLogs({ feed: spec.feed, cause, error: status.lastError })
        )
      }
      status.lastCause = cause
      yield* Metric.update(Metric.withAttributes(feedReconnects, { feed: spec.feed, cause }), 1)
      if (cause !== "rotation") {
        const delay = backoffDelay(backoff, attempt++, yield* Random.next)
        yield* Effect.sleep(Duration.millis(delay))
      }
    }
  }).pipe(Effect.ensuring(Effect.sync(() => {
    status.state = "stopped"
  })))
