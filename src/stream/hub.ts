/**
 * The stream hub: live events for `GET /api/v1/stream` (Server-Sent Events),
 * fed from the pipeline's batches at the fan-out point (large trades,
 * liquidations, funding, open interest), from the gap ledger, the alert engine
 * and the feeds' state (polled once a second): never from the database.
 *
 * Every event gets an arrival sequence number at `offer` (the fan-out point)
 * and goes into a bounded ring of the latest `STREAM_RING_EVENTS` events, so
 * a client that reconnects is served what it missed from memory, including
 * rows still waiting in the writer's queue. Event ids:
 *
 * - `<epoch>.<seq>.<arrived ms>:<kind>:<row id>` for an event from the hub:
 *   `epoch` is this process's start (ms), `seq` the arrival sequence (from 1),
 *   `arrived ms` the service's clock at arrival. Within one process the ring
 *   resumes it exactly; otherwise (the ring has moved on, or another process
 *   sent it) the database resumes it by insert time from `arrived ms`.
 * - `db.<inserted µs>:<kind>:<row id>` for an event replayed from the
 *   database: its row's `created_at`, the position of a keyset resume.
 *
 * Each subscriber has a bounded queue. `offer` never waits: a subscriber
 * whose queue is full is ended with a reason (its stream drains what it has,
 * then says `dropped`; it reconnects with Last-Event-ID and resumes), so a
 * slow client never slows the pipeline or another client. A subscription is
 * scoped: it ends with the response stream that holds it.
 */
import { Cause, Clock, Config, Context, Data, Effect, Layer, Metric, Queue, Schedule, Scope, Stream } from "effect"
import { type Alert, alertJson } from "../alerts/delivery.ts"
import type { RowBatch, TradeBarRow } from "../domain/rows.ts"
import type { Gap } from "../gaps/ledger.ts"
import { FeedRegistry, type FeedStatus } from "../feed/status.ts"

export const streamKinds = ["large_trade", "liquidation", "funding", "open_interest", "gap", "alert", "feed_state", "spread", "arbitrage", "bar"] as const
export type StreamKind = (typeof streamKinds)[number]

/** An event as a producer hands it over: the hub gives it its sequence and id. */
export interface StreamEventInput {
  readonly kind: StreamKind
  /** The row's id in its table (a gap's, an alert's id; a feed's name): with the kind, the event's identity. */
  readonly rowId: string
  readonly exchange: string | null
  readonly symbol: string | null
  /** For `min_value_usd`: a trade's or liquidation's value, open interest in USD. */
  readonly valueUsd: number | null
  readonly time: number
  /** The API's row shape, as JSON. */
  readonly data: string
  /**
   * A bar's contribution (pipeline/bars.ts contributionId): a bar's row changes in place, so its key does
   * not say which trades an event holds; a resume tells by this whether a stored bar already holds it.
   */
  readonly contribution?: string | undefined
}

export interface StreamEvent extends StreamEventInput {
  /** The SSE id (see the module comment); absent on the feed-state snapshot sent at connect. */
  readonly id: string | undefined
  /** `<kind>:<row id>`: the same row replayed from the database has the same key. */
  readonly key: string
}

/** Where a Last-Event-ID says the client stands. */
export type EventPosition =
  | { readonly _tag: "Live"; readonly epoch: number; readonly seq: number; readonly arrivedAt: number; readonly key: string }
  | { readonly _tag: "Stored"; readonly insertedMicros: bigint; readonly kind: StreamKind; readonly rowId: string; readonly key: string }
  /** An id from before arrival sequences (`<ms>:<kind>:<row id>`): resumed from the database from that time. */
  | { readonly _tag: "Legacy"; readonly time: number; readonly key: string }

const isKind = (s: string): s is StreamKind => (streamKinds as ReadonlyArray<string>).includes(s)

