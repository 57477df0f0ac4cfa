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

/** Every object of a JSON value with its keys in a shuffled order (the seed picks it). */
const reorderKeys = (value: unknown, seed: number): unknown => {
  if (Array.isArray(value)) return value.map((v, i) => reorderKeys(v, seed + i))
  if (typeof value !== "object" || value === null) return value
  const entries = Object.entries(value)
  const order = entries.map((_, i) => i).sort((a, b) => ((a * 7919 + seed) % 13) - ((b * 7919 + seed) % 13) || a - b)
  return Object.fromEntries(order.map((i) => [entries[i]![0], reorderKeys(entries[i]![1], seed * 31 + i)]))
}

/**
 * Changes to a frame's TEXT that JSON.stringify never makes, for the readers that read the text itself
 * (FrameText): each makes invalid JSON, or valid JSON that must read to the same values or be refused the same way.
 */
const textMutations: ReadonlyArray<(frame: string, at: number) => string> = [
  // Whitespace between (or inside) tokens.
  (frame, at) => `${frame.slice(0, at % (frame.length + 1))} ${frame.slice(at % (frame.length + 1))}`,
  // Cut short, or something after the end.
  (frame, at) => frame.slice(0, at % frame.length),
  (frame) => `${frame}x`,
  (frame) => `${frame} `,
  // One character written as an escape: the same string inside a string, invalid JSON elsewhere.
  (frame, at) => {
    const i = at % frame.length
    return /\w/.test(frame[i]!) ? `${frame.slice(0, i)}\\u00${frame.charCodeAt(i).toString(16).padStart(2, "0")}${frame.slice(i + 1)}` : `${frame.slice(0, i)}\\n${frame.slice(i)}`
  },
  // A raw control character.
  (frame, at) => `${frame.slice(0, at % frame.length)}\u0001${frame.slice(at % frame.length)}`,
  // A key of the frame written twice in one object, before or after its own (JSON.parse keeps the last).
  (frame, at) => {
    const keys = [...frame.matchAll(/"(\w+)":/g)].map((m) => m[1]!)
    const opens = [...frame.matchAll(/\{/g)].map((m) => m.index)
    const key = keys[at % keys.length]!
    const i = opens[Math.floor(at / 7) % opens.length]! + 1
    return `${frame.slice(0, i)}"${key}":"1",${frame.slice(i)}`
  },
  (frame, at) => {
    const keys = [...frame.matchAll(/"(\w+)":/g)].map((m) => m[1]!)
    const closes = [...frame.matchAll(/\}/g)].map((m) => m.index)
    const i = closes[Math.floor(at / 7) % closes.length]!
    return `${frame.slice(0, i)},"${keys[at % keys.length]!}":${at % 2 === 0 ? '"1"' : "1"}${frame.slice(i)}`
  },
  // The same values, the keys in another order.
  (frame, at) => JSON.stringify(reorderKeys(JSON.parse(frame), at))
]

/** How the frames read from their text (FrameText) begin. */
const textShapes = ['{"topic":"publicTrade.', '{"arg":{"channel":"trades",']

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

    it(`${name}: frames whose text is rewritten (spaces, escapes, repeated or reordered keys, cut or extended) give the same records or the same error`, () => {
      // Half of them of the shapes read from their text (they may be rare in a corpus), half of the other hot ones.
      const hot = frames().filter((f) => /aggTrade|depthUpdate|l2update|"match"|snapshot|l2_data|market_trades|"change"|trades\.|ticker\.|publicTrade\.|orderbook\.|tickers\.|"books"|"trades"/.test(f))
      const readAsText = (f: string) => textShapes.some((shape) => f.startsWith(shape))
      const sample = [...hot.filter(readAsText).slice(0, 150), ...hot.filter((f) => !readAsText(f)).slice(0, 150)]
      fc.assert(
        fc.property(fc.nat(sample.length - 1), fc.nat(100_000), fc.nat(textMutations.length - 1), (frameIndex, at, kind) => {
          const frame = textMutations[kind]!(sample[frameIndex]!, at)
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
