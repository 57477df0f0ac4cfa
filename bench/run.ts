/**
 * npm run bench: prints figures measured in one run on this machine.
 *  1. pipeline: recorded Binance, Coinbase and Deribit frames, looped, through JSON.parse alone and
 *     through our decode -> normalize -> detect -> book apply (no database);
 *  2. writer: rows/s through the batched writer into PostgreSQL (DATABASE_URL or
 *     127.0.0.1:5432/test) and into the embedded database.
 * Never part of the test suite's pass/fail.
 */
import { readFileSync } from "node:fs"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { RowBatch, type LargeTradeRow } from "../src/domain/rows.ts"
import { defaultPipelineSettings, makeProcessor, makeVenueRuntime } from "../src/pipeline/runtime.ts"
import { parseRecording, type Recording } from "../src/replay/recorded.ts"
import { embeddedLayer, postgresLayer } from "../src/storage/database.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { Writer } from "../src/storage/writer.ts"
import { binance, binanceFutures } from "../src/venues/binance/index.ts"
import { coinbase } from "../src/venues/coinbase/index.ts"
import { deribit } from "../src/venues/deribit/index.ts"
import type { VenueDefinition } from "../src/venues/venue.ts"

const fixtures = new URL("../../shared/fixtures/recorded/", import.meta.url).pathname
const load = (prefix: string): Recording => {
  const into: Recording = { frames: [], sent: [], rest: [] }
  for (const f of [`${prefix}.0`, `${prefix}.http.0.0`, `${prefix}.ws.1.0`]) parseRecording(readFileSync(fixtures + f, "utf8"), into)
  return into
}

const settings = defaultPipelineSettings

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** ns per frame over `rounds` passes of the channel's frames, median of 7 runs. */
const timeFrames = (frames: ReadonlyArray<string>, rounds: number, f: (frame: string) => void) => {
  const runs: Array<number> = []
  for (let r = 0; r < 7; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < rounds; i++) for (const frame of frames) f(frame)
    runs.push(Number(process.hrtime.bigint() - start) / (rounds * frames.length))
  }
  return median(runs)
}

const pipelineRows: Array<Array<string>> = []
for (const [venue, recording] of [[binance, load("BINANCE")], [binanceFutures, load("BINANCE_FUTURES")]] as const) {
  for (const channel of ["@aggTrade", "@depth@100ms"]) {
    const frames = recording.frames.map((f) => f.text).filter((t) => t.includes(channel))
    const parseNs = timeFrames(frames, 200, (frame) => JSON.parse(frame))
    const pipelineNs = measurePipeline(venue as VenueDefinition, recording, frames)
    pipelineRows.push([
      venue.id,
      channel.slice(1),
      String(frames.length),
      parseNs.toFixed(0),
      pipelineNs.toFixed(0),
      (pipelineNs / parseNs).toFixed(2),
      Math.round(1e9 / pipelineNs).toLocaleString("en-US")
    ])
  }
}

/** Decode + normalize + detect + book apply, with the recorded snapshot installed so deltas really apply. */
function measurePipeline(venue: VenueDefinition, recording: Recording, frames: ReadonlyArray<string>): number {
  const instruments = recording.rest.flatMap((rest) => venue.fromRest(rest).instruments ?? [])
  const snapshots = new Map<string, ReadonlyArray<any>>()
  for (const rest of recording.rest) {
    const records = venue.fromRest(rest).records
    const symbol = new URL(rest.url).searchParams.get("symbol")
    if (records !== undefined && symbol !== null) snapshots.set(symbol, records)
  }
  let processor = makeProcessor(makeVenueRuntime(settings, () => Effect.void), venue.id, {
    sequenceRule: venue.sequenceRule,
    requestSnapshot: () => undefined
  })
  const requested: Array<string> = []
  // Each pass starts from fresh books (the previous pass left them past these sequence numbers).
  const reset = () => {
    const runtime = makeVenueRuntime(settings, () => Effect.void)
    for (const instrument of instruments) runtime.instruments.add(instrument)
    processor = makeProcessor(runtime, venue.id, { sequenceRule: venue.sequenceRule, requestSnapshot: (s) => requested.push(s) })
  }
  const records: Array<any> = []
  const batch = new RowBatch()
  let index = 0
  return timeFrames(frames, 200, (frame) => {
    if (index++ % frames.length === 0 && (index === 1 || venue.sequenceRule !== undefined && frames[0]!.includes("@depth"))) reset()
    records.length = 0
    venue.decodeFrame(frame, records)
    processor.process(records, 0, batch)
    while (requested.length > 0) processor.process(snapshots.get(requested.pop()!) ?? [], 0, batch)
    batch.large_trades.length = 0
    batch.exchange_orderbooks.length = 0
  })
}

/**
 * Venues whose books start from an in-stream snapshot (Coinbase, Deribit): the
 * recorded snapshot frames are applied once per pass, then the channel's frames
 * are timed through decode + normalize + detect + book apply.
 */