/** A Last-Event-ID this stream sent, or undefined. */
export const parseEventId = (id: string): EventPosition | undefined => {
  const first = id.indexOf(":")
  const second = id.indexOf(":", first + 1)
  if (first < 0 || second < 0) return undefined
  const position = id.slice(0, first)
  const kind = id.slice(first + 1, second)
  const rowId = id.slice(second + 1)
  if (!isKind(kind) || rowId.length === 0) return undefined
  const key = `${kind}:${rowId}`
  let m: RegExpExecArray | null
  if ((m = /^(\d{1,16})\.(\d{1,16})\.(\d{1,16})$/.exec(position)) !== null) {
    return { _tag: "Live", epoch: Number(m[1]), seq: Number(m[2]), arrivedAt: Number(m[3]), key }
  }
  if ((m = /^db\.(\d{1,19})$/.exec(position)) !== null) return { _tag: "Stored", insertedMicros: BigInt(m[1]!), kind, rowId, key }
  if (/^\d{1,16}$/.test(position)) return { _tag: "Legacy", time: Number(position), key }
  return undefined
}

export const storedEventId = (insertedMicros: bigint, kind: StreamKind, rowId: string) => `db.${insertedMicros}:${kind}:${rowId}`

export interface StreamFilter {
  readonly kinds: ReadonlySet<StreamKind>
  readonly exchange: string | undefined
  /** An exact symbol or a base asset (the API's rule): a predicate built by the caller. */
  readonly symbol: ((symbol: string) => boolean) | undefined
  readonly minValueUsd: number | undefined
}

export const matchesFilter = (filter: StreamFilter, event: StreamEventInput): boolean =>
  filter.kinds.has(event.kind) &&
  (filter.exchange === undefined || event.exchange === null || event.exchange === filter.exchange) &&
  (filter.symbol === undefined || event.symbol === null || event.kind === "feed_state" || filter.symbol(event.symbol)) &&
  (filter.minValueUsd === undefined || event.valueUsd === null || event.valueUsd >= filter.minValueUsd)

/** Why the hub ended a subscriber's queue. */
export class ClientDropped extends Data.TaggedError("ClientDropped")<{ readonly reason: string }> {}

export class TooManyClients extends Data.TaggedError("TooManyClients")<{ readonly message: string }> {}

/**
 * What a reconnecting client missed, as far as the ring knows, fixed at the
 * instant it subscribed (the live queue holds everything after that instant,
 * so nothing falls between the two and nothing is in both).
 */
export type ResumePlan =
  /** The ring holds every event after the client's: these, in arrival order, filtered. */
  | { readonly _tag: "Ring"; readonly events: ReadonlyArray<StreamEvent> }
  /**
   * The ring has moved on (or the id is from another process, or from the
   * database): read the database first, then these ring events (newer than
   * the client's, filtered, in arrival order) that the database did not give.
   * `until` is the service clock at subscription: rows inserted later come live.
   */
  | { readonly _tag: "Database"; readonly ring: ReadonlyArray<StreamEvent>; readonly until: number }

export interface Subscription {
  /** The feeds' states now (no ids), so a client knows where it stands. */
  readonly snapshot: ReadonlyArray<StreamEvent>
  /** Present when the client gave a position to resume from. */
  readonly resume: ResumePlan | undefined
  /** Events after the subscription, in arrival order; fails with the reason when the hub drops the client. */
  readonly live: Stream.Stream<StreamEvent, ClientDropped>
}

const connections = Metric.gauge("stream_connections", { description: "Clients connected to /api/v1/stream" })
const dropped = Metric.counter("stream_clients_dropped_total", { description: "Stream clients dropped, per reason (too slow: their buffer filled)", incremental: true })
export const delivered = Metric.counter("stream_events_total", { description: "Events sent to stream clients (live and replayed)", incremental: true })

