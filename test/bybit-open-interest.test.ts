/**
 * Bybit open interest is stored ONE side, as every other venue counts it
 * (issue 20, item 1). Bybit's v5 ticker field table: `openInterest` /
 * `openInterestValue` are "Open interest size / value (both sides)",
 * `singleOpenInterest` / `singleOpenInterestValue` "(single side)".
 *
 * - The real 2026-08-09 session (sessions/BYBIT.jsonl.zst) sends both: the
 *   stored figure is `singleOpenInterest` as sent (Bybit rounds it, so it is not
 *   always exactly half), and Bybit's own `singleOpenInterestValue` is what
 *   our USD figure is checked against.
 * - An older frame (the docs' example, which has no single-side fields) is
 *   halved, and the row says so.
 * - Migration 0013 halves the rows stored before the fix and marks them.
 * Expected figures are read off the frames or computed by hand.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { NormalizedRecord } from "../src/domain/records.ts"
import { type OpenInterestRow, RowBatch } from "../src/domain/rows.ts"
import { defaultPipelineSettings, makeProcessor, makeVenueRuntime } from "../src/pipeline/runtime.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { insertRows } from "../src/storage/inserts.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { decodeInstrumentsPage, instrumentFrom } from "../src/venues/bybit/instruments.ts"
import { makeDecoder } from "../src/venues/bybit/normalize.ts"
import { session } from "./support/fixtures.ts"
import { postgresUrl, truncateAll } from "./support/service.ts"

const venue = "bybit-derivatives"

/** A processor knowing the session's linear listings (BTCUSDT and the others: contracts of 1 coin). */
const linearProcessor = () => {
  const runtime = makeVenueRuntime(defaultPipelineSettings, () => Effect.void)
  const page = decodeInstrumentsPage(JSON.parse(session("BYBIT.jsonl.zst").rest.find((r) => r.url.includes("category=linear"))!.body))
  if (page._tag !== "Success") throw new Error("the session's linear instruments-info does not decode")
  for (const info of page.success.kept) runtime.instruments.add(instrumentFrom(venue, "linear", info))
  return makeProcessor(runtime, venue, { sequenceRule: undefined, requestSnapshot: () => undefined })
}

/** Decodes frames as the linear connection does and runs the funding and open-interest records through the processor. */
const store = (frames: ReadonlyArray<string>, category: "linear" | "inverse" = "linear") => {
  const decode = makeDecoder(venue, { openInterestIntervalMs: 0, category })
  const processor = linearProcessor()
  const batch = new RowBatch()
  for (const frame of frames) {
    const out: Array<NormalizedRecord> = []
    assert.isUndefined(decode(frame, out))
    // Received as the frame was sent (its ts): the edge check refuses times more than a day ahead of the receipt.
    const sentAt = Number(JSON.parse(frame).ts)
    processor.process(out.filter((r) => r.kind === "funding" || r.kind === "mark_price" || r.kind === "open_interest"), sentAt, batch)
  }
  return { rows: batch.open_interest, counters: processor.counters }
}

const linearFrames = () => session("BYBIT.jsonl.zst").frames.filter((f) => f.connection === "BYBIT.ws.2").map((f) => f.text)
const tickerFrames = () => linearFrames().filter((f) => f.includes('"topic":"tickers.'))

