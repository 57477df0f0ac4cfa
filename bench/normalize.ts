/**
 * Section 1: recorded real frames, per venue and channel, through JSON.parse
 * alone (the floor), through our decode -> normalize -> detect -> book apply,
 * and through the peers' normalizers (bench/peers.ts). Book state is rebuilt
 * before every pass, outside the timed loop, so every pass applies the same
 * deltas to the same snapshot.
 */
import { Effect } from "effect"
import type { NormalizedRecord } from "../src/domain/records.ts"
import { RowBatch } from "../src/domain/rows.ts"
import { defaultPipelineSettings, makeProcessor, makeVenueRuntime } from "../src/pipeline/runtime.ts"
import type { Recording } from "../src/replay/recorded.ts"
import { binance, binanceFutures } from "../src/venues/binance/index.ts"
import { coinbase } from "../src/venues/coinbase/index.ts"
import { deribit } from "../src/venues/deribit/index.ts"
import { bybit, bybitDerivatives } from "../src/venues/bybit/index.ts"
import { okx } from "../src/venues/okx/index.ts"
import type { VenueDefinition } from "../src/venues/venue.ts"
import { binanceFutures as loadBinanceFutures, binanceSpot as loadBinanceSpot, recording as loadRecording, session as loadSession } from "../test/support/fixtures.ts"
import { ccxtConsumer, type FrameConsumer, type PeerCase, tardisConsumer } from "./peers.ts"
import { formatRate, median, type Table } from "./report.ts"


interface NormalizeCase {
  readonly venue: VenueDefinition
  readonly channel: string
  readonly recording: Recording
  readonly select: (frame: string) => boolean
  /** In-stream snapshots applied before timing (Coinbase, Deribit). */
  readonly setup?: (frame: string) => boolean
  readonly peers: Omit<PeerCase, "setup" | "restSnapshots">
}

const binanceSpot = loadBinanceSpot()
const binanceUsdm = loadBinanceFutures()
const coinbaseExchange = loadRecording("COINBASE.0", "COINBASE.ws.28.0")
const deribitFeed = loadRecording("DERIBIT.0", "DERIBIT.ws.1.0")
const coinbaseMarkets = [...new Set(coinbaseExchange.frames.flatMap((f) => f.text.match(/"product_id":"([A-Z0-9]+-[A-Z0-9]+)"/)?.[1] ?? []))]
  .map((id) => ({ id, base: id.split("-")[0]!, quote: id.split("-")[1]! }))
const coinbaseCcxt = { exchange: "coinbaseexchange", url: "wss://ws-feed.exchange.coinbase.com", spotMarkets: coinbaseMarkets }
// The real Bybit session: connection 2 is /v5/public/linear, 3 is /v5/public/spot.
const bybitSession = loadSession("BYBIT.jsonl.zst")
const bybitConnection = (connection: string): Recording => ({ ...bybitSession, frames: bybitSession.frames.filter((f) => f.connection === connection) })
const bybitLinear = bybitConnection("BYBIT.ws.2")
const bybitSpot = bybitConnection("BYBIT.ws.3")
const okxFeed = loadRecording("OKX.0", "OKX.ws.1.0")
const spotUrl = "wss://stream.binance.com:9443/stream"
const usdmUrl = "wss://fstream.binance.com/stream"