export const streamConfig = Config.all({
  bufferEvents: Config.Int("STREAM_CLIENT_BUFFER").pipe(Config.withDefault(10_000)),
  maxClients: Config.Int("STREAM_MAX_CLIENTS").pipe(Config.withDefault(100)),
  ringEvents: Config.Int("STREAM_RING_EVENTS").pipe(Config.withDefault(50_000)),
  heartbeatMs: Config.Int("STREAM_HEARTBEAT_MS").pipe(Config.withDefault(15_000)),
  replayLimit: Config.Int("STREAM_REPLAY_LIMIT").pipe(Config.withDefault(10_000)),
  /** How far before a live id's arrival time a database resume starts (clock skew between service and database). */
  resumeOverlapMs: Config.Int("STREAM_RESUME_OVERLAP_MS").pipe(Config.withDefault(2_000)),
  /** A database resume reads rows whose exchange time is at most this far before the resume point (so the time indexes serve it). */
  replayLatenessHours: Config.Number("STREAM_REPLAY_MAX_LATENESS_HOURS").pipe(Config.withDefault(6))
})

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

/** A batch's rows as stream events, in the API's row shapes. */
export const eventsOf = (batch: RowBatch): Array<StreamEventInput> => {
  const out: Array<StreamEventInput> = []
  for (const r of batch.large_trades) {
    const kind = r.isLiquidation ? "liquidation" : "large_trade"
    out.push({
      rowId: r.id, kind, exchange: r.exchange, symbol: r.symbol, valueUsd: r.valueUsd, time: r.timestamp,
      data: JSON.stringify({ kind, exchange: r.exchange, symbol: r.symbol, side: r.side, price: r.price, size: r.size, size_base: r.sizeBase ?? null, size_unit: r.sizeUnit ?? null, value_usd: r.valueUsd, timestamp: iso(r.timestamp), trade_id: r.tradeId, is_liquidation: r.isLiquidation, metadata: r.metadata })
    })
  }
  for (const r of batch.funding_rates) {
    out.push({
      rowId: r.id, kind: "funding", exchange: r.exchange, symbol: r.symbol, valueUsd: null, time: r.timestamp,
      data: JSON.stringify({ kind: "funding", exchange: r.exchange, symbol: r.symbol, rate: r.rate, predicted_rate: r.predictedRate, timestamp: iso(r.timestamp), next_funding_time: iso(r.nextFundingTime), metadata: r.metadata })
    })
  }
  for (const r of batch.open_interest) {
    out.push({
      rowId: r.id, kind: "open_interest", exchange: r.exchange, symbol: r.symbol, valueUsd: r.openInterestUsd, time: r.timestamp,
      data: JSON.stringify({ kind: "open_interest", exchange: r.exchange, symbol: r.symbol, open_interest: r.openInterest, open_interest_base: r.openInterestBase ?? null, open_interest_usd: r.openInterestUsd, timestamp: iso(r.timestamp), metadata: r.metadata })
    })
  }
  crossVenueEvents(batch, out)
  // A minute bar once written; `correction: true` carries only trades that came after it, or a minute not watched from
  // its start (to add), else the bar (to replace).
  for (const r of batch.trade_bars) {
    out.push({ rowId: r.id, kind: "bar", exchange: r.exchange, symbol: r.symbol, valueUsd: r.volumeUsd, time: r.timestamp, data: JSON.stringify(barEventJson(r)), contribution: r.contribution })
  }
  return out
}

/** A minute bar (or its correction) as the stream sends it. */
export const barEventJson = (r: TradeBarRow) => ({
  kind: "bar", exchange: r.exchange, symbol: r.symbol, base: r.base, interval: "1m", start: iso(r.timestamp), end: iso(r.timestamp + 60_000),
  open: r.open, high: r.high, low: r.low, close: r.close, volume_base: r.volumeBase, volume_usd: r.volumeUsd, buy_volume_usd: r.buyVolumeUsd,
  sell_volume_usd: r.sellVolumeUsd, volume_delta_usd: Math.round((r.buyVolumeUsd - r.sellVolumeUsd) * 100) / 100, trade_count: r.tradeCount,
  long_liquidations_usd: r.longLiquidationsUsd, short_liquidations_usd: r.shortLiquidationsUsd, liquidation_count: r.liquidationCount,
  observed_whole: r.observedWhole, partial_reason: r.partialReason, correction: r.correction, unvalued_count: r.unvaluedCount ?? 0,
  liquidations_sampled: r.liquidationsSampled ?? false
})

