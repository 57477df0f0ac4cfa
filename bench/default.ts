/**
 * Section 4: the default configuration at real rates. Every venue `npm start`
 * runs (EXCHANGES left at its default: all eight) is pointed at its loopback
 * fake (test/fake/), each replaying its recording (shared/fixtures) at the
 * recording's own mean pace: frames / recorded span, per market. The service
 * is the real process (`node src/main.ts`, bench/service-process.ts); this
 * process runs the fakes and reads the service from outside for 60 s: CPU
 * share, RSS (and its children's, a database server it started), and the
 * event-loop delay from its own /metrics.
 *
 * The window opens 5 s after the service answers /health. The recordings are
 * short (OKX and Bybit loop; Binance, Coinbase and Deribit end about 30 s after
 * their first subscription), so the first 20 s, with every recording playing,
 * is printed beside the whole minute.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { readRecordings } from "../src/replay/recorded.ts"
import { FakeBinance } from "../test/fake/binance.ts"
import { FakeBybit } from "../test/fake/bybit.ts"
import { FakeCme } from "../test/fake/cme.ts"
import { FakeCoinbase } from "../test/fake/coinbase.ts"
import { FakeDeribit } from "../test/fake/deribit.ts"
import { FakeOkx, okxInstruments } from "../test/fake/okx.ts"
import { fixtures, sessions } from "../test/support/fixtures.ts"
import type { Table } from "./report.ts"
import { bareNodeRss, measureWindow, startServiceProcess, summarize, summaryHeader, type WindowMeasure } from "./service-process.ts"

/** Mean milliseconds between frames of a recording's connection(s), over `markets` markets played side by side. */
const meanIntervalMs = (path: string, markets = 1): number => {
  const times = readRecordings([path]).frames.flatMap((f) => (f.receivedAt === undefined ? [] : [f.receivedAt]))
  return ((Math.max(...times) - Math.min(...times)) * markets) / times.length
}

export interface DefaultTarget {
  readonly name: string
  /** A PostgreSQL URL, or undefined for the embedded database in a temporary directory. */
  readonly url: string | undefined
}

/** The first `seconds` of a window: its process samples and the delay windows that closed by then. */
const firstSeconds = (measure: WindowMeasure, seconds: number): WindowMeasure => {
  const start = measure.samples[0]!.at
  const samples = measure.samples.filter((s) => s.at - start <= seconds * 1000 + 500)
  return { seconds, samples, delays: measure.delays.slice(0, Math.floor(seconds / 10)), frames: Number.NaN }
}

