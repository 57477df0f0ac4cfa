/**
 * Per-symbol order-book synchronisation from a REST snapshot plus a diff stream.
 * The venue supplies the sequence rules; this machine does the buffering, the
 * bridging, the gap detection, the per-symbol resync and the periodic top-N rows.
 * A gap in one symbol never touches another.
 */
import type { BookDelta, BookSnapshot } from "../domain/records.ts"
import { type OrderBookRow, timedRowId } from "../domain/rows.ts"
import type { BookView, LiveBookSource } from "./live.ts"
import { OrderBook } from "./orderbook.ts"

export type Verdict = "apply" | "drop" | "gap"

export interface SequenceRule {
  /** Judges a delta against a fresh snapshot's sequence, before any delta was applied to it. */
  readonly bridge: (snapshotSequence: number, delta: BookDelta) => Verdict
  /** Judges a delta against the last applied one. */
  readonly follows: (lastApplied: BookDelta, delta: BookDelta) => Verdict
  /**
   * The venue sends each book's snapshot on the stream itself (Coinbase) rather
   * than on request over REST: a snapshot is taken in any state and is a valid
   * book on its own, with no delta needed to bridge it.
   */
  readonly snapshotsInStream?: boolean
}

export type BookState = "initialising" | "buffering" | "syncing" | "live" | "resyncing" | "stale"

export interface BookSyncOptions {
  readonly venue: string
  readonly rule: SequenceRule
  /** Levels per side in stored rows. */
  readonly depth: number
  readonly snapshotIntervalMs: number
  /** Deltas kept while a snapshot is fetched; the oldest go first (they would be older than it anyway). */
  readonly maxBuffered: number
  readonly requestSnapshot: (symbol: string, reason: string) => void
  /** A resync began; `lastGoodAt` is the exchange time of the last delta applied before it. */
  readonly onResync?: (symbol: string, reason: string, lastGoodAt: number) => void
  /** The book (re)entered the live state at this exchange time. */
  readonly onLive?: ((symbol: string, at: number) => void) | undefined
}

export interface AuditResult {
  readonly symbol: string
  /** ok: every comparable level matches; diverged: some do not (the book resyncs); skipped: not comparable now. */
  readonly outcome: "ok" | "diverged" | "skipped"
  readonly compared: number
  readonly mismatched: number
  readonly detail: string
}

/** How long a book waits for a requested snapshot before asking again. */
const snapshotOverdueMs = 5_000

/** How many applied deltas each book remembers, so an audit can tell which levels moved after a snapshot. */
const recentDeltas = 256

/** The last `capacity` applied deltas, oldest first on read; a push never moves the others. */
class RecentDeltas {
  private readonly slots: Array<BookDelta | undefined>
  private next = 0
  private count = 0
  constructor(capacity: number) {
    this.slots = new Array<BookDelta | undefined>(capacity).fill(undefined)
  }
  get length(): number {
    return this.count
  }
  push(delta: BookDelta): void {
    this.slots[this.next] = delta
    this.next = (this.next + 1) % this.slots.length
    if (this.count < this.slots.length) this.count++
  }
  clear(): void {
    this.slots.fill(undefined)
    this.next = 0
    this.count = 0
  }
  toArray(): Array<BookDelta> {
    const out: Array<BookDelta> = []
    const start = (this.next - this.count + this.slots.length) % this.slots.length
    for (let i = 0; i < this.count; i++) out.push(this.slots[(start + i) % this.slots.length]!)
    return out
  }
}

class SymbolBook {
  state: BookState = "initialising"
  readonly book = new OrderBook()
  buffer: Array<BookDelta> = []
  snapshotSequence = 0
  lastApplied: BookDelta | undefined = undefined
  lastEventTime = 0
  /** Our clock when the last update for the synced book (or its snapshot) arrived; 0: not known. */
  lastReceivedAt = 0
  lastStoredSequence = -1
  readonly recent = new RecentDeltas(recentDeltas)
  nextDueAt = 0
  resyncs = 0
  /** When the book started waiting for a snapshot (0: not waiting, or not yet seen by `sample`). */
  waitingSince = 0
  readonly symbol: string
  constructor(symbol: string) {
    this.symbol = symbol
  }
}