/**
 * Spread samples and arbitrage changes (analytics/). A sample is sent only
 * when it changed (a price, a size or the set of books: `changed`): at 1 Hz
 * per asset an unchanged book would repeat itself to every client, and every
 * stored sample is in the table and at /exchange/spreads. An opportunity is sent at
 * open, at each new peak, every 10 s while open and at close; its event's row
 * id is `<opportunity id>@<last seen ms>`, one per change. Neither kind is
 * resumed from the database (a sample's history is at the endpoint; an
 * opportunity's row is updated in place, so its insert time does not order
 * its changes): a resume gets them from the ring. A resume the ring cannot
 * serve exactly (its position rolled out, another process, a db.* id) first
 * gets one snapshot event of the opportunities open now (hub openSnapshot),
 * and of the ring's spread and arbitrage events only those sampled after the
 * position's time.
 */
/** Kinds the database does not replay: only the ring has them (see crossVenueEvents). */
const ringOnlyKinds: ReadonlySet<StreamKind> = new Set(["spread", "arbitrage"])

const crossVenueEvents = (batch: RowBatch, out: Array<StreamEventInput>) => {
  for (const r of batch.exchange_spreads) {
    if (!r.changed) continue
    out.push({
      rowId: r.id, kind: "spread", exchange: null, symbol: r.asset, valueUsd: null, time: r.timestamp,
      data: JSON.stringify({ kind: "spread", id: r.id, asset: r.asset, timestamp: iso(r.timestamp), quotes: r.quotes, pairs: r.pairs, excluded: r.excluded })
    })
  }
  for (const r of batch.arbitrage_opportunities) {
    out.push({
      rowId: `${r.id}@${r.lastSeenAt}`, kind: "arbitrage", exchange: null, symbol: r.asset, valueUsd: r.sizeUsd, time: r.lastSeenAt,
      data: JSON.stringify({
        kind: "arbitrage", id: r.id, asset: r.asset, market: r.market, status: r.closedAt === null ? "open" : "closed",
        buy_exchange: r.buyExchange, buy_symbol: r.buySymbol, sell_exchange: r.sellExchange, sell_symbol: r.sellSymbol,
        opened_at: iso(r.openedAt), closed_at: iso(r.closedAt), close_reason: r.closeReason, last_seen_at: iso(r.lastSeenAt),
        open_edge_bps: r.openEdgeBps, peak_edge_bps: r.peakEdgeBps, peak_at: iso(r.peakAt), buy_price: r.buyPrice, sell_price: r.sellPrice,
        size_base: r.sizeBase, size_usd: r.sizeUsd, buy_fee_bps: r.buyFeeBps, sell_fee_bps: r.sellFeeBps, metadata: r.metadata
      })
    })
  }
}

/** A feed's state as a stream event. */
const feedStateEvent = (feed: FeedStatus, now: number): StreamEventInput => ({
  rowId: feed.feed, kind: "feed_state", exchange: feed.venue, symbol: null, valueUsd: null, time: now,
  data: JSON.stringify({ kind: "feed_state", feed: feed.feed, venue: feed.venue, state: feed.state, reconnects: feed.reconnects, last_error: feed.lastError, timestamp: iso(now) })
})

export const gapStreamEvent = (gap: Gap): StreamEventInput => ({
  rowId: gap.id,
  kind: "gap",
  exchange: gap.exchange,
  symbol: gap.symbol,
  valueUsd: null,
  time: gap.start,
  data: JSON.stringify({
    kind: "gap", id: gap.id, exchange: gap.exchange, channel: gap.channel, symbol: gap.symbol, start: iso(gap.start), end: iso(gap.end), cause: gap.cause,
    estimated_missing: gap.estimatedMissing, repair_status: gap.status, repaired_count: gap.repairedCount, metadata: gap.metadata
  })
})

