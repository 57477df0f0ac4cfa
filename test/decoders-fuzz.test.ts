/**
 * Every venue of the registry, fed real frames mutated at random (numbers
 * replaced by NaN-producing strings, "oops", huge exponents, zero, negative,
 * 2008 and far-future times, fields dropped, types swapped) through the path
 * the service runs (the venue's decoder, the frame handler, the processor).
 * Nothing throws, and nothing comes out that the writer cannot encode: its own
 * check (`unencodable`, storage/writer.ts) is the oracle, independent of the
 * pipeline's check (domain/validate.ts), on every record the processor takes
 * and on every row it builds. Times are checked too, against hand-written bounds.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import type { NormalizedRecord } from "../src/domain/records.ts"
import { RowBatch, tableNames } from "../src/domain/rows.ts"
import { defaultPipelineSettings, makeFrameHandler, makeProcessor, makeVenueRuntime } from "../src/pipeline/runtime.ts"
import type { Recording } from "../src/replay/recorded.ts"
import { withGuessedInstruments } from "../src/replay/replay.ts"
import { unencodable } from "../src/storage/writer.ts"
import { venues } from "../src/venues/registry.ts"
import type { VenueDefinition } from "../src/venues/venue.ts"
import { recording, session } from "./support/fixtures.ts"

interface Frame {
  readonly text: string
  /** The receiving clock for this frame (the recorded receive time). */
  readonly at: number
}

const framesOf = (rec: Recording, connection?: string): Array<Frame> =>
  rec.frames.filter((f) => f.receivedAt !== undefined && (connection === undefined || f.connection === connection)).map((f) => ({ text: f.text, at: f.receivedAt! }))

// Documented messages the recordings lack (OKX funding, open interest, marks and liquidations; Deribit trades), received 1 s after their own time.
const documented = (text: string, at: number): Frame => ({ text, at: at + 1000 })
const okxDocumented = [
  documented('{"arg":{"channel":"funding-rate","instId":"BTC-USD-SWAP"},"data":[{"fundingRate":"0.0001875","fundingTime":"1700726400000","instId":"BTC-USD-SWAP","instType":"SWAP","method":"next_period","nextFundingTime":"1700755200000","ts":"1700724675402"}]}', 1700724675402),
  documented('{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","oi":"5000","oiCcy":"50","oiUsd":"2000000","ts":"1700000000000"}]}', 1700000000000),
  documented('{"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","markPx":"40000","ts":"1700000000000"}]}', 1700000000000),
  documented('{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0","bkPx":"39000.5","ccy":"","posSide":"long","side":"sell","sz":"12","ts":"1723892524781"}],"instFamily":"BTC-USDT","instId":"BTC-USDT-SWAP","instType":"SWAP","uly":"BTC-USDT"}]}', 1723892524781)
]
const deribitDocumented = [documented(JSON.stringify({
  jsonrpc: "2.0",
  method: "subscription",
  params: {
    channel: "trades.future.BTC.100ms",
    data: [
      { trade_seq: 30289432, trade_id: "48079254", timestamp: 1590484156350, tick_direction: 0, price: 8950, mark_price: 8948.9, instrument_name: "BTC-PERPETUAL", index_price: 8955.88, direction: "sell", amount: 10, liquidation: "M" },
      { trade_seq: 1966, trade_id: "ETH-1", timestamp: 1590484156351, price: 0.0125, iv: 71.5, instrument_name: "ETH-25JUN21-2000-C", index_price: 2000, direction: "buy", amount: 3, block_trade_id: "B1" }
    ]
  }
}), 1590484156351)]

/** Each venue's real captures (the ones its own tests read): REST answers for instruments and snapshots, then frames. */
const corpora: Record<string, () => { readonly rest: Recording["rest"]; readonly frames: Array<Frame> }> = {
  binance: () => {
    const rec = recording("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")
    return { rest: rec.rest, frames: framesOf(rec) }
  },
  "binance-futures": () => {
    const rec = recording("BINANCE_FUTURES.0", "BINANCE_FUTURES.http.0.0", "BINANCE_FUTURES.ws.1.0")
    return { rest: rec.rest, frames: framesOf(rec) }
  },
  coinbase: () => {
    const rec = recording("COINBASE.0", "COINBASE.ws.28.0")
    const advanced = session("COINBASE.jsonl.zst")
    return { rest: [...rec.rest, ...advanced.rest], frames: [...framesOf(rec), ...framesOf(advanced)] }
  },
  deribit: () => {
    const rec = recording("DERIBIT.0", "DERIBIT.ws.1.0")
    return { rest: rec.rest, frames: [...framesOf(rec), ...deribitDocumented] }
  },
  okx: () => {
    const rec = recording("OKX.0", "OKX.ws.1.0")
    return { rest: rec.rest, frames: [...framesOf(rec), ...okxDocumented] }
  },
  bybit: () => {
    const rec = session("BYBIT.jsonl.zst")
    return { rest: rec.rest, frames: framesOf(rec, "BYBIT.ws.3") }
  },
  "bybit-derivatives": () => {
    const rec = session("BYBIT.jsonl.zst")
    return { rest: rec.rest, frames: framesOf(rec, "BYBIT.ws.2") }
  },
  // CME has no frame feed (settlements come over REST): any frame must be refused, and nothing come out.
  cme: () => ({ rest: [], frames: framesOf(recording("BINANCE.ws.1.0")).slice(0, 50) })
}

