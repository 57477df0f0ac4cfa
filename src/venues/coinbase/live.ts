/**
 * Coinbase live wiring: products from REST, then connections of at most ten
 * products each (the original's advice), on either feed:
 *
 * - `advanced` (default): advanced-trade-ws.coinbase.com, `level2` + `market_trades`
 *   + `heartbeats`, public. Every message carries the connection's `sequence_num`;
 *   a jump means messages were lost: that connection's books resubscribe and the
 *   loss is a gap in the ledger.
 * - `exchange`: ws-feed.exchange.coinbase.com, `matches` + `heartbeat` + `level2_batch`
 *   (public), or `level2` when COINBASE_API_KEY/SECRET/PASSPHRASE are set (Coinbase
 *   requires authentication for `level2` since 2023-07-01).
 *
 * Both send a product's book snapshot in-stream after subscribing, so a resync
 * is an unsubscribe/subscribe of that one product. Trade ids are contiguous per
 * product: a jump is repaired from REST `/products/{id}/trades`.
 */
import { createHmac } from "node:crypto"
import { Clock, Config, Duration, Effect, Metric, Redacted, Schema } from "effect"
import { makePacer, makeResubscriber } from "../../feed/pacing.ts"
import { superviseFeed, type FeedSpec } from "../../feed/connection.ts"
import { FreshnessMonitor } from "../../feed/freshness.ts"
import { FeedRegistry } from "../../feed/status.ts"
import type { GapChannel } from "../../gaps/ledger.ts"
import type { Trade } from "../../domain/records.ts"
import { makeFrameHandler, makeProcessor, type VenueRuntime } from "../../pipeline/runtime.ts"
import { chunk, connectionOpened, makeVenueGaps, makeScopedRunner, recordResync, tickBooks, watchStaleStreams } from "../../pipeline/venue-kit.ts"
import type { RecordProcessor } from "../../pipeline/processor.ts"
import { tradesUnvalued } from "../../observability/metrics.ts"
import { defaultGateOptions, makeRestGate } from "../../rest/gate.ts"
import { fetchDecoded, retryPatiently } from "../../rest/fetch.ts"
import type { VenueDefinition } from "../venue.ts"
import { decodeProducts, decodeTradesPage, instrumentsFrom, restTradeRecord } from "./instruments.ts"
import { makeDecoder } from "./normalize.ts"
import { orderedRule } from "./rules.ts"

export const defaultProducts = "BTC-USD,ETH-USD,SOL-USD,XRP-USD,ADA-USD,DOGE-USD,AVAX-USD,LINK-USD,DOT-USD,LTC-USD,BCH-USD,UNI-USD"

export type CoinbaseFeedKind = "advanced" | "exchange"

const defaultWsUrl: Record<CoinbaseFeedKind, string> = {
  advanced: "wss://advanced-trade-ws.coinbase.com",
  exchange: "wss://ws-feed.exchange.coinbase.com"
}

export const coinbaseConfig = Config.all({
  feed: Config.schema(Schema.Literals(["advanced", "exchange"]), "COINBASE_FEED").pipe(Config.withDefault("advanced" as const)),
  products: Config.String("COINBASE_PRODUCTS").pipe(
    Config.withDefault(defaultProducts),
    Config.map((list) => [...new Set(list.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s.length > 0))])
  ),
  wsUrl: Config.String("COINBASE_WS_URL").pipe(Config.option),
  restUrl: Config.String("COINBASE_REST_URL").pipe(Config.withDefault("https://api.exchange.coinbase.com")),
  productsPerConnection: Config.Int("COINBASE_PRODUCTS_PER_CONNECTION").pipe(Config.withDefault(10)),
  staleAfterMs: Config.Number("COINBASE_STALE_SECONDS").pipe(Config.withDefault(30), Config.map((s) => s * 1000)),
  /** Coinbase's WebSocket takes 8 messages/s per IP unauthenticated: one under, for every connection together. */
  outgoingMessagesPerSecond: Config.Int("COINBASE_WS_MESSAGES_PER_SECOND").pipe(Config.withDefault(7)),
  // Coinbase's public REST allows 10 requests/s sustained (15 is only the burst).
  requestsPerSecond: Config.Int("COINBASE_REST_REQUESTS_PER_SECOND").pipe(Config.withDefault(10)),
  credentials: Config.all({
    key: Config.String("COINBASE_API_KEY"),
    secret: Config.Redacted("COINBASE_API_SECRET"),
    passphrase: Config.Redacted("COINBASE_PASSPHRASE")
  }).pipe(Config.option),
  maxRepairTrades: Config.Int("GAP_REPAIR_MAX_TRADES").pipe(Config.withDefault(100_000))
})

type Credentials = { readonly key: string; readonly secret: Redacted.Redacted<string>; readonly passphrase: Redacted.Redacted<string> }

/** The Exchange feed's signed subscribe fields: HMAC-SHA256 of `timestamp + GET + /users/self/verify`. */
export const signSubscription = (credentials: Credentials, nowMs: number) => {
  const timestamp = (nowMs / 1000).toFixed(3)
  const signature = createHmac("sha256", Buffer.from(Redacted.value(credentials.secret), "base64"))
    .update(`${timestamp}GET/users/self/verify`)
    .digest("base64")
  return { signature, key: credentials.key, passphrase: Redacted.value(credentials.passphrase), timestamp }
}

