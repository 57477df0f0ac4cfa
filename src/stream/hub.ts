/**
 * The stream hub: live events for `GET /api/v1/stream` (Server-Sent Events),
 * fed from the pipeline's batches at the fan-out point (large trades,
 * liquidations, funding, open interest), from the gap ledger, the alert engine
 * and the feeds' state (polled once a second): never from the database.
 *
 * Each subscriber has a bounded buffer. `offer` only appends; a subscriber
 * whose buffer is full is dropped with a reason (it reconnects with
 * Last-Event-ID and resumes from the database) and counted: a slow client
 * never slows the pipeline or another client.
 *
 * An event's id is `<epoch ms>:<kind>:<row id>`: ordered by time, and enough
 * to resume from the database after a reconnect.
 */
import { Clock, Config, Context, Effect, Layer, Metric } from "effect"
import type { RowBatch } from "../domain/rows.ts"
import type { Gap } from "../gaps/ledger.ts"
import { FeedRegistry, type FeedStatus } from "../feed/status.ts"

export const streamKinds = ["large_trade", "liquidation", "funding", "open_interest", "gap", "alert", "feed_state"] as const
export type StreamKind = (typeof streamKinds)[number]

export interface StreamEvent {
  readonly id: string
  readonly kind: StreamKind
  readonly exchange: string | null
  readonly symbol: string | null
  /** For `min_value_usd`: a trade's or liquidation's value, open interest in USD. */
  readonly valueUsd: number | null
  readonly time: number
  /** The API's row shape, as JSON. */
  readonly data: string
}

export interface StreamFilter {
  readonly kinds: ReadonlySet<StreamKind>
  readonly exchange: string | undefined
  /** An exact symbol or a base asset (the API's rule): a predicate built by the caller. */
  readonly symbol: ((symbol: string) => boolean) | undefined
  readonly minValueUsd: number | undefined
}

export const matchesFilter = (filter: StreamFilter, event: StreamEvent): boolean =>
  filter.kinds.has(event.kind) &&
  (filter.exchange === undefined || event.exchange === null || event.exchange === filter.exchange) &&
  (filter.symbol === undefined || event.symbol === null || event.kind === "feed_state" || filter.symbol(event.symbol)) &&
  (filter.minValueUsd === undefined || event.valueUsd === null || event.valueUsd >= filter.minValueUsd)

export interface Subscription {
  /** Events waiting, oldest first; taken by the response stream. */
  readonly take: () => Promise<ReadonlyArray<StreamEvent> | { readonly dropped: string }>
  readonly close: () => void
}

const connections = Metric.gauge("stream_connections", { description: "Clients connected to /api/v1/stream" })
const dropped = Metric.counter("stream_clients_dropped_total", { description: "Stream clients dropped, per reason (too slow: their buffer filled)", incremental: true })
const delivered = Metric.counter("stream_events_total", { description: "Events queued for stream clients", incremental: true })

export const streamConfig = Config.all({
  bufferEvents: Config.Int("STREAM_CLIENT_BUFFER").pipe(Config.withDefault(10_000)),
  maxClients: Config.Int("STREAM_MAX_CLIENTS").pipe(Config.withDefault(100))
})

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

/** A batch's rows as stream events, in the API's row shapes. */
export const eventsOf = (batch: RowBatch): Array<StreamEvent> => {
  const out: Array<StreamEvent> = []
  for (const r of batch.large_trades) {
    const kind = r.isLiquidation ? "liquidation" : "large_trade"
    out.push({
      id: `${r.timestamp}:${kind}:${r.id}`, kind, exchange: r.exchange, symbol: r.symbol, valueUsd: r.valueUsd, time: r.timestamp,
      data: JSON.stringify({ kind, exchange: r.exchange, symbol: r.symbol, side: r.side, price: r.price, size: r.size, value_usd: r.valueUsd, timestamp: iso(r.timestamp), trade_id: r.tradeId, is_liquidation: r.isLiquidation, metadata: r.metadata })
    })
  }
  for (const r of batch.funding_rates) {
    out.push({
      id: `${r.timestamp}:funding:${r.id}`, kind: "funding", exchange: r.exchange, symbol: r.symbol, valueUsd: null, time: r.timestamp,
      data: JSON.stringify({ kind: "funding", exchange: r.exchange, symbol: r.symbol, rate: r.rate, predicted_rate: r.predictedRate, timestamp: iso(r.timestamp), next_funding_time: iso(r.nextFundingTime), metadata: r.metadata })
    })
  }
  for (const r of batch.open_interest) {
    out.push({
      id: `${r.timestamp}:open_interest:${r.id}`, kind: "open_interest", exchange: r.exchange, symbol: r.symbol, valueUsd: r.openInterestUsd, time: r.timestamp,
      data: JSON.stringify({ kind: "open_interest", exchange: r.exchange, symbol: r.symbol, open_interest: r.openInterest, open_interest_usd: r.openInterestUsd, timestamp: iso(r.timestamp), metadata: r.metadata })
    })
  }
  return out
}