const day = 86_400_000
const y2009 = Date.UTC(2009, 0, 1)

/** A raw JSON number in the mutated text (JSON.stringify cannot write 1e400: it would be null). */
const raw = (literal: string) => `\u0000raw:${literal}\u0000`
const rawPattern = /"\\u0000raw:([^\\]*)\\u0000"/g

type Mutation = (original: unknown, at: number) => unknown
const drop: unique symbol = Symbol("drop")
const mutations: ReadonlyArray<Mutation> = [
  () => "NaN",
  () => "oops",
  () => "",
  () => "1e400",
  () => "-1e400",
  () => "1e300",
  () => "Infinity",
  () => raw("1e400"),
  () => raw("-1e400"),
  () => raw("1e300"),
  () => raw("1e-320"),
  () => 0,
  () => -1,
  () => "0",
  () => "-5",
  // 2008-01-01, 3000-01-01 and two days after the frame arrived, as numbers, strings and ISO times.
  () => Date.UTC(2008, 0, 1),
  () => String(Date.UTC(2008, 0, 1)),
  () => "2008-01-01T00:00:00.000000Z",
  () => 32_503_680_000_000,
  () => "32503680000000",
  () => "3000-01-01T00:00:00Z",
  (_, at) => at + 2 * day,
  (_, at) => String(at + 2 * day),
  (_, at) => new Date(at + 2 * day).toISOString(),
  (_, at) => (at + 2 * day) / 1000,
  () => 1e20,
  () => null,
  () => true,
  () => ({}),
  () => [],
  () => drop,
  // Types swapped: a number as a string and back.
  (original) => (typeof original === "number" ? String(original) : typeof original === "string" && original.trim() !== "" && Number.isFinite(Number(original)) ? Number(original) : original),
  (original) => (typeof original === "number" ? original * 1e300 : original)
]

/** Every path to a value inside a JSON value. */
const pathsOf = (value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> => {
  if (typeof value !== "object" || value === null) return [prefix]
  const children = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value)
  return [prefix, ...children.flatMap(([key, child]) => pathsOf(child, [...prefix, key]))]
}

const mutate = (frame: Frame, changes: ReadonlyArray<readonly [number, number]>): string => {
  let value: unknown
  try {
    value = JSON.parse(frame.text)
  } catch {
    return frame.text
  }
  for (const [pathIndex, mutationIndex] of changes) {
    const paths = pathsOf(value).filter((p) => p.length > 0)
    if (paths.length === 0) break
    // Leaves (the numbers, strings and times) twice as often as whole objects.
    const leaves = paths.filter((p) => {
      let v: any = value
      for (const key of p) v = v[key]
      return typeof v !== "object" || v === null
    })
    const pool = pathIndex % 3 === 0 || leaves.length === 0 ? paths : leaves
    const path = pool[Math.floor(pathIndex / 3) % pool.length]!
    let parent: any = value
    for (const key of path.slice(0, -1)) parent = parent[key]
    const last = path.at(-1)!
    const replacement = mutations[mutationIndex % mutations.length]!(parent[last], frame.at)
    if (replacement === drop) {
      if (Array.isArray(parent)) parent.splice(Number(last), 1)
      else delete parent[last]
    } else parent[last] = replacement
  }
  return JSON.stringify(value).replace(rawPattern, "$1")
}

/** The service's path for one venue: instruments from its REST answers, its decoder, the frame handler and a processor whose output is watched. */
const pipelineFor = (venue: VenueDefinition, rest: Recording["rest"]) => {
  const batches: Array<{ readonly batch: RowBatch; readonly at: number }> = []
  let now = 0
  const emit = (batch: RowBatch) => Effect.sync(() => void batches.push({ batch, at: now }))
  const runtime = makeVenueRuntime({ ...defaultPipelineSettings, thresholds: { byAsset: {}, otherAssets: 0 }, openInterestIntervalMs: 0, bookIntervalMs: 1 }, emit)
  for (const response of rest) {
    const parsed = venue.fromRest(response)
    for (const instrument of parsed.instruments ?? []) runtime.instruments.add(instrument)
  }
  const processor = makeProcessor(runtime, venue.id, { sequenceRule: venue.sequenceRule, requestSnapshot: () => undefined })
  const processed: Array<{ readonly record: NormalizedRecord; readonly at: number }> = []
  const process = processor.process.bind(processor)
  processor.process = (records, now, out) => {
    const admitted = process(records, now, out)
    // (Before the shared check, `process` returned nothing: what it was handed is what it took.)
    for (const record of admitted ?? records) processed.push({ record, at: now })
    return admitted
  }
  // As replay does: symbols without metadata get the venue's guess, so trades are valued and rows built.
  const guessing = withGuessedInstruments(venue, runtime)
  const handler = makeFrameHandler(guessing, processor, `${venue.id}/fuzz`, emit)
  const handle = (frame: string, at: number) => {
    now = at
    Effect.runSync(handler([frame], at))
  }
  const restRecords = rest.flatMap((response) => (venue.fromRest(response).records ?? []).map((record) => ({ record, at: response.receivedAt })))
  return { batches, processed, handle, processor, restRecords }
}