function measureStream(venue: VenueDefinition, recording: Recording, frames: ReadonlyArray<string>, setup: ReadonlyArray<string>): number {
  const instruments = recording.rest.flatMap((rest) => venue.fromRest(rest).instruments ?? [])
  const records: Array<any> = []
  const batch = new RowBatch()
  let processor = makeProcessor(makeVenueRuntime(settings, () => Effect.void), venue.id, { sequenceRule: venue.sequenceRule, requestSnapshot: () => undefined })
  let index = 0
  return timeFrames(frames, 200, (frame) => {
    if (index++ % frames.length === 0) {
      const runtime = makeVenueRuntime(settings, () => Effect.void)
      for (const instrument of instruments) runtime.instruments.add(instrument)
      processor = makeProcessor(runtime, venue.id, { sequenceRule: venue.sequenceRule, requestSnapshot: () => undefined })
      for (const f of setup) {
        records.length = 0
        venue.decodeFrame(f, records)
        processor.process(records, 0, batch)
      }
    }
    records.length = 0
    venue.decodeFrame(frame, records)
    processor.process(records, 0, batch)
    batch.large_trades.length = 0
    batch.exchange_orderbooks.length = 0
    batch.option_chain.length = 0
  })
}

const loadFiles = (...files: ReadonlyArray<string>): Recording => {
  const into: Recording = { frames: [], sent: [], rest: [] }
  for (const f of files) parseRecording(readFileSync(fixtures + f, "utf8"), into)
  return into
}

const streamCases: ReadonlyArray<readonly [VenueDefinition, Recording, string, (t: string) => boolean, (t: string) => boolean]> = [
  [coinbase, loadFiles("COINBASE.0", "COINBASE.ws.28.0"), "match", (t) => t.includes('"type":"match"'), () => false],
  [coinbase, loadFiles("COINBASE.0", "COINBASE.ws.28.0"), "l2update", (t) => t.includes('"type":"l2update"'), (t) => t.includes('"type":"snapshot"')],
  [deribit, loadFiles("DERIBIT.0", "DERIBIT.ws.1.0"), "book.raw", (t) => t.includes('"type":"change"'), (t) => t.includes('"type":"snapshot"')],
  [deribit, loadFiles("DERIBIT.0", "DERIBIT.ws.1.0"), "ticker.raw (options)", (t) => t.includes('"channel":"ticker.'), () => false]
]
for (const [venue, recording, channel, select, setup] of streamCases) {
  const texts = recording.frames.map((f) => f.text)
  const frames = texts.filter(select)
  const parseNs = timeFrames(frames, 200, (frame) => JSON.parse(frame))
  const pipelineNs = measureStream(venue, recording, frames, texts.filter(setup))
  pipelineRows.push([
    venue.id,
    channel,
    String(frames.length),
    parseNs.toFixed(0),
    pipelineNs.toFixed(0),
    (pipelineNs / parseNs).toFixed(2),
    Math.round(1e9 / pipelineNs).toLocaleString("en-US")
  ])
}

const trade = (run: number, i: number): LargeTradeRow => ({
  id: `bench-${run}_BTCUSDT_${i}`,
  exchange: `bench-${run}`,
  symbol: "BTCUSDT",
  side: "buy",
  price: 50_000 + (i % 1000) / 100,
  size: 2.5,
  valueUsd: 125_000,
  timestamp: 1_700_000_000_000 + i,
  tradeId: String(i),
  isLiquidation: false,
  metadata: { first_trade_id: i, last_trade_id: i, fills: 1, source: "aggTrade" }
})

const writerThroughput = (rows: number, database: Layer.Layer<SqlClient.SqlClient, unknown>) =>
  Effect.gen(function*() {
    yield* runMigrations()
    const run = Date.now()
    const writer = yield* Writer.make({
      batchSize: 5000,
      flushIntervalMs: 50,
      queueCapacity: rows + 1,
      retryInitialMs: 100,
      retryMaxMs: 1000,
      drainTimeoutMs: 60_000
    })
    const batch = new RowBatch()
    for (let i = 0; i < rows; i++) batch.large_trades.push(trade(run, i))
    const start = performance.now()
    yield* writer.offer(batch)
    while (writer.state().tables.large_trades.written < rows) yield* Effect.sleep("5 millis")
    const seconds = (performance.now() - start) / 1000
    const sql = yield* SqlClient.SqlClient
    yield* sql`DELETE FROM large_trades WHERE exchange = ${`bench-${run}`}`
    return rows / seconds
  }).pipe(Effect.provide(database), Effect.scoped)

const table = (header: Array<string>, rows: Array<Array<string>>) => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: Array<string>) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ")
  console.log(line(header))
  for (const row of rows) console.log(line(row))
}

console.log(`node ${process.version}, ${(await import("node:os")).cpus().length} cores (${(await import("node:os")).cpus()[0]?.model})\n`)
console.log("1. pipeline on recorded frames (ns per frame, median of 7 runs x 200 passes)")
table(["venue", "channel", "frames", "JSON.parse", "ours", "ratio", "frames/s (ours)"], pipelineRows)

const rows = Number(process.env.BENCH_WRITER_ROWS ?? 200_000)
const pgUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const writerRows: Array<Array<string>> = []
for (const [name, layer] of [["postgres", postgresLayer(pgUrl)], ["embedded (PGlite)", embeddedLayer(undefined)]] as const) {
  const perSecond = await Effect.runPromise(writerThroughput(rows, layer as Layer.Layer<SqlClient.SqlClient, unknown>))
  writerRows.push([name, rows.toLocaleString("en-US"), Math.round(perSecond).toLocaleString("en-US")])
}
console.log(`\n2. batched writer, large_trades rows (batches of 5000, one INSERT ... SELECT FROM unnest per batch)`)
table(["database", "rows", "rows/s"], writerRows)
