/**
 * OKX v5 live wiring (`okx`: spot, perpetual swaps and dated futures, linear
 * and inverse): instruments from `/api/v5/public/instruments` per type, then
 * public WebSockets (/ws/v5/public) of at most OKX_INSTRUMENTS_PER_CONNECTION
 * instruments each, carrying `books`, `trades`, and for derivatives
 * `open-interest` and `mark-price`, for swaps `funding-rate`; one connection
 * also carries `liquidation-orders` for every derivative type configured.
 *
 * Rules from OKX's docs (https://www.okx.com/docs-v5/en/#overview-websocket):
 * text `ping` when nothing else is sent (the server drops a connection silent
 * for 30 s; it answers `pong`); subscriptions batched, well under the 64 KB
 * request limit; outgoing requests paced (OKX allows 480 subscribe requests
 * per connection per hour and 3 connection attempts per second per IP: the
 * pacer keeps to 3 a second and resubscriptions are coalesced). A lost trade
 * (ids are contiguous per instrument) is fetched from
 * `/api/v5/market/history-trades` by trade id; REST is paced at 10 requests a
 * second (OKX: 20 per 2 s per IP for these endpoints).
 */
import { Clock, Config, Duration, Effect, Result, Schema } from "effect"
import { superviseFeed, type FeedSpec } from "../../feed/connection.ts"
import { makePacer, makeResubscriber } from "../../feed/pacing.ts"
import { FreshnessMonitor } from "../../feed/freshness.ts"
import { FeedRegistry } from "../../feed/status.ts"
import type { GapChannel } from "../../gaps/ledger.ts"
import { DecodeError } from "../../domain/errors.ts"
import type { Instrument } from "../../domain/instruments.ts"
import type { Trade } from "../../domain/records.ts"
import { makeFrameHandler, makeProcessor, reportDropped, type VenueRuntime } from "../../pipeline/runtime.ts"
import { chunk, connectionOpened, makeVenueGaps, makeScopedRunner, recordResync, symbolsConfig, tickBooks, watchStaleStreams } from "../../pipeline/venue-kit.ts"
import type { RecordProcessor } from "../../pipeline/processor.ts"
import { defaultGateOptions, makeRestGate } from "../../rest/gate.ts"
import { retryPatiently } from "../../rest/fetch.ts"
import type { VenueDefinition } from "../venue.ts"
import { decodeInstruments, instrumentFrom, restData } from "./instruments.ts"
import { makeDecoder } from "./normalize.ts"
import { seqIdRule } from "./rules.ts"
import { HistoryTrade } from "./wire.ts"

const defaultInstruments = [
  "BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "DOGE-USDT",
  "BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT-SWAP", "XRP-USDT-SWAP", "DOGE-USDT-SWAP"
].join(",")

export const okxConfig = Config.all({
  instruments: symbolsConfig("OKX_INSTRUMENTS", defaultInstruments),
  wsUrl: Config.String("OKX_WS_URL").pipe(Config.withDefault("wss://ws.okx.com:8443")),
  restUrl: Config.String("OKX_REST_URL").pipe(Config.withDefault("https://www.okx.com")),
  instrumentsPerConnection: Config.Int("OKX_INSTRUMENTS_PER_CONNECTION").pipe(Config.withDefault(20)),
  pingSeconds: Config.Number("OKX_PING_SECONDS").pipe(Config.withDefault(20)),
  staleAfterMs: Config.Number("OKX_STALE_SECONDS").pipe(Config.withDefault(30), Config.map((s) => s * 1000)),
  outgoingMessagesPerSecond: Config.Int("OKX_WS_MESSAGES_PER_SECOND").pipe(Config.withDefault(3)),
  requestsPerSecond: Config.Int("OKX_REST_REQUESTS_PER_SECOND").pipe(Config.withDefault(10)),
  maxRepairTrades: Config.Int("GAP_REPAIR_MAX_TRADES").pipe(Config.withDefault(100_000))
})

const decodeHistory = Schema.decodeUnknownResult(Schema.Array(HistoryTrade))

/**
 * Fills from history-trades, grouped as the `trades` channel groups them (one
 * taker order at one price: consecutive ids with the same time, side and
 * price), so a repaired stretch is stored as the live feed would have stored it.
 */
