/**
 * OKX: the normalizer on the recorded 2022 session (every book message's
 * checksum verified against the book built from the messages), the contract
 * values of the recorded instruments, and the whole service fed by the fake
 * OKX (the recording in today's format, plus funding, open interest, mark
 * prices and liquidations in the documented formats) into both databases.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { NormalizedRecord } from "../src/domain/records.ts"
import { RowBatch } from "../src/domain/rows.ts"
import { defaultPipelineSettings, makeProcessor, makeVenueRuntime } from "../src/pipeline/runtime.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { ChecksumBook } from "../src/venues/okx/checksum.ts"
import { decodeInstruments, instrumentFrom } from "../src/venues/okx/instruments.ts"
import { aggregateFills } from "../src/venues/okx/live.ts"
import { okx } from "../src/venues/okx/index.ts"
import { makeDecoder } from "../src/venues/okx/normalize.ts"
import { replayRecording } from "../src/replay/replay.ts"
import { FakeOkx, liquidationPositions, okxInstruments } from "./fake/okx.ts"
import { recording } from "./support/fixtures.ts"
import { databases, eventually, freePort, getData, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const frames = () => recording("OKX.ws.1.0").frames.map((f) => f.text)

const decodeAll = (texts: ReadonlyArray<string>) => {
  const decode = makeDecoder("okx", { openInterestIntervalMs: 0 })
  const records: Array<NormalizedRecord> = []
  const errors: Array<string> = []
  for (const text of texts) {
    const error = decode(text, records)
    if (error !== undefined) errors.push(`${error.channel}: ${error.detail}`)
  }
  return { records, errors }
}

describe("okx normalizer on the recorded session", () => {
  it("decodes every frame; every book message passes its checksum once the book is built from the messages", () => {
    const { records, errors } = decodeAll(frames())
    assert.deepStrictEqual(errors, [])
    assert.strictEqual(records.filter((r) => r.kind === "book_invalid").length, 0)
    assert.strictEqual(records.filter((r) => r.kind === "trade").length, 74)
    // The same, independently of the decoder: every message carries a checksum, and each equals ours.
    const books = new Map<string, ChecksumBook>()
    let checked = 0
    for (const text of frames()) {
      const message = JSON.parse(text)
      if (message.arg?.channel !== "books" || message.data === undefined) continue
      if (message.action === "snapshot") books.set(message.arg.instId, new ChecksumBook())
      const book = books.get(message.arg.instId)!
      book.apply(message.data[0].bids, message.data[0].asks)
      assert.strictEqual(book.checksum(), message.data[0].checksum, text.slice(0, 120))
      checked++
    }
    assert.strictEqual(checked, 290, "3 snapshots and 287 updates")
  })

  it("a book whose checksum fails becomes book_invalid, and is not checked again until its next snapshot", () => {
    const decode = makeDecoder("okx")
    const out: Array<NormalizedRecord> = []
    const snapshot = { arg: { channel: "books", instId: "BTC-USDT" }, action: "snapshot", data: [{ asks: [["101", "1", "0", "1"]], bids: [["100", "2", "0", "1"]], ts: "1700000000000", checksum: 0, seqId: 10, prevSeqId: -1 }] }
    const good = new ChecksumBook()
    good.apply(snapshot.data[0]!.bids, snapshot.data[0]!.asks)
    snapshot.data[0]!.checksum = good.checksum()
    decode(JSON.stringify(snapshot), out)
    decode(JSON.stringify({ arg: snapshot.arg, action: "update", data: [{ asks: [], bids: [["100", "3", "0", "1"]], ts: "1700000000100", checksum: 12345, seqId: 11, prevSeqId: 10 }] }), out)
    decode(JSON.stringify({ arg: snapshot.arg, action: "update", data: [{ asks: [], bids: [["99", "3", "0", "1"]], ts: "1700000000200", checksum: 999, seqId: 12, prevSeqId: 11 }] }), out)
    assert.deepStrictEqual(out.map((r) => r.kind), ["book_snapshot", "book_delta", "book_invalid", "book_delta"])
    assert.strictEqual((out[2] as any).reason, "checksum mismatch")
    assert.deepInclude(out[1] as object, { firstSequence: 11, lastSequence: 11, previousSequence: 10 })
  })

  it("maps trades (count aggregated fills), funding (fundingTime is the next settlement), open interest, marks and liquidations", () => {
    const decode = makeDecoder("okx", { openInterestIntervalMs: 60_000, wanted: (id) => id === "BTC-USDT-SWAP" })
    const out: Array<NormalizedRecord> = []
    decode('{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","tradeId":"130639474","px":"42219.9","sz":"0.12","side":"buy","ts":"1630048897897","count":"3"}]}', out)
    decode('{"arg":{"channel":"funding-rate","instId":"BTC-USD-SWAP"},"data":[{"fundingRate":"0.0001875","fundingTime":"1700726400000","instId":"BTC-USD-SWAP","instType":"SWAP","method":"next_period","nextFundingTime":"1700755200000","ts":"1700724675402"}]}', out)
    decode('{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","oi":"5000","oiCcy":"50","oiUsd":"2000000","ts":"1700000000000"}]}', out)
    decode('{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","oi":"5001","oiCcy":"50","oiUsd":"2000000","ts":"1700000030000"}]}', out)
    decode('{"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","markPx":"40000","ts":"1700000000000"}]}', out)
    decode('{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0","bkPx":"39000.5","ccy":"","posSide":"long","side":"sell","sz":"12","ts":"1723892524781"}],"instFamily":"BTC-USDT","instId":"BTC-USDT-SWAP","instType":"SWAP","uly":"BTC-USDT"},{"details":[{"bkLoss":"0","bkPx":"1.057","posSide":"long","side":"sell","sz":"768","ts":"1723892524781"}],"instId":"DYDX-USDT-SWAP","instType":"SWAP"}]}', out)
    assert.isUndefined(decode("pong", out))
    const [trade, funding, oi, mark, liquidation] = out as Array<any>
    assert.deepInclude(trade, { tradeId: "130639474", sequence: 130639474, firstSequence: 130639472, side: "buy", size: 0.12, price: 42219.9 })
    assert.deepInclude(funding, { rate: 0.0001875, nextFundingTime: 1700726400000, timestamp: 1700724675402 })
    assert.deepInclude(funding.details, { following_funding_time: 1700755200000, interval_hours_stated: 8 })
    assert.deepInclude(oi, { openInterest: 5000, venueValueUsd: 2000000 })
    assert.strictEqual(out.filter((r) => r.kind === "open_interest").length, 1, "at most once a minute")
    assert.deepInclude(mark, { kind: "mark_price", markPrice: 40000 })
    assert.deepInclude(liquidation, { kind: "liquidation", symbol: "BTC-USDT-SWAP", side: "sell", price: 39000.5, filledSize: 12, sampled: true })
    assert.deepInclude(liquidation.details, { position_side: "long", price_kind: "bankruptcy" })
    assert.strictEqual(out.filter((r) => r.kind === "liquidation").length, 1, "only the configured instruments")
    const refused: Array<NormalizedRecord> = []
    assert.match(decode('{"event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:NOPE doesn\'t exist.","connId":"a"}', refused)!.detail, /venue error 60018/)
  })

  it.effect("funding: nextFundingRate is the predicted rate; a push without ts is stamped at receipt, not at its next settlement", () =>
    Effect.gen(function*() {
      const push = (fields: string) =>
        `{"arg":{"channel":"funding-rate","instId":"BTC-USD-SWAP"},"data":[{"fundingRate":"0.0001875","fundingTime":"1700726400000","instId":"BTC-USD-SWAP","instType":"SWAP","nextFundingTime":"1700755200000"${fields}}]}`
      const built: Array<RowBatch> = []
      const recording = {
        frames: [
          // The forecast OKX gives under the next_period method, with the push's own time.
          { connection: "ws", receivedAt: 1700724676000, text: push(',"method":"next_period","nextFundingRate":"0.00012","ts":"1700724675402"') },
          // The current_period method gives no forecast: "".
          { connection: "ws", receivedAt: 1700755300000, text: push(',"method":"current_period","nextFundingRate":"","ts":"1700755299000"').replace(/1700726400000/, "1700784000000").replace(/1700755200000/, "1700812800000") },
          // No ts at all: received at 1700812900000, which is the row's time (its next settlement, 1700841600000, lies 8 h ahead).
          { connection: "ws", receivedAt: 1700812900000, text: push("").replace(/1700726400000/, "1700841600000").replace(/1700755200000/, "1700870400000") }
        ],
        sent: [],
        rest: []
      }
      const stats = yield* replayRecording(okx, recording, defaultPipelineSettings, (batch) => Effect.sync(() => void built.push(batch)))
      assert.strictEqual(stats.decodeErrors, 0)
      const rows = built.flatMap((b) => b.funding_rates)
      assert.deepStrictEqual(rows.map((r) => [r.rate, r.predictedRate, r.timestamp, r.nextFundingTime]), [
        [0.0001875, 0.00012, 1700724675402, 1700726400000],
        [0.0001875, null, 1700755299000, 1700784000000],
        [0.0001875, null, 1700812900000, 1700841600000]
      ])
      assert.strictEqual(rows[2]!.metadata?.time_source, "receipt")
      assert.isUndefined(rows[0]!.metadata?.time_source)
    }))

  it("liquidations: OKX's documented example (hedge mode) and net mode, where the order's side names the position", () => {
    const decode = makeDecoder("okx")
    const out: Array<NormalizedRecord> = []
    // The push example of OKX's v5 docs, liquidation-orders channel, verbatim.
    decode('{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0","bkPx":"0.007831","ccy":"","posSide":"short","side":"buy","sz":"13","ts":"1692266434010"}],"instFamily":"IOST-USDT","instId":"IOST-USDT-SWAP","instType":"SWAP","uly":"IOST-USDT"}]}', out)
    // The same in net mode (posSide "net", documented as "Net mode"): a buy order closed a short, a sell a long.
    decode('{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0","bkPx":"0.007831","ccy":"","posSide":"net","side":"buy","sz":"13","ts":"1692266434011"},{"bkLoss":"0","bkPx":"0.007829","ccy":"","posSide":"net","side":"sell","sz":"7","ts":"1692266434012"}],"instFamily":"IOST-USDT","instId":"IOST-USDT-SWAP","instType":"SWAP","uly":"IOST-USDT"}]}', out)
    const [documented, netBuy, netSell] = out as Array<any>
    assert.deepInclude(documented, { kind: "liquidation", symbol: "IOST-USDT-SWAP", side: "buy", price: 0.007831, filledSize: 13, timestamp: 1692266434010 })
    assert.strictEqual(documented.details.position_side, "short")
    assert.deepStrictEqual([netBuy.side, netBuy.details.position_side, netBuy.details.position_mode], ["buy", "short", "net"])
    assert.deepStrictEqual([netSell.side, netSell.details.position_side, netSell.details.position_mode], ["sell", "long", "net"])
  })

  it("open interest valued from the recorded contract values: OKX's documented example (linear) and inverse by hand", () => {
    const rest = recording("OKX.0").rest
    const runtime = makeVenueRuntime(defaultPipelineSettings, () => Effect.void)
    for (const type of ["SWAP", "FUTURES"]) {
      const decoded = decodeInstruments(JSON.parse(rest.find((r) => r.url.endsWith(`instType=${type}`))!.body))
      if (decoded._tag !== "Success") assert.fail(`recorded ${type} instruments`)
      else for (const listing of decoded.success.kept) {
        const instrument = instrumentFrom("okx", listing)
        if (instrument !== undefined) runtime.instruments.add(instrument)
      }
    }
    const processor = makeProcessor(runtime, "okx", { sequenceRule: undefined, requestSnapshot: () => undefined })
    const decode = makeDecoder("okx", { openInterestIntervalMs: 0 })
    const records: Array<NormalizedRecord> = []
    // OKX's docs, open-interest channel push example, verbatim: BTC-USDT-SWAP (recorded: linear, ctVal 0.01 BTC, ctMult 1).
    //   oi 2,216,113.01 contracts x 0.01 BTC = 22,161.1301 BTC, the documented oiCcy;
    //   its oiUsd 1,939,251,795.5477 / 22,161.1301 BTC = 87,506.9 USD, the mark it was valued at (given below).
    decode('{"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","markPx":"87506.9","ts":"1743041250000"}]}', records)
    decode('{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","instType":"SWAP","oi":"2216113.01000000309","oiCcy":"22161.1301000000309","oiUsd":"1939251795.54769270396321","ts":"1743041250440"}]}', records)
    // Inverse (recorded: UNI-USD-SWAP ctVal 10 USD, BTC-USD-220527 ctVal 100 USD, ctMult 1): contracts x USD, whatever the mark.
    //   UNI-USD-SWAP 48,213 x 10 USD = 482,130 USD; BTC-USD-220527 71,250 x 100 USD = 7,125,000 USD.
    decode('{"arg":{"channel":"mark-price","instId":"UNI-USD-SWAP"},"data":[{"instId":"UNI-USD-SWAP","instType":"SWAP","markPx":"5.123","ts":"1743041250000"}]}', records)
    decode('{"arg":{"channel":"open-interest","instId":"UNI-USD-SWAP"},"data":[{"instId":"UNI-USD-SWAP","instType":"SWAP","oi":"48213","oiCcy":"94110.87253562","oiUsd":"482130","ts":"1743041250440"}]}', records)
    decode('{"arg":{"channel":"mark-price","instId":"BTC-USD-220527"},"data":[{"instId":"BTC-USD-220527","instType":"FUTURES","markPx":"30229.6","ts":"1743041250000"}]}', records)
    decode('{"arg":{"channel":"open-interest","instId":"BTC-USD-220527"},"data":[{"instId":"BTC-USD-220527","instType":"FUTURES","oi":"71250","oiCcy":"235.69613888","oiUsd":"7125000","ts":"1743041250440"}]}', records)
    const batch = new RowBatch()
    processor.process(records, 1743041251000, batch)
    const bySymbol = new Map(batch.open_interest.map((row) => [row.symbol, row]))
    assert.closeTo(bySymbol.get("BTC-USDT-SWAP")!.openInterestUsd, 1_939_251_795.55, 0.01)
    assert.strictEqual(bySymbol.get("BTC-USDT-SWAP")!.metadata?.contract_size, 0.01)
    assert.strictEqual(bySymbol.get("UNI-USD-SWAP")!.openInterestUsd, 482_130)
    assert.strictEqual(bySymbol.get("BTC-USD-220527")!.openInterestUsd, 7_125_000)
    assert.strictEqual(processor.counters.venueFigureMismatch, 0, "each within 0.1 % of OKX's oiUsd")
  })

  it("contract values of the recorded instruments: linear in coins, inverse in USD", () => {
    const rest = recording("OKX.0").rest
    const listed = (type: string) => {
      const decoded = decodeInstruments(JSON.parse(rest.find((r) => r.url.endsWith(`instType=${type}`))!.body))
      assert.strictEqual(decoded._tag, "Success")
      return decoded._tag === "Success" ? decoded.success.kept : []
    }
    const find = (type: string, id: string) => instrumentFrom("okx", listed(type).find((l) => l.instId === id)!)!
    assert.deepInclude(find("SWAP", "BTC-USDT-SWAP"), { base: "BTC", quote: "USDT", kind: "perpetual", contractSize: 0.01, inverse: false })
    assert.deepInclude(find("SWAP", "BTC-USD-SWAP"), { base: "BTC", quote: "USD", kind: "perpetual", contractSize: 100, inverse: true })
    assert.deepInclude(find("SWAP", "UNI-USD-SWAP"), { contractSize: 10, inverse: true })
    assert.deepInclude(find("FUTURES", "BTC-USD-220527"), { kind: "future", contractSize: 100, inverse: true })
    assert.deepInclude(find("SPOT", "BTC-USDT"), { kind: "spot", contractSize: 1 })
  })

  it("repaired fills are grouped as the trades channel groups them: one taker order at one price", () => {
    const fill = (id: number, px: string, ts: string, side: "buy" | "sell" = "buy") => ({ instId: "BTC-USDT", tradeId: String(id), px: Number(px), sz: 0.5, side, ts: Number(ts) })
    const grouped = aggregateFills("okx", [fill(13, "100", "5"), fill(11, "100", "5"), fill(12, "100", "5"), fill(14, "101", "5"), fill(15, "101", "6")])
    assert.deepStrictEqual(grouped.map((t) => [t.firstSequence ?? t.sequence, t.sequence, t.size, t.details.fills]), [[11, 13, 1.5, 3], [14, 14, 0.5, 1], [15, 15, 0.5, 1]])
  })
})

const clean = truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

describe.each(databases)("okx through the live service into %s", (name, database) => {
  it.live("every trade once, valued by its contract; funding, open interest valued by hand, liquidations and books", () =>
    Effect.scoped(Effect.gen(function*() {
      if (name === "postgres") yield* clean
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeOkx.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        ...database(), PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "okx",
        OKX_WS_URL: fake.wsUrl, OKX_REST_URL: fake.httpUrl, OKX_INSTRUMENTS: okxInstruments.join(","), OKX_PING_SECONDS: "1",
        LARGE_TRADE_THRESHOLD_BTC: "1", LARGE_TRADE_THRESHOLD_ETH: "1", LARGE_TRADE_THRESHOLD_DEFAULT: "1",
        ORDERBOOK_INTERVAL_SECONDS: "0.5", OPEN_INTEREST_INTERVAL_SECONDS: "0", FUNDING_SAMPLE_SECONDS: "1", WRITER_FLUSH_MS: "20",
        FRESHNESS_MIN_STALE_SECONDS: "120"
      })
      const base = `http://127.0.0.1:${port}`
      const api = `${base}/api/v1/exchange`
      yield* eventually("the session played out", Effect.sync(() => (fake.finished() ? true : undefined)), 60_000)
      const expected = new Map<string, any>()
      // Every trade worth at least the 1 USD threshold (a few spot trades are not).
      for (const [instId, list] of fake.trades) {
        for (const t of list) if (instId !== "BTC-USDT" || Number(t.px) * Number(t.sz) >= 1) expected.set(`${instId}/${t.tradeId}`, t)
      }
      const stored = yield* eventually("every trade stored", Effect.map(getJson(`${api}/large-trades?exchange=okx&only_liquidations=false&limit=1000`), ({ body }) => {
        const trades = body.data.trades.filter((t: any) => !t.is_liquidation)
        return trades.length >= expected.size ? trades : undefined
      }), 30_000)
      assert.sameMembers(stored.map((t: any) => `${t.symbol}/${t.trade_id}`), [...expected.keys()])
      for (const row of stored) assert.strictEqual(row.side, expected.get(`${row.symbol}/${row.trade_id}`).side)
      // Recorded trades valued by hand (contract values from the recorded instruments, OKX.0):
      const valueOf = (symbol: string, tradeId: string) => stored.find((t: any) => t.symbol === symbol && t.trade_id === tradeId)?.value_usd
      assert.strictEqual(valueOf("UNI-USD-SWAP", "12883020"), 1_000, "100 contracts x 10 USD (inverse, ctVal 10 USD)")
      assert.strictEqual(valueOf("BTC-USD-220527", "7849"), 100, "1 contract x 100 USD (inverse, ctVal 100 USD)")
      assert.strictEqual(valueOf("BTC-USD-220527", "7852"), 3_000, "30 contracts x 100 USD")
      assert.closeTo(valueOf("BTC-USDT", "338476307"), 6.0472, 0.005, "spot: 0.0002 BTC x 30,236 USDT")

      // The fake sends fixed readings (openInterestReadings); valued by hand from the recorded contract values,
      // inverse so independent of the mark: UNI-USD-SWAP x 10 USD, BTC-USD-220527 x 100 USD.
      const handValued: Record<string, number> = {
        "UNI-USD-SWAP/48213": 482_130,
        "UNI-USD-SWAP/48250": 482_500,
        "BTC-USD-220527/71250": 7_125_000,
        "BTC-USD-220527/71300": 7_130_000
      }
      const oi = (yield* getData(`${api}/open-interest?exchange=okx&limit=1000`)).open_interest
      assert.sameMembers([...new Set(oi.map((row: any) => row.symbol))], ["UNI-USD-SWAP", "BTC-USD-220527"])
      for (const row of oi) {
        const usd = handValued[`${row.symbol}/${row.open_interest}`]
        assert.isDefined(usd, `${row.symbol} ${row.open_interest}: a reading the fake sent`)
        assert.strictEqual(row.open_interest_usd, usd, `${row.symbol}: ${row.open_interest} contracts`)
        assert.strictEqual(row.metadata.venue_value_usd, usd, "OKX's own oiUsd kept beside ours")
      }
      const fundingAnswer = yield* getJson(`${api}/funding-rates?exchange=okx`)
      assert.isDefined(fundingAnswer.body.data, JSON.stringify(fundingAnswer).slice(0, 300))
      const funding = fundingAnswer.body.data.funding_rates
      assert.isAbove(funding.length, 0)
      assert.strictEqual(funding[0].symbol, "UNI-USD-SWAP")
      assert.strictEqual(funding[0].metadata.interval_hours, 8)
      assert.strictEqual(new Date(funding[0].next_funding_time).getTime() % 28_800_000, 0)
      const liquidations = (yield* getData(`${api}/large-trades?exchange=okx&only_liquidations=true&limit=1000`)).trades
      assert.isAbove(liquidations.length, 0)
      // The fake sent hedge-mode (posSide long/short) and net-mode (posSide "net") liquidations:
      assert.includeMembers(fake.sentLiquidations.map((d) => d.posSide), ["long", "short", "net"])
      assert.strictEqual(liquidationPositions.length, 4)
      // ...stored with the position each closed: a buy order closes a short, a sell a long (the docs' example: short, buy).
      const positionOf: Record<string, string> = { buy: "short", sell: "long" }
      for (const l of liquidations) assert.strictEqual(l.metadata.position_side, positionOf[l.side], JSON.stringify(l.metadata))
      assert.sameMembers([...new Set(liquidations.map((l: any) => l.metadata.position_side))], ["long", "short"])

      yield* Effect.sleep("1500 millis")
      const books = (yield* getData(`${api}/orderbooks?exchange=okx&symbol=BTC-USDT`)).orderbooks
      assert.deepStrictEqual([books[0].bids[0][0], books[0].asks[0][0]], [...fake.bestOf("BTC-USDT")!])
      const btc = (yield* getData(`${api}/large-trades?symbol=BTC&exchange=okx&limit=1`)).summary.symbols
      assert.sameMembers(btc, ["BTC-USDT", "BTC-USD-220527"])
      const gaps = (yield* getData(`${api}/gaps`))
      assert.strictEqual(gaps.count, 0, JSON.stringify(gaps.gaps).slice(0, 300))
      const metrics = yield* Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
      assert.notMatch(metrics, /venue_figure_mismatch_total\{[^}]*\} [1-9]/)
      assert.isAtLeast(fake.pings, 1)
      const health = (yield* getJson(`${base}/health`)).body
      assert.isTrue(health.feeds.every((f: any) => f.state === "connected"))
    })), { timeout: 120_000 })
})

describe("okx checksum in the running service", () => {
  it.live("an update whose book fails OKX's checksum resyncs that book and records a checksum gap", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeOkx.start({ frameIntervalMs: 5, loop: true })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "okx",
        OKX_WS_URL: fake.wsUrl, OKX_REST_URL: fake.httpUrl, OKX_INSTRUMENTS: okxInstruments.join(","), ORDERBOOK_INTERVAL_SECONDS: "0.2"
      })
      const base = `http://127.0.0.1:${port}`
      const book = (body: any) => body.feeds.flatMap((f: any) => f.books).find((b: any) => b.symbol === "BTC-USDT")
      yield* eventually("the book live", Effect.map(getJson(`${base}/health`), ({ body }) => (book(body)?.state === "live" ? true : undefined)))
      fake.corruptNext("BTC-USDT")
      const gap = yield* eventually("a checksum gap", Effect.map(getJson(`${base}/api/v1/exchange/gaps?channel=book`), ({ body }) =>
        body.data.gaps.find((g: any) => g.symbol === "BTC-USDT" && g.cause === "checksum")), 20_000)
      assert.match(gap.metadata.reason, /checksum mismatch/)
      const after = yield* eventually("live again", Effect.map(getJson(`${base}/health`), ({ body }) => (book(body)?.state === "live" && book(body).resyncs > 0 ? book(body) : undefined)), 20_000)
      assert.isAbove(after.resyncs, 0)
      const metrics = yield* Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
      assert.match(metrics, /book_resyncs_total\{[^}]*reason="checksum mismatch"[^}]*\} [1-9]/)
    })), { timeout: 60_000 })
})