/** A non-finite number anywhere inside (details, metadata): JSON would store it as null, a figure lost without a word. */
const nestedNonFinite = (value: unknown, path: string): string | undefined => {
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `${path} is ${value}`
  if (typeof value !== "object" || value === null) return undefined
  for (const [key, inner] of Object.entries(value)) {
    const why = nestedNonFinite(inner, `${path}.${key}`)
    if (why !== undefined) return why
  }
  return undefined
}

/** Why something that came out cannot be stored, or undefined: the writer's own check, and times within hand-written bounds. */
const problemOf = (thing: Record<string, unknown>, at: number): string | undefined => {
  const why = unencodable(thing)
  if (why !== undefined) return why
  for (const key of ["details", "metadata"]) {
    const inside = nestedNonFinite(thing[key], key)
    if (inside !== undefined) return inside
  }
  const greeks = thing.greeks
  if (typeof greeks === "object" && greeks !== null) {
    const inGreeks = unencodable(greeks)
    if (inGreeks !== undefined) return `greeks: ${inGreeks}`
  }
  for (const key of ["timestamp", "tradeDate"]) {
    const time = thing[key]
    if (time === undefined) continue
    // A book record's 0 is "time not sent" (Coinbase Exchange snapshots): the book builds no row from it (checked on rows).
    if (time === 0 && key === "timestamp" && (thing.kind === "book_snapshot" || thing.kind === "book_delta")) continue
    if (typeof time !== "number" || !(time >= y2009 && time <= at + day)) return `${key} ${String(time)} is outside 2009 .. a day after ${new Date(at).toISOString()}`
  }
  return undefined
}

describe("every venue's decoder on mutated real frames", () => {
  it("has a corpus for every venue of the registry", () => {
    assert.sameMembers(Object.keys(corpora), venues.map((v) => v.id))
  })

  for (const venue of venues) {
    it(`${venue.id}: nothing throws, and every record and row that comes out can be encoded`, () => {
      const { rest, frames } = corpora[venue.id]!()
      assert.isAbove(frames.length, 0)
      const pipeline = pipelineFor(venue, rest)
      let rows = 0
      const check = () => {
        for (const { record, at } of pipeline.processed.splice(0)) {
          const why = problemOf(record as unknown as Record<string, unknown>, at)
          assert.isUndefined(why, `${JSON.stringify(record).slice(0, 300)}`)
        }
        for (const { batch, at } of pipeline.batches.splice(0)) {
          for (const table of tableNames) {
            for (const row of batch[table] as unknown as ReadonlyArray<Record<string, unknown>>) {
              rows++
              const why = problemOf(row, at)
              assert.isUndefined(why, `${table}: ${JSON.stringify(row).slice(0, 300)}`)
            }
          }
        }
      }
      // The real session first, as recorded: books become live, so the mutations reach book rows too.
      const first = frames.slice(0, 400)
      pipeline.processor.process(pipeline.restRecords.map((r) => r.record), first[0]!.at, new RowBatch())
      for (const frame of first) pipeline.handle(frame.text, frame.at)
      check()
      fc.assert(
        fc.property(
          fc.nat(frames.length - 1),
          fc.array(fc.tuple(fc.nat(100_000), fc.nat(mutations.length - 1)), { minLength: 1, maxLength: 3 }),
          (frameIndex, changes) => {
            const frame = frames[frameIndex]!
            const mutated = mutate(frame, changes)
            // The mutated frame, then the real one after it, as a live feed would carry them.
            const next = frames[(frameIndex + 1) % frames.length]!
            pipeline.handle(mutated, frame.at)
            pipeline.handle(next.text, next.at)
            check()
          }
        ),
        { numRuns: 600, seed: 20260519 }
      )
      // The checks had something to check: records taken and rows built.
      if (venue.id === "cme") assert.strictEqual(pipeline.processor.counters.records, 0)
      else {
        assert.isAbove(pipeline.processor.counters.records, 0)
        assert.isAbove(rows, 0)
      }
    })
  }
})