describe("bybit open interest is one side", () => {
  it("the real session: BTCUSDT is stored as singleOpenInterest 29,945.866, not openInterest 59,891.732; every reading is the single-side figure as sent", () => {
    const { rows, counters } = store(tickerFrames())
    const btc = rows.find((r) => r.symbol === "BTCUSDT")!
    assert.strictEqual(btc.openInterest, 29945.866, "the snapshot's singleOpenInterest (its openInterest is 59891.732)")
    assert.deepInclude(btc.metadata, { open_interest_sides: "single", venue_value_usd: 1949998132.5 })
    assert.closeTo(btc.openInterestUsd, 1949998132.50, 1949998132.50 * 0.001, "Bybit's singleOpenInterestValue")
    // ETHUSDT: Bybit sends 415045.33 single against 830090.65 both (half would be 415045.325): the single figure is taken as sent.
    assert.strictEqual(rows.find((r) => r.symbol === "ETHUSDT")!.openInterest, 415045.33)
    assert.strictEqual(rows.find((r) => r.symbol === "SOLUSDT")!.openInterest, 3369027)
    assert.strictEqual(rows.find((r) => r.symbol === "DOGEUSDT")!.openInterest, 695795471)
    assert.isTrue(rows.every((r) => r.metadata!.open_interest_sides === "single"), "every frame of the session carries the single-side figures")
    // The check against Bybit's own figure (singleOpenInterestValue) passed on every reading.
    assert.isAbove(rows.length, 700)
    assert.strictEqual(counters.venueFigureMismatch, 0)

    // The table for the issue note: what we store next to what Bybit sent, the first reading of each symbol.
    const firstSnapshot = new Map<string, Record<string, string>>()
    for (const frame of tickerFrames()) {
      const m = JSON.parse(frame)
      if (m.type === "snapshot" && !firstSnapshot.has(m.data.symbol)) firstSnapshot.set(m.data.symbol, m.data)
    }
    const lines = ["| symbol | openInterest (both sides) | singleOpenInterest | stored open_interest | stored USD | singleOpenInterestValue |", "|---|---|---|---|---|---|"]
    for (const [symbol, t] of firstSnapshot) {
      const row = rows.find((r) => r.symbol === symbol)!
      assert.strictEqual(row.openInterest, Number(t.singleOpenInterest))
      lines.push(`| ${symbol} | ${t.openInterest} | ${t.singleOpenInterest} | ${row.openInterest} | ${row.openInterestUsd.toFixed(2)} | ${t.singleOpenInterestValue} |`)
    }
    console.log(`bybit open interest on the real session (${rows.length} readings, all one side):\n${lines.join("\n")}`)
  })

  it("the check against Bybit's own figure compares singleOpenInterestValue: a both-sides value in its place is a mismatch", () => {
    const snapshot = tickerFrames().find((f) => f.includes('"tickers.BTCUSDT"') && f.includes('"snapshot"'))!
    const m = JSON.parse(snapshot)
    assert.strictEqual(m.data.singleOpenInterestValue, "1949998132.50")
    assert.strictEqual(store([snapshot]).counters.venueFigureMismatch, 0)
    const doubled = JSON.stringify({ ...m, data: { ...m.data, singleOpenInterestValue: m.data.openInterestValue } })
    assert.strictEqual(store([doubled]).counters.venueFigureMismatch, 1)
    // Inverse values are in coins, not USD: no comparison there.
    const decode = makeDecoder(venue, { openInterestIntervalMs: 0, category: "inverse" })
    const out: Array<NormalizedRecord> = []
    decode(JSON.stringify({ ...m, topic: "tickers.BTCUSD", data: { ...m.data, symbol: "BTCUSD" } }), out)
    const inverse = out.find((r) => r.kind === "open_interest")!
    assert.isFalse("venueValueUsd" in inverse)
  })

  it("an older frame with only the both-sides figure (the docs' example, openInterest 68744.761) stores half, 34372.3805, and says so", () => {
    // Bybit's v5 ticker docs, linear snapshot example (before the single-side fields existed).
    const frame = JSON.stringify({
      topic: "tickers.BTCUSDT",
      type: "snapshot",
      data: {
        symbol: "BTCUSDT", tickDirection: "PlusTick", price24hPcnt: "0.017103", lastPrice: "17216.00", prevPrice24h: "16926.50", highPrice24h: "17281.50",
        lowPrice24h: "16915.00", prevPrice1h: "17238.00", markPrice: "17217.33", indexPrice: "17227.36", openInterest: "68744.761",
        openInterestValue: "1183601235.91", turnover24h: "1570383121.943499", volume24h: "91705.276", nextFundingTime: "1673280000000",
        fundingRate: "-0.000212", bid1Price: "17215.50", bid1Size: "84.489", ask1Price: "17216.00", ask1Size: "83.020"
      },
      cs: 24987956059,
      ts: 1673272861686
    })
    const { rows, counters } = store([frame])
    assert.strictEqual(rows.length, 1)
    assert.strictEqual(rows[0]!.openInterest, 34372.3805)
    assert.deepInclude(rows[0]!.metadata, { open_interest_sides: "halved_from_both_sides", venue_value_usd: 591800617.955 })
    // 34372.3805 coins x 17217.33 = 591,800,617.954 USD (by hand), half of Bybit's both-sides 1,183,601,235.91.
    assert.strictEqual(rows[0]!.openInterestUsd, 591800617.95)
    assert.strictEqual(counters.venueFigureMismatch, 0)
  })

  it("a delta that changes the both-sides figure without the single one halves the new figure, never keeps the stale single one", () => {
    const decode = makeDecoder(venue, { openInterestIntervalMs: 0, category: "linear" })
    const out: Array<NormalizedRecord> = []
    decode(JSON.stringify({ topic: "tickers.BTCUSDT", type: "snapshot", ts: 1000, data: { symbol: "BTCUSDT", markPrice: "60000", fundingRate: "0.0001", openInterest: "100", singleOpenInterest: "50", openInterestValue: "6000000", singleOpenInterestValue: "3000000" } }), out)
    decode(JSON.stringify({ topic: "tickers.BTCUSDT", type: "delta", ts: 2000, data: { symbol: "BTCUSDT", markPrice: "60100", openInterestValue: "6010000", singleOpenInterestValue: "3005000" } }), out)
    decode(JSON.stringify({ topic: "tickers.BTCUSDT", type: "delta", ts: 3000, data: { symbol: "BTCUSDT", openInterest: "120", openInterestValue: "7212000" } }), out)
    const readings = out.filter((r) => r.kind === "open_interest").map((r) => [r.openInterest, r.venueValueUsd, r.details?.open_interest_sides])
    assert.deepStrictEqual(readings, [
      [50, 3000000, "single"],
      [50, 3005000, "single"],
      [60, 3606000, "halved_from_both_sides"]
    ])
  })
})