export const defaultSection = async (target: DefaultTarget, seconds: number): Promise<Table> => {
  const paces = {
    binanceSpot: meanIntervalMs(`${fixtures}BINANCE.ws.1.0`),
    binanceFutures: meanIntervalMs(`${fixtures}BINANCE_FUTURES.ws.1.0`),
    coinbase: meanIntervalMs(`${fixtures}COINBASE.ws.28.0`),
    deribit: meanIntervalMs(`${fixtures}DERIBIT.ws.1.0`),
    okx: meanIntervalMs(`${fixtures}OKX.ws.1.0`),
    // The session's two connections (linear, spot) in one file; the fake pumps each market at this interval.
    bybit: meanIntervalMs(`${sessions}BYBIT.jsonl.zst`, 2)
  }
  const binance = await FakeBinance.start({ frameIntervalMs: { spot: paces.binanceSpot, futures: paces.binanceFutures }, markPriceIntervalMs: 1000 })
  const coinbase = await FakeCoinbase.start({ frameIntervalMs: paces.coinbase })
  const deribit = await FakeDeribit.start({ frameIntervalMs: paces.deribit })
  const okx = await FakeOkx.start({ frameIntervalMs: paces.okx, loop: true })
  const bybit = await FakeBybit.start({ frameIntervalMs: paces.bybit, loop: true })
  const cme = await FakeCme.start()
  // Searchable by others: as root the embedded PostgreSQL runs as the postgres user, which must reach its folder inside.
  const dataDir = target.url === undefined ? mkdtempSync(join(tmpdir(), "mds-bench-default-")) : undefined
  if (dataDir !== undefined) chmodSync(dataDir, 0o755)
  const bare = bareNodeRss()
  const service = await startServiceProcess({
    // EXCHANGES unset: every venue, as `npm start` runs them. The symbols are the recorded ones (what the fakes have).
    BINANCE_SYMBOLS: "NKNUSDT,BLZETH,LRCBTC,RUNEEUR",
    BINANCE_FUTURES_SYMBOLS: "SUSHIUSDT,AKROUSDT,KEEPUSDT,CTKUSDT",
    BINANCE_WS_URL: binance.wsUrl,
    BINANCE_REST_URL: binance.httpUrl,
    BINANCE_FUTURES_WS_URL: binance.wsUrl,
    BINANCE_FUTURES_REST_URL: binance.httpUrl,
    COINBASE_PRODUCTS: coinbase.products.join(","),
    COINBASE_WS_URL: coinbase.wsUrl,
    COINBASE_REST_URL: coinbase.httpUrl,
    DERIBIT_WS_URL: deribit.wsUrl,
    DERIBIT_REST_URL: deribit.restUrl,
    OKX_INSTRUMENTS: okxInstruments.join(","),
    OKX_WS_URL: okx.wsUrl,
    OKX_REST_URL: okx.httpUrl,
    BYBIT_SPOT_SYMBOLS: "BTCUSDT,ETHUSDT",
    BYBIT_LINEAR_SYMBOLS: "BTCUSDT,ETHUSDT,SOLUSDT,DOGEUSDT",
    BYBIT_WS_URL: bybit.wsUrl,
    BYBIT_REST_URL: bybit.httpUrl,
    CME_WEBSITE_URL: cme.url,
    ...(target.url === undefined ? { DATA_DIR: dataDir! } : { DATABASE_URL: target.url })
  })
  let measure: WindowMeasure
  try {
    // Sockets open and subscriptions answered; the recordings start with the first subscription.
    await new Promise((resolve) => setTimeout(resolve, 5000))
    measure = await measureWindow(service, seconds)
  } finally {
    await service.stop()
    await Promise.all([binance, coinbase, deribit, okx, bybit, cme].map((fake) => fake.close()))
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
  }
  const early = summarize(firstSeconds(measure, 20), bare)
  const whole = summarize(measure, bare)
  const pace = (ms: number) => (1000 / ms).toFixed(1)
  return {
    title: `4. default configuration at recorded pace into ${target.name}: all eight venues against loopback fakes, the service in its own process, ${seconds} s`,
    header: ["database", "window", ...summaryHeader],
    keyColumns: 2,
    rows: [
      [target.name, "0-20 s", "n/a", ...early.cells.slice(1)],
      [target.name, `0-${seconds} s`, ...whole.cells]
    ],
    notes: [
      `frames/s per market as recorded (mean): Binance spot ${pace(paces.binanceSpot)}, USD-M ${pace(paces.binanceFutures)}, Coinbase ${pace(paces.coinbase)}, Deribit ${pace(paces.deribit)}, OKX ${pace(paces.okx)}, Bybit ${pace(paces.bybit)} per market (spot, linear, inverse); plus the fakes' synthesized markPrice, heartbeats and tickers`,
      "frames/s: counted by the service (feed_messages_total); 0-20 s has every recording playing, Binance, Coinbase and Deribit run out at about 30 s",
      `CPU of 1 core: the service's user + system time over wall time (its children included); RSS from /proc (median, peak); bare node = ${(bare / 2 ** 20).toFixed(0)} MB; children: the PSS of the processes the service started (the embedded PostgreSQL server and its backends; PGlite, EMBEDDED_DATABASE=pglite, would be in the service's own RSS)`,
      "loop: event_loop_delay_ms of /metrics, one 10 s window each: median of the windows' p50, the largest p99 and maximum",
      `machine load (1 min) at the end: ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores: a loop delay with a small CPU share is the machine's other load`
    ]
  }
}
