/**
 * The hand readers on the hot path must give exactly what the Schemas give:
 * the same records for every recorded frame, and for frames with one value
 * mutated (wrong types, empty strings, odd numbers, missing keys) the same
 * records or the same typed error. A reader that accepted what its Schema
 * refuses, or read a value differently, fails here.
 */
import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { isoMillis, type FrameDecoder } from "../src/domain/frames.ts"
import type { NormalizedRecord } from "../src/domain/records.ts"
import { makeDecoder as binanceDecoder } from "../src/venues/binance/normalize.ts"
import { makeDecoder as coinbaseDecoder } from "../src/venues/coinbase/normalize.ts"
import { makeDecoder as deribitDecoder } from "../src/venues/deribit/normalize.ts"
import { makeDecoder as bybitDecoder } from "../src/venues/bybit/normalize.ts"
import { makeDecoder as okxDecoder } from "../src/venues/okx/normalize.ts"
import { toAdvanced } from "./fake/coinbase.ts"
import { recording, session } from "./support/fixtures.ts"

type Decoder = FrameDecoder<NormalizedRecord>

const deribitTrades = JSON.stringify({
  jsonrpc: "2.0",
  method: "subscription",
  params: {
    channel: "trades.future.BTC.100ms",
    data: [
      { trade_seq: 30289432, trade_id: "48079254", timestamp: 1590484156350, tick_direction: 0, price: 8950, mark_price: 8948.9, instrument_name: "BTC-PERPETUAL", index_price: 8955.88, direction: "sell", amount: 10, liquidation: "M" },
      { trade_seq: 1966, trade_id: "ETH-1", timestamp: 1590484156351, price: 0.0125, iv: 71.5, instrument_name: "ETH-25JUN21-2000-C", index_price: 2000, direction: "buy", amount: 3, block_trade_id: "B1" }
    ]
  }
})

const coinbaseFrames = () => recording("COINBASE.ws.28.0").frames.map((f) => f.text)
const advancedFrames = () =>
  coinbaseFrames().flatMap((text, i) => {
    const message = JSON.parse(text)
    const advanced = toAdvanced(message)
    const timestamp = message.time ?? "2021-05-28T12:00:00.000000Z"
    return advanced === undefined ? [] : [JSON.stringify({ channel: advanced.channel, client_id: "", timestamp, sequence_num: i, events: advanced.events })]
  })

const corpora: ReadonlyArray<readonly [string, () => Decoder, () => ReadonlyArray<string>]> = [
  ["binance spot", () => binanceDecoder("binance"), () => recording("BINANCE.ws.1.0").frames.map((f) => f.text)],
  ["binance futures", () => binanceDecoder("binance-futures"), () => recording("BINANCE_FUTURES.ws.1.0").frames.map((f) => f.text)],
  ["coinbase exchange", () => coinbaseDecoder("coinbase"), coinbaseFrames],
  ["coinbase advanced", () => coinbaseDecoder("coinbase"), advancedFrames],
  ["deribit", () => deribitDecoder("deribit"), () => [...recording("DERIBIT.ws.1.0").frames.map((f) => f.text), deribitTrades]],
  ["okx", () => okxDecoder("okx", { openInterestIntervalMs: 0 }), () => recording("OKX.ws.1.0").frames.map((f) => f.text)],
  ["bybit (real 2026 session)", () => bybitDecoder("bybit-derivatives", { openInterestIntervalMs: 0 }), () => session("BYBIT.jsonl.zst").frames.map((f) => f.text)]
]

/** One frame through a fresh decoder, either way: records and error as plain data. */
const outcome = (decoder: (frame: string, out: Array<NormalizedRecord>) => { channel: string; detail: string } | undefined, frame: string) => {
  const records: Array<NormalizedRecord> = []
  const error = decoder(frame, records)
  return { records, error: error === undefined ? undefined : `${error.channel}: ${error.detail}` }
}

const bothWays = (make: () => Decoder, frame: string) => {
  const fast = make()
  const schema = make()
  return { fast: outcome(fast, frame), schema: outcome(schema.schemaOnly, frame) }
}

const replacements: ReadonlyArray<unknown> = [
  undefined, null, "", " ", "abc", "1.5", " 12 ", "0x10", "1e3", "Infinity", "NaN", "-0", 0, -1, 1.5, 1e21, true, false, [], {}, ["1", "2"],
  ["buy", "1", "2"], ["new", 1, 2], ["delete", 1], "BUY", "buy", "bid", "offer", "snapshot", "update", "change", "2021-05-28T12:00:00Z",
  "2021-02-30T00:00:00.000Z", "2021-05-28 12:00:00", "2021-05-28T12:00:00.1234567Z"
]

