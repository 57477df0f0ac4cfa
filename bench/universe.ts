/**
 * Section 5: the whole universe. How many instruments: counted in the venues'
 * own listings as recorded (shared/fixtures): Binance USD-M (exchangeInfo,
 * TRADING), Binance spot USDT pairs (TRADING), Coinbase USD spot products (the
 * 2026 Advanced Trade products answer), every Deribit instrument (BTC, ETH,
 * SOL, USDC), OKX perpetuals (SWAP, live) and Bybit perpetuals
 * (LinearPerpetual, the 2026 instruments-info).
 *
 * At which rate: each venue's recorded frames per instrument per second (its
 * recording's frames that name an instrument / span / instruments in it),
 * given to every instrument of that venue's universe. The recorded instruments
 * are liquid ones, so at scale 1 this is an upper bound for a universe whose
 * tail trades rarely; the scales below and above 1 show the slope.
 *
 * How: the flood venue (bench/flood-exchange.ts, its own process) lists that
 * many instruments and sends their total rate, as Binance spot frames (a
 * depth diff and an aggTrade in turn, round-robin over the instruments), to
 * the real service process (bench/service-process.ts), for each scale in turn.
 * The frames are all of one venue's shape: what one frame costs per venue is
 * section 1's; this measures the rest of the path at the universe's
 * instrument count and frame rate.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { readRecordings } from "../src/replay/recorded.ts"
import { fixtures, sessions } from "../test/support/fixtures.ts"
import { startFlood } from "./e2e.ts"
import { formatRate, median, type Table } from "./report.ts"
import { bareNodeRss, measureWindow, startServiceProcess, summarize, summaryHeader } from "./service-process.ts"

type Json = Record<string, any>

const restBodies = (path: string, url: RegExp): Array<Json> =>
  readRecordings([path]).rest.filter((r) => url.test(r.url)).map((r) => JSON.parse(r.body) as Json)

/** Frames per second per instrument in a recording: frames that name one, over the span, over how many they name. */
const recordedRate = (path: string, instrumentOf: (message: Json, connection: string) => string | undefined) => {
  const instruments = new Set<string>()
  const times: Array<number> = []
  let framesWithInstrument = 0
  for (const frame of readRecordings([path]).frames) {
    if (frame.receivedAt !== undefined) times.push(frame.receivedAt)
    let message: Json
    try {
      message = JSON.parse(frame.text) as Json
    } catch {
      continue
    }
    const instrument = instrumentOf(message, frame.connection)
    if (instrument === undefined) continue
    instruments.add(instrument)
    framesWithInstrument++
  }
  const span = (Math.max(...times) - Math.min(...times)) / 1000
  return { perInstrument: framesWithInstrument / span / instruments.size, recordedInstruments: instruments.size }
}

export interface UniverseVenue {
  readonly venue: string
  readonly instruments: number
  readonly listedIn: string
  readonly perInstrument: number
  readonly recordedInstruments: number
  readonly rateFrom: string
}

/** The universe as the recordings list and pace it. */
export const universeFromRecordings = (): Array<UniverseVenue> => {
  const binanceStream = (m: Json) => (typeof m.stream === "string" ? m.stream.split("@")[0] : undefined)
  const spotInfo = restBodies(`${fixtures}BINANCE.0`, /exchangeInfo/)[0]!
  const futuresInfo = restBodies(`${fixtures}BINANCE_FUTURES.0`, /exchangeInfo/)[0]!
  const coinbaseProducts = restBodies(`${sessions}COINBASE.jsonl.zst`, /products/)[0]!
  const deribitLists = restBodies(`${fixtures}DERIBIT.0`, /get_instruments/)
  const okxSwaps = restBodies(`${fixtures}OKX.0`, /instType=SWAP/)[0]!
  const bybitLinear = restBodies(`${sessions}BYBIT.jsonl.zst`, /category=linear/)[0]!
  const venue = (
    name: string,
    instruments: number,
    listedIn: string,
    rateFrom: string,
    instrumentOf: (message: Json, connection: string) => string | undefined
  ): UniverseVenue => ({ venue: name, instruments, listedIn, rateFrom, ...recordedRate(rateFrom.startsWith("sessions/") ? `${sessions}${rateFrom.slice(9)}` : `${fixtures}${rateFrom}`, instrumentOf) })
  return [
    venue("binance-futures", futuresInfo.symbols.filter((s: Json) => s.status === "TRADING").length, "BINANCE_FUTURES.0", "BINANCE_FUTURES.ws.1.0", binanceStream),
    venue("binance spot USDT", spotInfo.symbols.filter((s: Json) => s.status === "TRADING" && s.quoteAsset === "USDT").length, "BINANCE.0", "BINANCE.ws.1.0", binanceStream),
    venue(
      "coinbase USD",
      coinbaseProducts.products.filter((p: Json) => p.product_type === "SPOT" && p.quote_currency_id === "USD").length,
      "sessions/COINBASE.jsonl.zst",
      "COINBASE.ws.28.0",
      (m) => (typeof m.product_id === "string" ? m.product_id : undefined)
    ),
    venue(
      "deribit",
      deribitLists.reduce((sum, list) => sum + list.result.length, 0),
      "DERIBIT.0",
      "DERIBIT.ws.1.0",
      (m) => (typeof m.params?.channel === "string" ? m.params.channel.split(".")[1] : undefined)
    ),
    venue("okx perpetuals", okxSwaps.data.filter((i: Json) => i.state === "live").length, "OKX.0", "OKX.ws.1.0", (m) => m.arg?.instId),
    venue(
      "bybit perpetuals",
      bybitLinear.result.list.filter((i: Json) => i.contractType === "LinearPerpetual").length,
      "sessions/BYBIT.jsonl.zst",
      "sessions/BYBIT.jsonl.zst",
      (m, connection) => (typeof m.topic === "string" ? `${connection}/${m.topic.split(".").at(-1)}` : undefined)
    )
  ]
}