export interface BookStatus {
  readonly symbol: string
  readonly state: BookState
  readonly sequence: number | null
  readonly bidLevels: number
  readonly askLevels: number
  readonly resyncs: number
}

export class BookSync implements LiveBookSource {
  private readonly books = new Map<string, SymbolBook>()

  private readonly options: BookSyncOptions

  constructor(options: BookSyncOptions) {
    this.options = options
  }

  private bookFor(symbol: string): SymbolBook {
    let entry = this.books.get(symbol)
    if (entry === undefined) {
      entry = new SymbolBook(symbol)
      this.books.set(symbol, entry)
    }
    return entry
  }

  /** `receivedAt`: our clock when the delta arrived (epoch ms; 0 when not known), for the live view's age. */
  onDelta(delta: BookDelta, receivedAt = 0): void {
    const entry = this.bookFor(delta.symbol)
    switch (entry.state) {
      case "live":
      case "syncing":
        entry.lastReceivedAt = receivedAt
        this.applyDelta(entry, delta)
        return
      case "initialising":
      case "stale":
        entry.state = "buffering"
        entry.buffer.push(delta)
        this.options.requestSnapshot(delta.symbol, "initial")
        return
      case "buffering":
      case "resyncing":
        entry.buffer.push(delta)
        if (entry.buffer.length > this.options.maxBuffered) entry.buffer.shift()
        return
    }
  }

  onSnapshot(snapshot: BookSnapshot, receivedAt = 0): void {
    const entry = this.bookFor(snapshot.symbol)
    const inStream = this.options.rule.snapshotsInStream === true
    if (!inStream && entry.state !== "buffering" && entry.state !== "resyncing") return
    const buffered = entry.buffer
    const first = buffered[0]
    // The snapshot must not predate the deltas we hold, or it cannot be bridged.
    if (first !== undefined && this.options.rule.bridge(snapshot.sequence, first) === "gap" && !this.bridgesLater(snapshot, buffered)) {
      this.options.requestSnapshot(snapshot.symbol, "snapshot older than buffered deltas")
      return
    }
    entry.book.replace(snapshot.bids, snapshot.asks)
    entry.snapshotSequence = snapshot.sequence
    entry.lastApplied = undefined
    entry.lastEventTime = snapshot.timestamp
    // Buffered deltas applied now are as current as the snapshot that bridged them.
    entry.lastReceivedAt = receivedAt
    entry.state = "syncing"
    entry.waitingSince = 0
    entry.buffer = []
    for (const delta of buffered) {
      this.applyDelta(entry, delta)
      if (entry.state !== "syncing" && entry.state !== "live") break
    }
    if (inStream && entry.state === "syncing") {
      if (entry.book.isCrossed()) return this.resync(entry, "crossed book", undefined)
      entry.state = "live"
      this.options.onLive?.(entry.symbol, snapshot.timestamp)
    }
  }

  /**
   * A requested snapshot can be lost like any message (a silent socket, a
   * dropped subscription answer): a book waiting too long asks again.
   */
  private chaseSnapshot(entry: SymbolBook, now: number): void {
    if (entry.waitingSince === 0) {
      entry.waitingSince = now
      return
    }
    if (now - entry.waitingSince < snapshotOverdueMs) return
    entry.waitingSince = now
    this.options.requestSnapshot(entry.symbol, "snapshot overdue")
  }

  /** Starts this book over from a new snapshot (the venue reported, or we saw, that its stream lost data). */
  resyncBook(symbol: string, reason: string): void {
    const entry = this.books.get(symbol)
    if (entry !== undefined) this.resync(entry, reason, undefined)
  }

  /** A snapshot may be older than the first buffered delta's start only if some later delta still bridges it. */
  private bridgesLater(snapshot: BookSnapshot, buffered: ReadonlyArray<BookDelta>): boolean {
    for (const delta of buffered) if (this.options.rule.bridge(snapshot.sequence, delta) === "apply") return true
    return false
  }