/** A feed's state as a stream event. */
const feedStateEvent = (feed: FeedStatus, now: number): StreamEvent => ({
  id: `${now}:feed_state:${feed.feed}`, kind: "feed_state", exchange: feed.venue, symbol: null, valueUsd: null, time: now,
  data: JSON.stringify({ kind: "feed_state", feed: feed.feed, venue: feed.venue, state: feed.state, reconnects: feed.reconnects, last_error: feed.lastError, timestamp: iso(now) })
})

export const gapStreamEvent = (gap: Gap): StreamEvent => ({
  id: `${gap.start}:gap:${gap.id}`,
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

export class StreamHub extends Context.Service<StreamHub, {
  /** A pipeline batch: never waits. */
  readonly offer: (batch: RowBatch) => void
  /** One event (a gap, an alert): never waits. */
  readonly offerEvent: (event: StreamEvent) => void
  /** A new client, or the reason it cannot have one (too many clients). */
  readonly subscribe: (filter: StreamFilter) => Subscription | string
  readonly clients: () => number
}>()("market-data/stream/StreamHub") {
  static readonly layer = Layer.effect(StreamHub, Effect.gen(function*() {
    const config = yield* streamConfig
    const registry = yield* FeedRegistry
    interface Subscriber {
      readonly filter: StreamFilter
      queue: Array<StreamEvent>
      droppedFor: string | undefined
      wake: (() => void) | undefined
    }
    const subscribers = new Set<Subscriber>()
    const report = (effect: Effect.Effect<void>) => Effect.runFork(effect)

    const publish = (events: ReadonlyArray<StreamEvent>) => {
      if (subscribers.size === 0 || events.length === 0) return
      let queued = 0
      for (const subscriber of subscribers) {
        if (subscriber.droppedFor !== undefined) continue
        for (const event of events) {
          if (!matchesFilter(subscriber.filter, event)) continue
          if (subscriber.queue.length >= config.bufferEvents) {
            subscriber.droppedFor = `too slow: ${config.bufferEvents} events waiting; reconnect with Last-Event-ID to resume`
            report(Metric.update(Metric.withAttributes(dropped, { reason: "too_slow" }), 1))
            break
          }
          subscriber.queue.push(event)
          queued++
        }
        subscriber.wake?.()
      }
      if (queued > 0) report(Metric.update(delivered, queued))
    }

    // Feed states, from the registry once a second: an event when one changes.
    const states = new Map<string, string>()
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* Effect.sleep("1 second")
      const now = yield* Clock.currentTimeMillis
      const events: Array<StreamEvent> = []
      for (const feed of registry.all()) {
        if (states.get(feed.feed) === feed.state) continue
        states.set(feed.feed, feed.state)
        events.push(feedStateEvent(feed, now))
      }
      publish(events)
    })))

    return StreamHub.of({
      offer: (batch) => {
        if (subscribers.size > 0) publish(eventsOf(batch))
      },
      offerEvent: (event) => publish([event]),
      clients: () => subscribers.size,
      subscribe: (filter) => {
        if (subscribers.size >= config.maxClients) return `the stream has ${config.maxClients} clients already (STREAM_MAX_CLIENTS)`
        const subscriber: Subscriber = { filter, queue: [], droppedFor: undefined, wake: undefined }
        subscribers.add(subscriber)
        report(Metric.update(connections, subscribers.size))
        // The feeds' current states first, so a client knows where it stands.
        const now = Date.now()
        for (const feed of registry.all()) {
          const event = feedStateEvent(feed, now)
          if (matchesFilter(filter, event)) subscriber.queue.push(event)
        }
        return {
          take: () =>
            new Promise((resolve) => {
              const give = () => {
                subscriber.wake = undefined
                if (subscriber.droppedFor !== undefined) return resolve({ dropped: subscriber.droppedFor })
                const events = subscriber.queue
                subscriber.queue = []
                resolve(events)
              }
              if (subscriber.queue.length > 0 || subscriber.droppedFor !== undefined) give()
              else subscriber.wake = give
            }),
          close: () => {
            subscribers.delete(subscriber)
            subscriber.wake?.()
            report(Metric.update(connections, subscribers.size))
          }
        }
      }
    })
  }))
}