const sequenceKey = '"sequence_num":'

/** The envelope's sequence number, read in place (no parse, no copy): this runs for every frame. */
const sequenceOf = (frame: string): number | undefined => {
  const at = frame.indexOf(sequenceKey)
  if (at < 0 || at > 200) return undefined
  let n = 0
  let i = at + sequenceKey.length
  for (let c = frame.charCodeAt(i); c >= 48 && c <= 57; c = frame.charCodeAt(++i)) n = n * 10 + (c - 48)
  return i === at + sequenceKey.length ? undefined : n
}

export const runCoinbase = (definition: VenueDefinition) => (runtime: VenueRuntime) =>
  Effect.gen(function*() {
    const venue = definition.id
    const config = yield* coinbaseConfig
    const registry = yield* FeedRegistry
    const rest = config.restUrl.replace(/\/$/, "")
    const wsUrl = (config.wsUrl._tag === "Some" ? config.wsUrl.value : defaultWsUrl[config.feed]).replace(/\/$/, "")
    // Coinbase's public REST limit is per second, not per minute.
    const gate = yield* makeRestGate({ ...defaultGateOptions(venue, config.requestsPerSecond), windowMs: 1000 })

    const products = yield* retryPatiently(`${venue} products`, fetchDecoded(gate, `${rest}/products`, 1, decodeProducts))
    for (const instrument of instrumentsFrom(venue, products)) runtime.instruments.add(instrument)
    const symbols = config.products.filter((p) => runtime.instruments.get(venue, p) !== undefined)
    const unknown = config.products.filter((p) => !symbols.includes(p))
    if (unknown.length > 0) {
      yield* Effect.logError("configured products are not listed by the venue; skipped").pipe(
        Effect.annotateLogs({ venue, products: unknown.join(",") })
      )
      yield* Metric.update(Metric.withAttributes(tradesUnvalued, { venue, reason: "unknown_symbol" }), unknown.length)
    }
    if (symbols.length === 0) {
      registry.setVenueState(venue, "running")
      return yield* Effect.never
    }

    /** Trades `from..to` by id: REST pages newest first, walking back with `after` from `to + 1`. */
    const fetchTrades = (product: string, from: number, to: number, limit: number) =>
      Effect.gen(function*() {
        const trades: Array<Trade> = []
        let after = to + 1
        while (after > from && trades.length < limit) {
          const page = yield* fetchDecoded(gate, `${rest}/products/${product}/trades?after=${after}&limit=1000`, 1, decodeTradesPage)
          if (page.length === 0) break
          for (const t of page) if (t.trade_id >= from && t.trade_id <= to) trades.push(restTradeRecord(venue, product, t))
          after = Math.min(...page.map((t) => t.trade_id))
        }
        return trades.sort((a, b) => a.sequence! - b.sequence!).slice(0, limit)
      })

    const gaps = yield* makeVenueGaps({ venue, runtime, fetchTrades, maxRepairTrades: config.maxRepairTrades, processor: () => processor })

    // Each product's connection, so one book can be resubscribed alone.
    const senders = new Map<string, (message: string) => Effect.Effect<void>>()
    const bookChannel = config.feed === "advanced" ? "level2" : config.credentials._tag === "Some" ? "level2" : "level2_batch"
    const subscription = (type: "subscribe" | "unsubscribe", channel: string, productIds: ReadonlyArray<string>, now: number) =>
      JSON.stringify(
        config.feed === "advanced"
          ? { type, product_ids: productIds, channel }
          : {
            type,
            product_ids: productIds,
            channels: [channel],
            ...(channel === "level2" && config.credentials._tag === "Some" ? signSubscription(config.credentials.value, now) : {})
          }
      )
    // Resubscriptions of one connection gather while they wait and go out together, one list per channel
    // (a sequence_num jump resyncs every book of the connection: 2 messages, not 20).
    const resubscribers = new Map<string, ReturnType<typeof makeResubscriber>>()
    const resubscribeMessages = (keys: ReadonlyArray<string>, now: number) => {
      const byChannel = new Map<string, Array<string>>()
      for (const key of keys) {
        const [channel, product] = key.split("|") as [string, string]
        byChannel.set(channel, [...(byChannel.get(channel) ?? []), product])
      }
      return [...byChannel].flatMap(([channel, products]) => [
        subscription("unsubscribe", channel, products, now),
        subscription("subscribe", channel, products, now)
      ])
    }
    const resubscribe = (channel: string, product: string) =>
      Effect.suspend(() => {
        const send = senders.get(product)
        const resubscriber = resubscribers.get(product)
        return send === undefined || resubscriber === undefined ? Effect.void : resubscriber.request(`${channel}|${product}`, send)
      })
    const resubscribeBook = (product: string) => resubscribe(bookChannel, product)
    // Coinbase counts messages per IP (Advanced Trade: 8/s unauthenticated): one pacer for every connection.
    const pacer = makePacer({ messages: config.outgoingMessagesPerSecond, perMs: 1000 })

    // The processor's hooks are synchronous: their work runs as fibers of this layer.
    const runner = yield* makeScopedRunner({ venue })

    const processor: RecordProcessor = makeProcessor(runtime, venue, {
      continuity: gaps.continuity,
      onBookLive: gaps.bookLive,
      sequenceRule: orderedRule,
      // The snapshot of a fresh subscription is already on its way; only a resync needs a new one.
      requestSnapshot: (symbol, reason) => {
        if (reason !== "initial") runner("book resubscription", resubscribeBook(symbol))
      },
      onResync: recordResync(venue, gaps, runner)
    })

    // Exchange heartbeats carry each product's last trade id: trades lost at the tail of a burst show up too.
    const decoding: VenueDefinition = {
      ...definition,
      decodeFrame: makeDecoder(venue, {
        onHeartbeat: (product, lastTradeId, at) => gaps.continuity.venueReports(venue, product, lastTradeId, at),
        // The resync records the gap and resubscribes the product for a fresh snapshot.
        onBookLoss: (product) => {
          for (const p of product === undefined ? symbols : [product]) processor.books?.resyncBook(p, "undecodable book message")
        }
      })
    }
    const channels: ReadonlyArray<GapChannel> = ["trades", "book"]
    for (const [index, group] of chunk(symbols, Math.max(1, config.productsPerConnection)).entries()) {
      const name = `${venue}/${config.feed}#${index}`
      const status = registry.register(name, venue)
      status.books = () => (processor.books?.status() ?? []).filter((b) => group.includes(b.symbol))
      const monitor = new FreshnessMonitor(runtime.settings.freshness)
      status.freshness = monitor
      const handler = makeFrameHandler(decoding, processor, name, runtime.emit, {
        monitor,
        onFresh: (channel, symbol, at) => gaps.streamFresh(channel as GapChannel, symbol, at)
      })
      const tradeChannel = config.feed === "advanced" ? "market_trades" : "matches"
      const heartbeatChannel = config.feed === "advanced" ? "heartbeats" : "heartbeat"

      const watchFreshness = watchStaleStreams({
        feed: name,
        monitor,
        status,
        gaps,
        processor,
        resubscribe: (channel, product) =>
          channel === "book" ? resubscribeBook(product) : channel === "trades" ? resubscribe(tradeChannel, product) : Effect.void
      })
      const groupResubscriber = makeResubscriber({ lingerMs: 100, maxKeys: 100, messages: resubscribeMessages })
      for (const product of group) resubscribers.set(product, groupResubscriber)

      const spec: FeedSpec = {
        feed: name,
        venue,
        url: wsUrl,
        subscribeMessages: [],
        staleAfterMs: config.staleAfterMs,
        // Coinbase documents no connection lifetime; the heartbeat channel keeps quiet subscriptions open.
        maxLifetimeMs: Number.MAX_SAFE_INTEGER,
        pacer: () => pacer,
        openSession: (send) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            for (const product of group) senders.set(product, send)
            connectionOpened({ status, gaps, processor, monitor, symbols: group, channels, now })
            yield* send(subscription("subscribe", heartbeatChannel, group, now))
            yield* send(subscription("subscribe", tradeChannel, group, now))
            yield* send(subscription("subscribe", bookChannel, group, now))
            yield* watchFreshness
            if (config.feed === "exchange") return { onFrames: handler }
            // Advanced Trade numbers every message of the connection: a jump is lost data.
            const sessionScope = yield* Effect.scope
            let expected: number | undefined
            return {
              onFrames: (frames: ReadonlyArray<string>, receivedAt: number) =>
                Effect.gen(function*() {
                  let lost = false
                  for (const frame of frames) {
                    const n = sequenceOf(frame)
                    if (n === undefined) continue
                    if (expected !== undefined && n > expected) lost = true
                    expected = n + 1
                  }
                  yield* handler(frames, receivedAt)
                  if (!lost) return
                  yield* Effect.logWarning("messages lost on the connection (sequence_num jumped); resyncing its books").pipe(
                    Effect.annotateLogs({ feed: name })
                  )
                  for (const product of group) processor.books?.resyncBook(product, "sequence_num jump")
                  // The lost message may have been a trade with nothing after it yet: ask the venue's history,
                  // once the frames already in flight have landed (else their trades would look missing).
                  yield* Effect.forEach(group, (product) =>
                    fetchDecoded(gate, `${rest}/products/${product}/trades?limit=1`, 1, decodeTradesPage).pipe(
                      Effect.tap((page) =>
                        Effect.sync(() => {
                          if (page[0] !== undefined) gaps.continuity.venueReports(venue, product, page[0].trade_id, receivedAt, true)
                        })
                      ),
                      Effect.ignore
                    ), { discard: true }).pipe(Effect.delay(Duration.seconds(2)), Effect.forkIn(sessionScope))
                })
            }
          })
      }
      yield* superviseFeed(spec, status).pipe(Effect.forkScoped)
    }

    yield* tickBooks(processor, runtime)

    registry.setVenueState(venue, "running")
    yield* Effect.never
  })