const cases: ReadonlyArray<NormalizeCase> = [
  {
    venue: binance, channel: "aggTrade", recording: binanceSpot, select: (t) => t.includes("@aggTrade"),
    // tardis-dev maps Binance `@trade` only; it has no aggTrade mapper.
    peers: { ccxt: { exchange: "binance", url: spotUrl } }
  },
  {
    venue: binance, channel: "depth@100ms", recording: binanceSpot, select: (t) => t.includes("@depth@100ms"),
    peers: { tardis: { exchange: "binance", kind: "book" }, ccxt: { exchange: "binance", url: spotUrl, binanceSnapshots: true } }
  },
  {
    venue: binanceFutures, channel: "aggTrade", recording: binanceUsdm, select: (t) => t.includes("@aggTrade"),
    peers: { ccxt: { exchange: "binanceusdm", url: usdmUrl } }
  },
  {
    venue: binanceFutures, channel: "depth@100ms", recording: binanceUsdm, select: (t) => t.includes("@depth@100ms"),
    peers: { tardis: { exchange: "binance-futures", kind: "book" }, ccxt: { exchange: "binanceusdm", url: usdmUrl, binanceSnapshots: true } }
  },
  {
    venue: coinbase, channel: "match", recording: coinbaseExchange, select: (t) => t.includes('"type":"match"'),
    peers: { tardis: { exchange: "coinbase", kind: "trades" }, ccxt: coinbaseCcxt }
  },
  {
    venue: coinbase, channel: "level2 l2update", recording: coinbaseExchange, select: (t) => t.includes('"type":"l2update"'),
    setup: (t) => t.includes('"type":"snapshot"'),
    peers: { tardis: { exchange: "coinbase", kind: "book" }, ccxt: coinbaseCcxt }
  },
  {
    venue: okx, channel: "trades", recording: okxFeed, select: (t) => t.includes('"channel":"trades"') && t.includes('"data"'),
    peers: { tardis: { exchange: "okex", kind: "trades" } }
  },
  {
    venue: okx, channel: "books update (checksum)", recording: okxFeed, select: (t) => t.includes('"action":"update"'),
    setup: (t) => t.includes('"action":"snapshot"'),
    peers: { tardis: { exchange: "okex", kind: "book" } }
  },
  {
    venue: bybitDerivatives, channel: "publicTrade (linear)", recording: bybitLinear, select: (t) => t.includes('"topic":"publicTrade.'),
    peers: { tardis: { exchange: "bybit", kind: "trades" } }
  },
  {
    venue: bybitDerivatives, channel: "orderbook.200 (linear)", recording: bybitLinear, select: (t) => t.includes('"topic":"orderbook.') && t.includes('"type":"delta"'),
    setup: (t) => t.includes('"topic":"orderbook.') && t.includes('"type":"snapshot"'),
    peers: { tardis: { exchange: "bybit", kind: "book", bybitBookDepth: 200 } }
  },
  {
    venue: bybitDerivatives, channel: "tickers (linear)", recording: bybitLinear, select: (t) => t.includes('"topic":"tickers.'),
    peers: {}
  },
  {
    venue: bybit, channel: "orderbook.200 (spot)", recording: bybitSpot, select: (t) => t.includes('"topic":"orderbook.') && t.includes('"type":"delta"'),
    setup: (t) => t.includes('"topic":"orderbook.') && t.includes('"type":"snapshot"'),
    peers: { tardis: { exchange: "bybit-spot", kind: "book", bybitBookDepth: 200 } }
  },
  {
    venue: deribit, channel: "book.raw change", recording: deribitFeed, select: (t) => t.includes('"type":"change"'),
    setup: (t) => t.includes('"type":"snapshot"'),
    peers: { tardis: { exchange: "deribit", kind: "book" }, ccxt: { exchange: "deribit", url: "wss://www.deribit.com/ws/api/v2" } }
  },
  {
    venue: deribit, channel: "ticker (options)", recording: deribitFeed, select: (t) => /"channel":"ticker\.[A-Z]+-\w+-[\d.]+-[CP]\./.test(t),
    peers: { tardis: { exchange: "deribit", kind: "options" }, ccxt: { exchange: "deribit", url: "wss://www.deribit.com/ws/api/v2" } }
  }
]

/** Our consumer: a fresh runtime and books (REST snapshots and in-stream setup applied), then one frame at a time. */
const oursConsumer = (subject: NormalizeCase, setup: ReadonlyArray<string>): (() => FrameConsumer) => {
  const { recording, venue } = subject
  const instruments = recording.rest.flatMap((rest) => venue.fromRest(rest).instruments ?? [])
  const snapshotRecords = recording.rest.flatMap((rest) => venue.fromRest(rest).records ?? [])
  // Each frame at the time it was received (a receipt time of 0 had the shared check refuse every record stamped
  // after 1970-01-02, so nothing past decoding was timed); frames recorded without one at the recording's last.
  const receivedAt = new Map(recording.frames.map((f) => [f.text, f.receivedAt]))
  const last = recording.frames.reduce((latest, f) => Math.max(latest, f.receivedAt ?? 0), 0) || Date.now()
  return () => {
    const runtime = makeVenueRuntime(defaultPipelineSettings, () => Effect.void)
    for (const instrument of instruments) runtime.instruments.add(instrument)
    const processor = makeProcessor(runtime, venue.id, { sequenceRule: venue.sequenceRule, requestSnapshot: () => undefined })
    const records: Array<NormalizedRecord> = []
    let batch = new RowBatch()
    const consume = (frame: string) => {
      records.length = 0
      venue.decodeFrame(frame, records)
      processor.process(records, receivedAt.get(frame) ?? last, batch)
      if (batch.size > 1024) batch = new RowBatch()
    }
    processor.process(snapshotRecords, last, batch)
    for (const frame of setup) consume(frame)
    return consume
  }
}

