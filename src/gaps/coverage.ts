/**
 * Coverage as positive evidence: the intervals during which each stream
 * (venue, channel, symbol) was live, and why it was not otherwise, kept in
 * `stream_coverage` per run of the service (`service_runs`, migration 0012).
 *
 * The recorder samples the feed registry every heartbeat (a Schedule in the
 * layer's scope): a stream is live while the feed that carries it is
 * connected (its streams are known once a connection opened, see
 * `connectionOpened` in pipeline/venue-kit.ts); a venue's own state is the
 * stream (venue, '*', '*'), live while the venue runs with every feed's
 * streams known. Each sample extends the open intervals to now and closes
 * those whose state changed: a live interval ends at the feed's last message,
 * so a disconnect found a heartbeat late claims nothing unseen. A crash
 * leaves the last heartbeat as the end: at most one period claimed. And a
 * live interval is stored only up to the writer's durable watermark
 * (`Writer.durableUntil`): rows still queued in memory when the process dies
 * are never claimed as collected; the interval's end is written on as the
 * watermark passes it.
 * Short drops between samples are in the gap ledger (connectionInterrupted).
 * Knows no venue.
 */
import { PgTypes } from "@effect/sql-pg"
import { Clock, Config, Context, Duration, Effect, Layer, Random, Result, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { EnabledVenues } from "../collectors.ts"
import { type FeedStatus, FeedRegistry, type VenueState } from "../feed/status.ts"
import { Writer } from "../storage/writer.ts"

export type StreamState = "live" | "venue_starting" | "venue_failing" | "disconnected"

/** The venue itself, as a stream: what is asked of a venue whose streams are not known. */
export const venueWide = "*"

export interface CoverageInterval {
  readonly id: string
  readonly exchange: string
  readonly channel: string
  readonly symbol: string
  readonly state: StreamState
  detail: string | null
  readonly since: number
  until: number
  closed: boolean
}

export interface CurrentRun {
  readonly runId: string
  readonly startedAt: number
  readonly venues: ReadonlyArray<string>
  /** This run's intervals, the open ones reaching to `now`. */
  readonly intervals: ReadonlyArray<CoverageInterval>
  readonly now: number
}

/** What one sample sees of a stream. */
export interface Observation {
  readonly state: StreamState
  readonly detail: string | null
  /** For live streams: when the carrying connection opened (a new value means it reconnected). */
  readonly connectedAt: number | null
  /** For stream-level keys: the carrying feed's last message (where a live interval ends when it drops). */
  readonly lastMessageAt: number | null
}

export interface VenueView {
  readonly venues: () => ReadonlyMap<string, VenueState>
  readonly venueReasons: () => ReadonlyMap<string, string>
  readonly all: () => ReadonlyArray<FeedStatus>
}

const text = (values: ReadonlyArray<string | null>) => Result.getOrThrow(PgTypes.array(values, PgTypes.OID.text))

export const streamKey = (exchange: string, channel: string, symbol: string) => `${exchange}\u0000${channel}\u0000${symbol}`

const feedReason = (feed: FeedStatus) => (feed.lastError === null ? null : `${feed.feed}: ${feed.lastError}`)

/**
 * What the registry shows right now, per stream key: the venue-wide key of each configured venue, and
 * every (channel, symbol) its feeds are known to carry.
 */
export const observe = (venues: ReadonlyArray<string>, view: VenueView): Map<string, Observation> => {
  const out = new Map<string, Observation>()
  const feeds = view.all()
  for (const venue of venues) {
    const state = view.venues().get(venue) ?? "starting"
    const reason = view.venueReasons().get(venue) ?? null
    const own = feeds.filter((f) => f.venue === venue)
    const unknown = own.filter((f) => f.carries === null)
    const venueLevel: Observation = state === "starting"
      ? { state: reason?.startsWith("failing") ? "venue_failing" : "venue_starting", detail: reason, connectedAt: null, lastMessageAt: null }
      : state === "restarting" || state === "degraded"
      ? { state: "venue_failing", detail: reason, connectedAt: null, lastMessageAt: null }
      : unknown.length > 0
      // Running, but a feed has never connected: what it carries is not known, so nothing of the venue is claimed.
      ? {
        state: unknown.some((f) => f.lastError !== null) ? "disconnected" : "venue_starting",
        detail: unknown.map(feedReason).find((r) => r !== null) ?? null,
        connectedAt: null,
        lastMessageAt: null
      }
      : { state: "live", detail: null, connectedAt: 0, lastMessageAt: null }
    out.set(streamKey(venue, venueWide, venueWide), venueLevel)
    for (const feed of own) {
      if (feed.carries === null) continue
      const live = feed.state === "connected"
      for (const channel of feed.carries.channels) {
        for (const symbol of feed.carries.symbols) {
          const key = streamKey(venue, channel, symbol)
          // Two feeds carrying one stream: live if either is.
          if (out.get(key)?.state === "live") continue
          out.set(key, live
            ? { state: "live", detail: null, connectedAt: feed.connectedAt, lastMessageAt: feed.lastMessageAt }
            : { state: "disconnected", detail: feedReason(feed), connectedAt: null, lastMessageAt: feed.lastMessageAt })
        }
      }
    }
  }
  return out
}

/**
 * The intervals of one run, advanced by samples. `advance` applies one
 * observation set at `now` and returns the intervals it changed or extended.
 */
export class CoverageTimeline {
  private readonly open = new Map<string, CoverageInterval & { connectedAt: number | null }>()
  private readonly closedRecent: Array<CoverageInterval> = []

  readonly runId: string
  readonly startedAt: number

  constructor(runId: string, startedAt: number) {
    this.runId = runId
    this.startedAt = startedAt
  }

  private start(key: string, state: StreamState, detail: string | null, since: number, now: number, connectedAt: number | null) {
    const [exchange, channel, symbol] = key.split("\u0000") as [string, string, string]
    const interval = {
      id: `${this.runId}_${exchange}_${channel}_${symbol}_${since}`,
      exchange,
      channel,
      symbol,
      state,
      detail,
      since,
      until: Math.max(since, now),
      closed: false,
      connectedAt
    }
    this.open.set(key, interval)
    return interval
  }

  private close(interval: CoverageInterval, at: number, changed: Array<CoverageInterval>) {
    interval.until = Math.max(interval.since, at)
    interval.closed = true
    changed.push(interval)
    this.closedRecent.push(interval)
    // Bounded: older closed intervals are in the database already.
    if (this.closedRecent.length > 20_000) this.closedRecent.shift()
  }

  advance(observed: ReadonlyMap<string, Observation>, now: number): Array<CoverageInterval> {
    const changed: Array<CoverageInterval> = []
    for (const [key, obs] of observed) {
      const prev = this.open.get(key)
      const liveSince = (connectedAt: number | null, floor: number) =>
        Math.min(now, Math.max(floor, connectedAt === null || connectedAt === 0 ? now : connectedAt))
      if (prev === undefined) {
        // First seen: a venue's own state holds from the run's start (the first sample is taken then); a live
        // stream from when its connection opened; a stream first seen down from now (before, it is not
        // known: nothing is claimed for it, and the venue's own state says why).
        const since = obs.state === "live"
          ? liveSince(obs.connectedAt, this.startedAt)
          : key.endsWith(`\u0000${venueWide}\u0000${venueWide}`) ? this.startedAt : now
        changed.push(this.start(key, obs.state, obs.detail, since, now, obs.connectedAt))
        continue
      }
      const sameConnection = obs.state !== "live" || prev.connectedAt === obs.connectedAt
      if (prev.state === obs.state && sameConnection) {
        prev.until = Math.max(prev.until, now)
        if (obs.detail !== null) prev.detail = obs.detail
        changed.push(prev)
        continue
      }
      if (prev.state === "live" && obs.state === "live") {
        // Reconnected between two samples: live until the last sample, down until the new connection opened.
        const reopened = liveSince(obs.connectedAt, prev.until)
        this.close(prev, prev.until, changed)
        if (reopened > prev.until) {
          const down = this.start(key, "disconnected", null, prev.until, reopened, null)
          this.close(down, reopened, changed)
        }
        changed.push(this.start(key, "live", null, reopened, now, obs.connectedAt))
        continue
      }
      if (prev.state === "live") {
        // Live until the last message the feed had: claim nothing after what was seen.
        const end = Math.min(now, Math.max(prev.since, obs.lastMessageAt ?? prev.since))
        this.close(prev, Math.min(end, prev.until), changed)
        changed.push(this.start(key, obs.state, obs.detail, prev.until, now, null))
        continue
      }
      const since = obs.state === "live" ? liveSince(obs.connectedAt, prev.since) : now
      this.close(prev, since, changed)
      changed.push(this.start(key, obs.state, obs.detail, since, now, obs.connectedAt))
    }
    return changed
  }

  /** Every open interval closed at `now` (a clean stop; `advance` has ended the live ones whose feed stopped). */
  closeAll(now: number): Array<CoverageInterval> {
    const changed: Array<CoverageInterval> = []
    for (const interval of this.open.values()) this.close(interval, Math.max(interval.until, now), changed)
    this.open.clear()
    return changed
  }

  intervals(now: number): Array<CoverageInterval> {
    const open = [...this.open.values()].map(({ connectedAt: _, ...i }) => (i.closed ? i : { ...i, until: Math.max(i.until, now) }))
    return [...this.closedRecent, ...open]
  }
}

export class CoverageRecorder extends Context.Service<CoverageRecorder, {
  readonly runId: string
  /** Samples the feeds now (the heartbeat does it every period). */
  readonly sample: Effect.Effect<void>
  /** This run as the coverage query merges it with what is stored. */
  readonly current: Effect.Effect<CurrentRun>
}>()("market-data/gaps/CoverageRecorder") {
  static readonly layer = Layer.effect(
    CoverageRecorder,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const registry = yield* FeedRegistry
      const writer = yield* Effect.serviceOption(Writer)
      const heartbeat = yield* Config.Number("COVERAGE_HEARTBEAT_SECONDS").pipe(Config.withDefault(5))
      const venues = yield* EnabledVenues
      const startedAt = yield* Clock.currentTimeMillis
      const runId = `${startedAt}-${Math.floor((yield* Random.next) * 1e9).toString(36)}`
      const timeline = new CoverageTimeline(runId, startedAt)
      const iso = (ms: number) => new Date(ms).toISOString()

      /** Held across failed writes: the next heartbeat writes them with its own. */
      const unwritten = new Map<string, CoverageInterval>()
      const write = (now: number, stopped: boolean) =>
        Effect.suspend(() => {
          const durable = writer._tag === "Some" ? writer.value.durableUntil(now) : now
          // A live interval claims no more than the writer has made durable; the rest is written once it is.
          const rows = [...unwritten.values()].map((i) => (i.state === "live" && i.until > durable ? { ...i, until: Math.max(i.since, durable) } : i))
          return sql.withTransaction(Effect.gen(function*() {
            yield* sql`INSERT INTO service_runs (id, started_at, last_seen_at, stopped_at, venues)
              VALUES (${runId}, (${iso(startedAt)}::timestamptz AT TIME ZONE 'UTC'), (${iso(now)}::timestamptz AT TIME ZONE 'UTC'),
                (${stopped ? iso(now) : null}::timestamptz AT TIME ZONE 'UTC'), ${venues.join(",")})
              ON CONFLICT (id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at, stopped_at = EXCLUDED.stopped_at`
            if (rows.length === 0) return
            // One statement per heartbeat however many streams: each column as one text[] through unnest.
            yield* sql`INSERT INTO stream_coverage (id, run_id, exchange, channel, symbol, state, detail, since, until, closed)
              SELECT u.id, ${runId}, u.exchange, u.channel, u.symbol, u.state, u.detail,
                (u.since::timestamptz AT TIME ZONE 'UTC'), (u.until::timestamptz AT TIME ZONE 'UTC'), u.closed::boolean
              FROM unnest(${text(rows.map((i) => i.id))}, ${text(rows.map((i) => i.exchange))}, ${text(rows.map((i) => i.channel))},
                ${text(rows.map((i) => i.symbol))}, ${text(rows.map((i) => i.state))}, ${text(rows.map((i) => i.detail))},
                ${text(rows.map((i) => iso(i.since)))}, ${text(rows.map((i) => iso(i.until)))}, ${text(rows.map((i) => String(i.closed)))})
                AS u(id, exchange, channel, symbol, state, detail, since, until, closed)
              ON CONFLICT (id) DO UPDATE SET detail = EXCLUDED.detail, until = EXCLUDED.until, closed = EXCLUDED.closed`
          })).pipe(Effect.tap(() => Effect.sync(() => {
            for (const i of rows) if (unwritten.get(i.id) === i) unwritten.delete(i.id)
          })))
        })
      const remember = (changed: ReadonlyArray<CoverageInterval>) => {
        for (const i of changed) unwritten.set(i.id, i)
      }

      const sample = Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        remember(timeline.advance(observe(venues, registry), now))
        yield* write(now, false).pipe(
          Effect.catchCause((cause) => Effect.logWarning("coverage heartbeat not stored; retried with the next", cause))
        )
      })

      yield* sample
      yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(Duration.seconds(heartbeat))))
      // A clean stop: every interval closed (live ones at their last message) and the run marked stopped.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          // The feeds have stopped: give the writer a moment to store what they sent, so the end can be claimed.
          if (writer._tag === "Some") {
            const drained = Effect.map(Clock.currentTimeMillis, (now) => writer.value.durableUntil(now) >= now)
            yield* drained.pipe(Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (done) => done }), Effect.timeout("2 seconds"), Effect.ignore)
          }
          const now = yield* Clock.currentTimeMillis
          remember(timeline.advance(observe(venues, registry), now))
          remember(timeline.closeAll(now))
          yield* write(now, true)
        }).pipe(Effect.timeout(Duration.seconds(5)), Effect.ignore)
      )

      return CoverageRecorder.of({
        runId,
        sample,
        current: Effect.map(Clock.currentTimeMillis, (now) => ({ runId, startedAt, venues, intervals: timeline.intervals(now), now }))
      })
    })
  )
}