export interface UniverseTarget {
  readonly name: string
  readonly url: string | undefined
}

/**
 * Behind: the service read under 95 % of what was sent, or its loop p99 reached
 * 100 ms. Whether that is the work or the machine tells the CPU share: a
 * service behind at under 80 % of a core was starved by other processes.
 */
const verdict = (cpuShare: number, p99: number, received: number, sent: number): string => {
  const behind = received < 0.95 * sent || !(p99 < 100)
  if (!behind) return cpuShare >= 0.8 ? "one core, nearly full" : "one core"
  return cpuShare >= 0.8 ? "needs cluster" : "behind, starved"
}

export const universeSection = async (target: UniverseTarget, scales: ReadonlyArray<number>, stepSeconds: number): Promise<Table> => {
  const universe = universeFromRecordings()
  const instruments = universe.reduce((sum, v) => sum + v.instruments, 0)
  const rateAtOne = universe.reduce((sum, v) => sum + v.instruments * v.perInstrument, 0)
  const symbols = Array.from({ length: instruments }, (_, i) => `U${String(i + 1).padStart(4, "0")}USDT`)
  const flood = await startFlood(symbols.join(","), { FLOOD_EXCHANGE_INFO: "synthetic" })
  // Searchable by others: as root the embedded PostgreSQL runs as the postgres user, which must reach its folder inside.
  const dataDir = target.url === undefined ? mkdtempSync(join(tmpdir(), "mds-bench-universe-")) : undefined
  if (dataDir !== undefined) chmodSync(dataDir, 0o755)
  const bare = bareNodeRss()
  const rows: Array<Array<string>> = []
  const capacities: Array<number> = []
  try {
    const service = await startServiceProcess({
      EXCHANGES: "binance",
      BINANCE_SYMBOLS: symbols.join(","),
      BINANCE_WS_URL: `ws://127.0.0.1:${flood.port}`,
      BINANCE_REST_URL: `http://127.0.0.1:${flood.port}`,
      ...(target.url === undefined ? { DATA_DIR: dataDir! } : { DATABASE_URL: target.url })
    })
    try {
      // Warm up at a quarter of the rate: connections open and every book is synced from its snapshot.
      flood.pace(Math.round(rateAtOne / 4))
      await new Promise((resolve) => setTimeout(resolve, 20_000))
      for (const scale of scales) {
        const offered = Math.round(rateAtOne * scale)
        flood.pace(offered)
        await new Promise((resolve) => setTimeout(resolve, 3000))
        const sentBefore = await flood.sent()
        const measure = await measureWindow(service, stepSeconds)
        const sent = (await flood.sent() - sentBefore) / measure.seconds
        const summary = summarize(measure, bare)
        const received = measure.frames / measure.seconds
        // What one whole core would read at this step's cost per frame: the figure the machine's noise moves least.
        const perCore = received / summary.cpuShare
        capacities.push(perCore)
        rows.push([
          target.name,
          `${scale}x`,
          formatRate(offered),
          formatRate(sent),
          ...summary.cells,
          formatRate(perCore),
          loadavg()[0]!.toFixed(1),
          verdict(summary.cpuShare, summary.p99, received, sent)
        ])
      }
      flood.pace(-1)
    } finally {
      await service.stop()
    }
  } finally {
    flood.stop()
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
  }
  return {
    title: `5. the whole universe into ${target.name}: ${instruments.toLocaleString("en-US")} instruments at recorded per-instrument rates times each scale, the service in its own process, ${stepSeconds} s per scale`,
    header: ["database", "scale", "offered/s", "sent/s", ...summaryHeader, "frames/s per core", "load 1 min", "verdict"],
    keyColumns: 2,
    rows,
    notes: [
      ...universe.map((v) =>
        `${v.venue}: ${v.instruments} instruments (${v.listedIn}) x ${v.perInstrument.toFixed(2)} frames/s each (${v.rateFrom}, ${v.recordedInstruments} recorded instruments) = ${formatRate(v.instruments * v.perInstrument)}/s`
      ),
      `scale 1 = ${formatRate(rateAtOne)} frames/s over ${instruments} instruments, sent as Binance spot depth diffs and aggTrades (bench/flood-exchange.ts), round-robin`,
      "sent/s: what the flood managed (it shares the machine); frames/s: what the service read (feed_messages_total); frames/s per core = frames/s / CPU share",
      "verdict: behind = read under 95 % of what was sent, or loop p99 at 100 ms or more; needs cluster = behind at 80 % of a core or more; starved = behind at less (the machine's other load: see load 1 min, 2 cores)",
      `one core at 80 % carries about ${formatRate(0.8 * median(capacities))} frames/s of this mix (median over the scales): the universe at recorded rates needs ${(rateAtOne / median(capacities)).toFixed(2)} of a core, cluster mode from about ${((0.8 * median(capacities)) / rateAtOne).toFixed(1)}x the recorded rates`
    ]
  }
}