  private applyDelta(entry: SymbolBook, delta: BookDelta): void {
    const verdict = entry.lastApplied === undefined
      ? this.options.rule.bridge(entry.snapshotSequence, delta)
      : this.options.rule.follows(entry.lastApplied, delta)
    if (verdict === "drop") return
    if (verdict === "gap") {
      this.resync(entry, entry.lastApplied === undefined ? "delta does not bridge the snapshot" : "sequence gap", delta)
      return
    }
    entry.book.apply(delta.bids, delta.asks)
    entry.recent.push(delta)
    entry.lastApplied = delta
    // 0 is an unknown time (a venue placeholder): the book keeps the last one it knew.
    if (delta.timestamp > 0) entry.lastEventTime = delta.timestamp
    if (entry.state !== "live") {
      entry.state = "live"
      this.options.onLive?.(entry.symbol, delta.timestamp)
    }
    if (entry.book.isCrossed()) this.resync(entry, "crossed book", undefined)
  }

  private resync(entry: SymbolBook, reason: string, pending: BookDelta | undefined): void {
    entry.state = "resyncing"
    entry.recent.clear()
    entry.resyncs++
    entry.lastApplied = undefined
    entry.buffer = pending === undefined ? [] : [pending]
    this.options.onResync?.(entry.symbol, reason, entry.lastEventTime)
    this.options.requestSnapshot(entry.symbol, reason)
  }

  /**
   * Compares a live book with a REST snapshot of the venue's book at update id L.
   * Our book is usually a few diffs past L; the levels those diffs touched may
   * rightly differ, so only the untouched top levels are compared, exactly.
   * Any mismatch means the book is corrupt: it resyncs.
   */
  audit(snapshot: BookSnapshot, depth: number): AuditResult {
    const entry = this.books.get(snapshot.symbol)
    const skipped = (detail: string): AuditResult => ({ symbol: snapshot.symbol, outcome: "skipped", compared: 0, mismatched: 0, detail })
    if (entry === undefined || entry.state !== "live" || entry.lastApplied === undefined) return skipped("book not live")
    const local = entry.lastApplied.lastSequence
    if (local < snapshot.sequence) return skipped("snapshot is ahead of the local book")
    const since = entry.recent.toArray().filter((d) => d.lastSequence > snapshot.sequence)
    const oldest = since[0]
    if (since.length === entry.recent.length && oldest !== undefined && oldest.firstSequence > snapshot.sequence + 1) {
      return skipped("snapshot older than the remembered diffs")
    }
    const moved = { bids: new Set<number>(), asks: new Set<number>() }
    for (const delta of since) {
      for (const [price] of delta.bids) moved.bids.add(price)
      for (const [price] of delta.asks) moved.asks.add(price)
    }
    let compared = 0
    let mismatched = 0
    const examples: Array<string> = []
    for (const [name, theirs, ours, touched] of [
      ["bid", snapshot.bids, entry.book.bids.top(depth * 4), moved.bids],
      ["ask", snapshot.asks, entry.book.asks.top(depth * 4), moved.asks]
    ] as const) {
      const mine = new Map(ours)
      const venue = new Map(theirs.slice(0, depth))
      // Compare within the price range both sides cover, on levels no later diff touched.
      const boundary = theirs.slice(0, depth).at(-1)?.[0]
      if (boundary === undefined) continue
      const inRange = (price: number) => (name === "bid" ? price >= boundary : price <= boundary)
      const prices = new Set([...venue.keys(), ...[...mine.keys()].filter(inRange)])
      for (const price of prices) {
        if (touched.has(price)) continue
        compared++
        if (venue.get(price) !== mine.get(price)) {
          mismatched++
          if (examples.length < 3) examples.push(`${name} ${price}: venue ${venue.get(price) ?? "none"}, ours ${mine.get(price) ?? "none"}`)
        }
      }
    }
    if (mismatched > 0) this.resync(entry, "REST audit divergence", undefined)
    return {
      symbol: snapshot.symbol,
      outcome: mismatched > 0 ? "diverged" : "ok",
      compared,
      mismatched,
      detail: mismatched > 0 ? examples.join("; ") : `snapshot ${snapshot.sequence}, local ${local}, ${since.length} diffs since`
    }
  }