describe("migration 0013: bybit open interest stored before the fix", () => {
  const at = (iso: string) => Date.parse(iso)
  const row = (id: string, exchange: string, symbol: string, openInterest: number, openInterestUsd: number, timestamp: number, metadata: Record<string, unknown> | null): OpenInterestRow => ({
    id, exchange, symbol, openInterest, openInterestBase: null, openInterestUsd, timestamp, metadata
  })

  it.live("halves the unmarked bybit-derivatives rows and marks them; marked rows and other venues are left alone; the hourly rollup follows", () =>
    Effect.gen(function*() {
      yield* truncateAll
      const sql = yield* SqlClient.SqlClient
      yield* insertRows("open_interest", [
        // As the old decoder stored them: Bybit's both-sides openInterest.
        row("old-linear", venue, "BTCUSDT", 59891.732, 3899996265.01, at("2026-08-09T10:15:00Z"), { contract_size: 1, contract_unit: "BTC", usd_price_source: "mark", mark_price: 65117.44 }),
        row("old-inverse", venue, "BTCUSD", 777, 777, at("2026-08-09T10:20:00Z"), null),
        // Written by the fixed decoder.
        row("new-linear", venue, "BTCUSDT", 29945.866, 1949998132.5, at("2026-08-09T11:15:00Z"), { open_interest_sides: "single" }),
        row("okx", "okx", "BTC-USDT-SWAP", 5000, 2000000, at("2026-08-09T10:15:00Z"), { contract_size: 0.01 })
      ])
      const applyAgain = Effect.gen(function*() {
        yield* sql`DELETE FROM effect_sql_migrations WHERE migration_id = 13`
        return (yield* runMigrations()).map(([id]) => id)
      })
      assert.deepStrictEqual(yield* applyAgain, [13])
      const stored = yield* sql<{ id: string; oi: number; usd: number; metadata: any }>`
        SELECT id, open_interest::float8 AS oi, open_interest_usd::float8 AS usd, metadata FROM open_interest ORDER BY id`
      const byId = new Map(stored.map((r) => [r.id, r]))
      // 59891.732 / 2 = 29945.866; 3899996265.01 / 2 = 1949998132.505, stored to the cent as 1949998132.51.
      assert.deepInclude(byId.get("old-linear")!, { oi: 29945.866, usd: 1949998132.51 })
      assert.deepStrictEqual(byId.get("old-linear")!.metadata, {
        contract_size: 1, contract_unit: "BTC", usd_price_source: "mark", mark_price: 65117.44,
        open_interest_sides: "halved_from_both_sides", corrected_by_migration: "0013_bybit_open_interest_one_side"
      })
      assert.deepInclude(byId.get("old-inverse")!, { oi: 388.5, usd: 388.5 })
      assert.deepStrictEqual(byId.get("old-inverse")!.metadata, { open_interest_sides: "halved_from_both_sides", corrected_by_migration: "0013_bybit_open_interest_one_side" })
      assert.deepStrictEqual(byId.get("new-linear"), { id: "new-linear", oi: 29945.866, usd: 1949998132.5, metadata: { open_interest_sides: "single" } })
      assert.deepStrictEqual(byId.get("okx"), { id: "okx", oi: 5000, usd: 2000000, metadata: { contract_size: 0.01 } })

      // The rollup's latest reading of 10:00 is the corrected one (its UPDATE trigger recomputed the hour).
      const hourly = yield* sql<{ symbol: string; hour: string; readings: number; usd: number }>`
        SELECT symbol, to_char(hour, 'HH24:MI') AS hour, readings::int AS readings, latest[2]::float8 AS usd FROM open_interest_hourly
        WHERE exchange = ${venue} ORDER BY hour, symbol`
      assert.deepStrictEqual(hourly.map((h) => [h.symbol, h.hour, h.readings, h.usd]), [
        ["BTCUSD", "10:00", 1, 388.5],
        ["BTCUSDT", "10:00", 1, 1949998132.51],
        ["BTCUSDT", "11:00", 1, 1949998132.5]
      ])

      // Once corrected, a row is marked: running the migration again halves nothing twice.
      assert.deepStrictEqual(yield* applyAgain, [13])
      const [again] = yield* sql<{ oi: number }>`SELECT open_interest::float8 AS oi FROM open_interest WHERE id = 'old-linear'`
      assert.strictEqual(again!.oi, 29945.866)
    }).pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped), 60_000)
})