export const aggregateFills = (venue: string, fills: ReadonlyArray<typeof HistoryTrade.Type>): Array<Trade> => {
  const sorted = [...fills].sort((a, b) => Number(a.tradeId) - Number(b.tradeId))
  const out: Array<Trade> = []
  for (const f of sorted) {
    const id = Number(f.tradeId)
    const last = out.at(-1)
    if (last !== undefined && last.sequence === id - 1 && last.timestamp === f.ts && last.side === f.side && last.price === f.px) {
      const fills = Number(last.details.fills ?? 1) + 1
      out[out.length - 1] = { ...last, tradeId: f.tradeId, sequence: id, firstSequence: last.firstSequence ?? last.sequence!, size: last.size + f.sz, details: { ...last.details, fills } }
      continue
    }
    out.push({ kind: "trade", venue, symbol: f.instId, tradeId: f.tradeId, sequence: id, price: f.px, size: f.sz, side: f.side, timestamp: f.ts, details: { source: "history-trades", fills: 1 } })
  }
  return out
}

export const runOkx = (definition: VenueDefinition) => (runtime: VenueRuntime) =>
  Effect.gen(function*() {
    const venue = definition.id
    const config = yield* okxConfig
    const registry = yield* FeedRegistry
    const rest = config.restUrl.replace(/\/$/, "")
    const gate = yield* makeRestGate({ ...defaultGateOptions(venue, config.requestsPerSecond), windowMs: 1000 })
    const getData = (url: string) =>
      gate.getJson(url, 1).pipe(Effect.flatMap((body) => {
        const data = restData(body)
        return Result.isSuccess(data)
          ? Effect.succeed(data.success)
          : Effect.fail(new DecodeError({ venue, channel: new URL(url).pathname, detail: data.failure, sample: JSON.stringify(body).slice(0, 200) }))
      }))

    const listed = new Map<string, Instrument>()
    const types = new Set(config.instruments.map((id) => (id.endsWith("-SWAP") ? "SWAP" : id.split("-").length === 3 ? "FUTURES" : "SPOT")))
    for (const type of types) {
      const url = `${rest}/api/v5/public/instruments?instType=${type}`
      const listings = yield* retryPatiently(`${venue} instruments ${type}`, gate.getJson(url, 1).pipe(Effect.flatMap((body) => {
        const decoded = decodeInstruments(body)
        return Result.isSuccess(decoded) ? Effect.succeed(decoded.success) : Effect.fail(new DecodeError({ venue, channel: "instruments", detail: decoded.failure, sample: "" }))
      })))
      if (listings.dropped > 0) yield* reportDropped(new DecodeError({ venue, channel: `instruments ${type}`, detail: listings.problem ?? "", sample: "", dropped: listings.dropped }))
      for (const listing of listings.kept) {
        const instrument = instrumentFrom(venue, listing)
        if (instrument === undefined) continue
        runtime.instruments.add(instrument)
        listed.set(instrument.symbol, instrument)
      }
    }
    const instruments = config.instruments.filter((id) => listed.has(id))
    const unknown = config.instruments.filter((id) => !listed.has(id))
    if (unknown.length > 0) yield* Effect.logError("OKX_INSTRUMENTS names instruments OKX does not list; they are skipped").pipe(Effect.annotateLogs({ venue, unknown: unknown.join(",") }))
    const wanted = new Set(instruments)

    // Missing ids from..to, newest first a page at a time (`after`: ids below it), grouped like the live feed.
    const fetchTrades = (instId: string, from: number, to: number, limit: number) =>
      Effect.gen(function*() {
        const fills: Array<typeof HistoryTrade.Type> = []
        let after = to + 1
        while (after > from && fills.length < limit) {
          const data = yield* getData(`${rest}/api/v5/market/history-trades?instId=${instId}&type=1&after=${after}&limit=100`)
          const decoded = decodeHistory(data)
          if (Result.isFailure(decoded)) return yield* new DecodeError({ venue, channel: "history-trades", detail: decoded.failure.message, sample: "" })
          const page = decoded.success.filter((t) => Number(t.tradeId) >= from && Number(t.tradeId) <= to)
          fills.push(...page)
          if (decoded.success.length === 0) break
          const oldest = Math.min(...decoded.success.map((t) => Number(t.tradeId)))
          if (oldest >= after) break
          after = oldest
        }
        return aggregateFills(venue, fills)
      })

    const gaps = yield* makeVenueGaps({ venue, runtime, fetchTrades, maxRepairTrades: config.maxRepairTrades, processor: () => processor })
    const decoder = makeDecoder(venue, { openInterestIntervalMs: runtime.settings.openInterestIntervalMs, wanted: (id) => wanted.has(id) })
    const okxDefinition: VenueDefinition = { ...definition, decodeFrame: decoder }

    const sends: Array<(message: string) => Effect.Effect<void>> = []
    const connectionOf = new Map<string, number>()
    const resubscribers = chunk(instruments, config.instrumentsPerConnection).map(() =>
      makeResubscriber({
        lingerMs: 100,
        maxKeys: 20,
        messages: (keys) => {
          const args = keys.map((key) => JSON.parse(key) as object)
          return [JSON.stringify({ op: "unsubscribe", args }), JSON.stringify({ op: "subscribe", args })]
        }
      })
    )
    const resubscribe = (channel: string, instId: string) =>
      Effect.suspend(() => {
        const index = connectionOf.get(instId)
        const send = index === undefined ? undefined : sends[index]
        return index === undefined || send === undefined ? Effect.void : resubscribers[index]!.request(JSON.stringify({ channel, instId }), send)
      })

    // The processor's hooks are synchronous: their work runs as fibers of this layer.
    const runner = yield* makeScopedRunner({ venue })

    const processor: RecordProcessor = makeProcessor(runtime, venue, {
      continuity: gaps.continuity,
      onBookLive: gaps.bookLive,
      sequenceRule: seqIdRule,
      // OKX states each interval (the distance between its two funding times, normalize.ts); 8 h where it does not.
      fundingIntervalHours: () => ({ hours: 8, source: "default" }),
      requestSnapshot: (symbol, reason) => {
        if (reason !== "initial") runner("book resubscription", resubscribe("books", symbol))
      },
      onResync: recordResync(venue, gaps, runner)
    })

    const groups = chunk(instruments, config.instrumentsPerConnection)
    const derivativeTypes = [...new Set(instruments.map((id) => listed.get(id)!).filter((i) => i.kind !== "spot").map((i) => (i.kind === "perpetual" ? "SWAP" : "FUTURES")))]
    for (const [index, group] of groups.entries()) {
      for (const id of group) connectionOf.set(id, index)
      const name = `${venue}/public#${index}`
      const status = registry.register(name, venue)
      const monitor = new FreshnessMonitor(runtime.settings.freshness)
      status.books = () => (processor.books?.status() ?? []).filter((b) => group.includes(b.symbol))
      status.freshness = monitor
      const handler = makeFrameHandler(okxDefinition, processor, name, runtime.emit, {
        monitor,
        onFresh: (channel, symbol, at) => gaps.streamFresh(channel as GapChannel, symbol, at)
      })
      const args: Array<Record<string, string>> = group.flatMap((instId) => {
        const kind = listed.get(instId)!.kind
        return [
          { channel: "books", instId },
          { channel: "trades", instId },
          ...(kind === "spot" ? [] : [{ channel: "open-interest", instId }, { channel: "mark-price", instId }]),
          ...(kind === "perpetual" ? [{ channel: "funding-rate", instId }] : [])
        ]
      })
      // Liquidations come per instrument type, for every instrument: one connection carries them.
      if (index === 0) for (const instType of derivativeTypes) args.push({ channel: "liquidation-orders", instType })
      const channels: Array<GapChannel> = index === 0 && derivativeTypes.length > 0 ? ["trades", "book", "funding", "liquidations"] : ["trades", "book", "funding"]
      const watchFreshness = watchStaleStreams({
        feed: name,
        monitor,
        status,
        gaps,
        processor,
        resubscribe: (channel, symbol) =>
          channel === "book" ? resubscribe("books", symbol) : channel === "trades" ? resubscribe("trades", symbol) : channel === "funding" ? resubscribe("funding-rate", symbol) : Effect.void
      })
      const spec: FeedSpec = {
        feed: name,
        venue,
        url: `${config.wsUrl.replace(/\/$/, "")}/ws/v5/public`,
        subscribeMessages: [],
        staleAfterMs: config.staleAfterMs,
        maxLifetimeMs: Number.MAX_SAFE_INTEGER,
        pacer: () => makePacer({ messages: config.outgoingMessagesPerSecond, perMs: 1000 }),
        openSession: (send) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            sends[index] = send
            connectionOpened({ status, gaps, processor, monitor, symbols: group, channels, now })
            for (const batch of chunk(args, 50)) yield* send(JSON.stringify({ op: "subscribe", args: batch }))
            yield* send("ping").pipe(Effect.delay(Duration.millis(config.pingSeconds * 1000)), Effect.forever, Effect.forkScoped)
            yield* watchFreshness
            return { onFrames: (frames: ReadonlyArray<string>, receivedAt: number) => handler(frames, receivedAt) }
          })
      }
      yield* superviseFeed(spec, status).pipe(Effect.forkScoped)
    }
    yield* tickBooks(processor, runtime)
    registry.setVenueState(venue, "running")
    yield* Effect.never
  })