export const alertStreamEvent = (alert: Alert): StreamEventInput => ({
  rowId: alert.id,
  kind: "alert",
  exchange: alert.exchange,
  symbol: alert.symbol,
  valueUsd: null,
  time: alert.firedAt,
  data: JSON.stringify({ kind: "alert", ...alertJson(alert) })
})

interface Subscriber {
  readonly filter: StreamFilter
  readonly queue: Queue.Queue<StreamEvent, ClientDropped | Cause.Done>
}

export class StreamHub extends Context.Service<StreamHub, {
  /** A pipeline batch: sequenced, kept in the ring and fanned out at once; never waits. */
  readonly offer: (batch: RowBatch) => void
  /** One event (a gap, an alert): the same; never waits. */
  readonly offerEvent: (event: StreamEventInput) => void
  /**
   * A new client for as long as the caller's scope lives, resuming after
   * `after` when given; fails when there are `STREAM_MAX_CLIENTS` already.
   */
  readonly subscribe: (filter: StreamFilter, after: EventPosition | undefined) => Effect.Effect<Subscription, TooManyClients, Scope.Scope>
  readonly clients: () => number
}>()("market-data/stream/StreamHub") {
  static readonly layer = Layer.effect(StreamHub, Effect.gen(function*() {
    const config = yield* streamConfig
    const registry = yield* FeedRegistry
    const epoch = yield* Clock.currentTimeMillis
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    const droppedTooSlow = Metric.withAttributes(dropped, { reason: "too_slow" })
    const subscribers = new Set<Subscriber>()
    const ringSize = Math.max(1, config.ringEvents)
    const ring: Array<StreamEvent | undefined> = new Array(ringSize)
    let seq = 0
    const oldestInRing = () => Math.max(1, seq - ringSize + 1)
    /** The last event of each opportunity open now (removed at its close): the snapshot an inexact resume starts with. */
    const openOpportunities = new Map<string, StreamEvent>()
    const tooSlow = `too slow: ${config.bufferEvents} events waiting; reconnect and resume from the last event id received`

    const publish = (inputs: ReadonlyArray<StreamEventInput>) => {
      if (inputs.length === 0) return
      const arrivedAt = clock.currentTimeMillisUnsafe()
      for (const input of inputs) {
        seq++
        const key = `${input.kind}:${input.rowId}`
        const event: StreamEvent = { ...input, id: `${epoch}.${seq}.${arrivedAt}:${key}`, key }
        ring[seq % ringSize] = event
        if (event.kind === "arbitrage") {
          const opportunity = JSON.parse(event.data) as { readonly id: string; readonly status: string }
          if (opportunity.status === "open") openOpportunities.set(opportunity.id, event)
          else openOpportunities.delete(opportunity.id)
        }
        for (const subscriber of subscribers) {
          if (!matchesFilter(subscriber.filter, event)) continue
          if (!Queue.offerUnsafe(subscriber.queue, event)) {
            // Full: ended alone. Its stream sends what it holds, then the reason.
            subscribers.delete(subscriber)
            Queue.failCauseUnsafe(subscriber.queue, Cause.fail(new ClientDropped({ reason: tooSlow })))
            // Counted now, not once the client has read its way to the reason: one that never reads again counts too.
            droppedTooSlow.updateUnsafe(1, context)
            connections.updateUnsafe(subscribers.size, context)
          }
        }
      }
    }

    /** Ring events with sequence in (after, seq], filtered, oldest first. */
    const ringAfter = (after: number, filter: StreamFilter): Array<StreamEvent> => {
      const out: Array<StreamEvent> = []
      for (let s = Math.max(after + 1, oldestInRing()); s <= seq; s++) {
        const event = ring[s % ringSize]!
        if (matchesFilter(filter, event)) out.push(event)
      }
      return out
    }

    const planFor = (after: EventPosition, filter: StreamFilter): ResumePlan => {
      if (after._tag === "Live" && after.epoch === epoch && after.seq <= seq && after.seq + 1 >= oldestInRing()) {
        return { _tag: "Ring", events: ringAfter(after.seq, filter) }
      }
      const sameProcess = after._tag === "Live" && after.epoch === epoch
      // Ring-only kinds (spread, arbitrage) from a position the ring cannot place (another process, or the
      // database): only those sampled after the client's position time; older ones it had or no longer needs
      // (the snapshot gives the open opportunities). Never resent out of order behind newer rows.
      const positionMs = after._tag === "Stored" ? Number(after.insertedMicros / 1000n) : after._tag === "Live" ? after.arrivedAt : after.time
      const ring = ringAfter(sameProcess ? after.seq : 0, filter)
        .filter((e) => sameProcess || !ringOnlyKinds.has(e.kind) || e.time > positionMs)
      return { _tag: "Database", ring, until: clock.currentTimeMillisUnsafe() }
    }

    /**
     * One `arbitrage` event (no id, row id `open-snapshot`) listing the opportunities open now that match the
     * filter, sent first on a resume the ring cannot serve exactly: the client may have missed closes.
     */
    const openSnapshot = (filter: StreamFilter, now: number): StreamEvent => {
      const open = [...openOpportunities.values()].filter((e) => matchesFilter(filter, e)).map((e) => JSON.parse(e.data) as unknown)
      return {
        rowId: "open-snapshot", kind: "arbitrage", exchange: null, symbol: null, valueUsd: null, time: now, id: undefined, key: "arbitrage:open-snapshot",
        data: JSON.stringify({
          kind: "arbitrage", snapshot: true, timestamp: iso(now), open,
          reason: "resumed from a position the ring could not serve exactly: these are the opportunities open now; any other you hold as open has closed (see /exchange/arbitrage)"
        })
      }
    }

    // Feed states, from the registry once a second: an event when one changes.
    const states = new Map<string, string>()
    yield* Effect.forkScoped(Effect.repeat(
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const events: Array<StreamEventInput> = []
        for (const feed of registry.all()) {
          if (states.get(feed.feed) === feed.state) continue
          states.set(feed.feed, feed.state)
          events.push(feedStateEvent(feed, now))
        }
        publish(events)
      }),
      Schedule.spaced("1 second")
    ))

    const subscribe = (filter: StreamFilter, after: EventPosition | undefined) =>
      Effect.gen(function*() {
        const queue = yield* Queue.bounded<StreamEvent, ClientDropped | Cause.Done>(Math.max(1, config.bufferEvents))
        const subscriber: Subscriber = { filter, queue }
        // Registered, planned and snapshotted in one synchronous step: no event can fall between resume and live.
        const registered = yield* Effect.acquireRelease(
          Effect.sync(() => {
            if (subscribers.size >= config.maxClients) return undefined
            subscribers.add(subscriber)
            const now = clock.currentTimeMillisUnsafe()
            const resume = after === undefined ? undefined : planFor(after, filter)
            const feeds = registry.all().map((feed): StreamEvent => {
              const input = feedStateEvent(feed, now)
              return { ...input, id: undefined, key: `feed_state:${input.rowId}` }
            }).filter((event) => matchesFilter(filter, event))
            return {
              snapshot: resume?._tag === "Database" && filter.kinds.has("arbitrage") ? [...feeds, openSnapshot(filter, now)] : feeds,
              resume
            }
          }).pipe(Effect.tap((r) => r === undefined ? Effect.void : Metric.update(connections, subscribers.size))),
          (r) => r === undefined ? Effect.void : Effect.sync(() => {
            subscribers.delete(subscriber)
            Queue.endUnsafe(queue)
          }).pipe(Effect.andThen(Effect.suspend(() => Metric.update(connections, subscribers.size))))
        )
        if (registered === undefined) return yield* Effect.fail(new TooManyClients({ message: `the stream has ${config.maxClients} clients already (STREAM_MAX_CLIENTS)` }))
        return { ...registered, live: Stream.fromQueue(queue) } satisfies Subscription
      })

    return StreamHub.of({
      offer: (batch) => publish(eventsOf(batch)),
      offerEvent: (event) => publish([event]),
      clients: () => subscribers.size,
      subscribe
    })
  }))
}