/**
 * ns per frame, the median of 7 runs after one warm-up run. A run replays the
 * frames `passes` times; where a replay would find its state already past the
 * frames (books, minute bars), each pass gets a freshly prepared consumer, untimed.
 */
const timePasses = (prepare: () => FrameConsumer, frames: ReadonlyArray<string>, passes: number, freshBooks: boolean): number => {
  const run = () => {
    let elapsed = 0n
    let consume = prepare()
    for (let pass = 0; pass < passes; pass++) {
      if (freshBooks && pass > 0) consume = prepare()
      const start = process.hrtime.bigint()
      for (let i = 0; i < frames.length; i++) consume(frames[i]!)
      elapsed += process.hrtime.bigint() - start
    }
    return Number(elapsed) / (passes * frames.length)
  }
  run()
  const runs: Array<number> = []
  for (let r = 0; r < 7; r++) runs.push(run())
  return median(runs)
}

const restSnapshotsOf = (recording: Recording) =>
  recording.rest.flatMap((rest) => {
    const symbol = new URL(rest.url).searchParams.get("symbol")
    return rest.url.includes("/depth") && symbol !== null ? [{ symbol, body: rest.body }] : []
  })

const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? "n/a" : (a / b).toFixed(2))

/** `framesPerRun`: each run replays the channel's frames until it has timed about this many. */
export const normalizeSection = (framesPerRun: number, only: string | undefined): Table => {
  const rows: Array<Array<string>> = []
  for (const subject of cases) {
    const name = `${subject.venue.id} ${subject.channel}`
    if (only !== undefined && !name.includes(only)) continue
    const texts = subject.recording.frames.map((f) => f.text)
    const frames = texts.filter(subject.select)
    if (frames.length === 0) throw new Error(`${name}: no recorded frames`)
    const setup = subject.setup === undefined ? [] : texts.filter(subject.setup)
    const peer: PeerCase = { ...subject.peers, setup, restSnapshots: restSnapshotsOf(subject.recording) }
    const passes = Math.max(1, Math.ceil(framesPerRun / frames.length))
    // Every pass from a fresh consumer: a replay would find its books past the frames, and its minute bars written
    // (each trade a late correction), neither of which the live stream does.
    const fresh = true
    const started = performance.now()
    const parseNs = timePasses(() => (frame) => JSON.parse(frame), frames, passes, fresh)
    const oursNs = timePasses(oursConsumer(subject, setup), frames, passes, fresh)
    const tardis = tardisConsumer(peer)
    const tardisNs = tardis === undefined ? undefined : timePasses(tardis, frames, passes, fresh)
    const ccxt = ccxtConsumer(peer)
    const ccxtNs = ccxt === undefined ? undefined : timePasses(ccxt, frames, passes, fresh)
    if (process.env.BENCH_VERBOSE !== undefined) console.error(`  ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`)
    rows.push([
      subject.venue.id,
      subject.channel,
      String(frames.length),
      parseNs.toFixed(0),
      oursNs.toFixed(0),
      tardisNs === undefined ? "n/a" : tardisNs.toFixed(0),
      ccxtNs === undefined ? "n/a" : ccxtNs.toFixed(0),
      ratio(oursNs, parseNs),
      ratio(tardisNs, oursNs),
      ratio(ccxtNs, oursNs),
      formatRate(1e9 / oursNs)
    ])
  }
  return {
    title: `1. normalization on recorded frames: ns per frame (median of 7 runs, each pass from fresh books)`,
    header: ["venue", "channel", "frames", "JSON.parse", "ours", "tardis-dev", "ccxt", "ours/parse", "tardis/ours", "ccxt/ours", "frames/s ours"],
    rows,
    notes: [
      "ours = JSON.parse + schema-checked decode + normalize + large-trade detection + sequence check + book apply + minute bars + row building",
      "tardis/ours and ccxt/ours are how many times our throughput theirs is (above 1: we are faster); n/a: the peer has no mapper for that channel"
    ]
  }
}