  /** The symbol's diffs stopped arriving: its book is no longer trusted; the next diff starts a fresh sync. */
  markStale(symbol: string): void {
    const entry = this.books.get(symbol)
    if (entry === undefined) return
    entry.state = "stale"
    entry.buffer = []
    entry.lastApplied = undefined
  }

  /** Forget every book (the socket that fed them is gone); the next delta starts a fresh sync. */
  resetAll(symbols?: ReadonlyArray<string>): void {
    for (const entry of this.books.values()) {
      if (symbols !== undefined && !symbols.includes(entry.symbol)) continue
      entry.state = "initialising"
      entry.buffer = []
      entry.lastApplied = undefined
    }
  }

  /** Emits a top-N row for each live book whose interval has come round and that changed since its last row. */
  sample(now: number, out: Array<OrderBookRow>): void {
    const interval = this.options.snapshotIntervalMs
    for (const entry of this.books.values()) {
      if (entry.state === "buffering" || entry.state === "resyncing") this.chaseSnapshot(entry, now)
      // A book whose exchange time is not known yet (a snapshot without time, no update since) has no row.
      if (entry.state !== "live" || now < entry.nextDueAt || entry.lastEventTime === 0) continue
      entry.nextDueAt = (Math.floor(now / interval) + 1) * interval
      const sequence = entry.lastApplied?.lastSequence ?? entry.snapshotSequence
      if (sequence === entry.lastStoredSequence) continue
      entry.lastStoredSequence = sequence
      out.push({
        id: timedRowId(this.options.venue, entry.symbol, entry.lastEventTime),
        exchange: this.options.venue,
        symbol: entry.symbol,
        bids: entry.book.bids.top(this.options.depth),
        asks: entry.book.asks.top(this.options.depth),
        timestamp: entry.lastEventTime,
        sequence,
        metadata: {
          book_state: entry.state,
          depth: this.options.depth,
          bid_levels_held: entry.book.bids.depth,
          ask_levels_held: entry.book.asks.depth,
          resyncs: entry.resyncs,
          source: this.options.rule.snapshotsInStream === true ? "websocket snapshot + updates" : "rest snapshot + websocket diffs"
        }
      })
    }
  }

  status(): Array<BookStatus> {
    return [...this.books.values()].map((entry) => ({
      symbol: entry.symbol,
      state: entry.state,
      sequence: entry.lastApplied?.lastSequence ?? (entry.state === "syncing" ? entry.snapshotSequence : null),
      bidLevels: entry.book.bids.depth,
      askLevels: entry.book.asks.depth,
      resyncs: entry.resyncs
    }))
  }

  liveSymbols(): Array<string> {
    return [...this.books.values()].filter((entry) => entry.state === "live").map((entry) => entry.symbol)
  }

  /** Read-only view for tests and audits. */
  bookOf(symbol: string): OrderBook | undefined {
    return this.books.get(symbol)?.book
  }

  stateOf(symbol: string): BookState | undefined {
    return this.books.get(symbol)?.state
  }

  /**
   * Every book's top as a fresh plain object (the live view, book/live.ts):
   * computed when read (a sampler's tick), never on the update path.
   */
  views(): Array<BookView> {
    const out: Array<BookView> = []
    for (const entry of this.books.values()) {
      const { bids, asks } = entry.book
      out.push({
        exchange: this.options.venue,
        symbol: entry.symbol,
        state: entry.state,
        bestBid: bids.best() ?? null,
        bidSize: bids.bestSize() ?? null,
        bestAsk: asks.best() ?? null,
        askSize: asks.bestSize() ?? null,
        exchangeTime: entry.lastEventTime === 0 ? null : entry.lastEventTime,
        receivedAt: entry.lastReceivedAt === 0 ? null : entry.lastReceivedAt,
        crossed: entry.book.isCrossed()
      })
    }
    return out
  }
}