/** Every path to a value inside a JSON value. */
const pathsOf = (value: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> => {
  if (typeof value !== "object" || value === null) return [prefix]
  const children = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value)
  return [prefix, ...children.flatMap(([key, child]) => pathsOf(child, [...prefix, key]))]
}

const mutate = (frame: string, pathIndex: number, replacement: unknown): string => {
  const value = JSON.parse(frame)
  const paths = pathsOf(value).filter((p) => p.length > 0)
  const path = paths[pathIndex % paths.length]!
  let parent = value
  for (const key of path.slice(0, -1)) parent = parent[key]
  const last = path.at(-1)!
  if (replacement === undefined) {
    if (Array.isArray(parent)) parent.splice(Number(last), 1)
    else delete parent[last]
  } else parent[last] = replacement
  return JSON.stringify(value)
}

describe("hand readers agree with the Schemas", () => {
  for (const [name, make, frames] of corpora) {
    it(`${name}: every recorded frame gives the same records and errors`, () => {
      const all = frames()
      let records = 0
      for (const frame of all) {
        const { fast, schema } = bothWays(make, frame)
        assert.deepStrictEqual(fast, schema, frame.slice(0, 200))
        records += fast.records.length
      }
      assert.isAbove(records, 0)
    })

    it(`${name}: mutated frames give the same records or the same error`, () => {
      // Book and trade frames, where the readers are.
      const sample = frames().filter((f) => /aggTrade|depthUpdate|l2update|"match"|snapshot|l2_data|market_trades|"change"|trades\.|ticker\.|publicTrade\.|orderbook\.|tickers\.|"books"|"trades"/.test(f)).slice(0, 300)
      fc.assert(
        fc.property(fc.nat(sample.length - 1), fc.nat(10_000), fc.constantFrom(...replacements), (frameIndex, pathIndex, replacement) => {
          const frame = mutate(sample[frameIndex]!, pathIndex, replacement)
          const { fast, schema } = bothWays(make, frame)
          assert.deepStrictEqual(fast, schema, frame.slice(0, 300))
        }),
        { numRuns: 1500 }
      )
    })
  }

  it("reads ISO times exactly as Date.parse does", () => {
    const cases = [
      "2021-05-28T12:34:56.123456Z", "2021-05-28T12:34:56Z", "2021-05-28T12:34:56.1Z", "2021-05-28T12:34:56.12Z", "2020-02-29T00:00:00.000Z",
      "2021-02-29T00:00:00.000Z", "2021-04-31T00:00:00Z", "2021-05-28T24:00:00Z", "2021-05-28T23:59:60Z", "2021-13-01T00:00:00Z",
      "2021-05-28T12:34:56.Z", "2021-05-28T12:34:56.12a4Z", "2021-05-28T12:34:56+00:00", "nonsense", "", "2000-12-31T23:59:59.999999999Z"
    ]
    for (const s of cases) assert.isTrue(Object.is(isoMillis(s), Date.parse(s)), s)
    fc.assert(fc.property(fc.date({ min: new Date("1970-01-01"), max: new Date("2200-01-01"), noInvalidDate: true }), fc.nat(999), (date, micros) => {
      const iso = date.toISOString().replace("Z", `${String(micros).padStart(3, "0")}Z`)
      assert.strictEqual(isoMillis(iso), Date.parse(iso), iso)
      assert.strictEqual(isoMillis(date.toISOString()), date.getTime())
    }))
    // Coinbase's placeholder time: Date.UTC would read year 1 as 1901.
    assert.strictEqual(isoMillis("0001-01-01T00:00:00.000000Z"), Date.parse("0001-01-01T00:00:00.000000Z"))
    // Every string of the accepted shape, any digits in any field (years 0000-9999, impossible months and
    // days, 24:00, leap seconds, 0-9 fraction digits): the same answer as Date.parse, or both NaN.
    const field = (width: number) => fc.integer({ min: 0, max: 10 ** width - 1 }).map((n) => String(n).padStart(width, "0"))
    fc.assert(fc.property(field(4), field(2), field(2), field(2), fc.integer({ min: 0, max: 61 }), fc.integer({ min: 0, max: 61 }), fc.string({ unit: fc.constantFrom("0", "1", "5", "9"), maxLength: 10 }), (year, month, day, hour, minute, second, fraction) => {
      const iso = `${year}-${month}-${day}T${hour}:${String(minute).padStart(2, "0")}:${String(second).padStart(2, "0")}${fraction === "" ? "" : `.${fraction}`}Z`
      assert.isTrue(Object.is(isoMillis(iso), Date.parse(iso)), iso)
    }), { numRuns: 5000 })
  })
})
