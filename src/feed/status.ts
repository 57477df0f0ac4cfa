/**
 * Live state of every feed (venue x channel group), read by /health and /metrics.
 * Plain mutable records: the frame loop touches them once per batch.
 */
import { Context, Layer } from "effect"
import type { BookStatus } from "../book/sync.ts"
import type { FreshnessMonitor } from "./freshness.ts"

export type FeedState = "connecting" | "connected" | "backoff" | "stopped"

export interface FeedStatus {
  readonly feed: string
  readonly venue: string
  state: FeedState
  connectedAt: number | null
  lastMessageAt: number | null
  messages: number
  reconnects: number
  /** Planned make-before-break rotations (not counted as reconnects: nothing is lost). */
  rotations: number
  /** Connections open right now: two during a rotation's overlap. */
  openSessions: number
  lastError: string | null
  /** Tag of the error that ended the previous session ("rotation" for a planned one). */
  lastCause: string | null
  books: () => ReadonlyArray<BookStatus>
  /** Per-stream paces and trade lags, once the venue's session has set them up. */
  freshness: FreshnessMonitor | null
  /** The streams the feed carries (channels x symbols), known once a connection of it has opened. */
  carries: { readonly channels: ReadonlyArray<string>; readonly symbols: ReadonlyArray<string> } | null
}

/**
 * Where shared start-up code (REST calls a venue cannot start without) says why its venue is not running
 * yet: the collectors provide one per venue, so `/health`, the dashboard and coverage can name the reason
 * ("failing: ... getaddrinfo ENOTFOUND ..."). `undefined` clears it. Outside a venue it does nothing.
 */
export const VenueProblem = Context.Reference<{ readonly report: (problem: string | undefined) => void }>(
  "market-data/feed/VenueProblem",
  { defaultValue: () => ({ report: () => undefined }) }
)

/** "degraded": running, but a source it depends on is failing (the reason says which, and why). */
export type VenueState = "starting" | "running" | "restarting" | "degraded"

export class FeedRegistry extends Context.Service<FeedRegistry, {
  readonly register: (feed: string, venue: string) => FeedStatus
  readonly all: () => ReadonlyArray<FeedStatus>
  /** A venue's own state: it is "starting" until its metadata has loaded and its feeds run; `reason` says why it is not plainly running. */
  readonly setVenueState: (venue: string, state: VenueState, reason?: string) => void
  readonly venues: () => ReadonlyMap<string, VenueState>
  /** Why each venue that has a reason is in its state (shown in /health beside the states). */
  readonly venueReasons: () => ReadonlyMap<string, string>
}>()("market-data/feed/FeedRegistry") {
  static readonly layer = Layer.sync(FeedRegistry, () => {
    const feeds = new Map<string, FeedStatus>()
    const venues = new Map<string, VenueState>()
    const reasons = new Map<string, string>()
    return FeedRegistry.of({
      setVenueState: (venue, state, reason) => {
        venues.set(venue, state)
        if (reason === undefined) reasons.delete(venue)
        else reasons.set(venue, reason)
      },
      venues: () => venues,
      venueReasons: () => reasons,
      register: (feed, venue) => {
        const existing = feeds.get(feed)
        if (existing !== undefined) return existing
        const status: FeedStatus = {
          feed,
          venue,
          state: "connecting",
          connectedAt: null,
          lastMessageAt: null,
          messages: 0,
          reconnects: 0,
          rotations: 0,
          openSessions: 0,
          lastError: null,
          lastCause: null,
          books: () => [],
          freshness: null,
          carries: null
        }
        feeds.set(feed, status)
        return status
      },
      all: () => [...feeds.values()]
    })
  })
}
