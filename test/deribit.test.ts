/**
 * Deribit: the normalizer on the recorded session (option books and tickers,
 * JSON-RPC acks) and on documented trade/DVOL/funding messages; then the
 * service end to end against the fake Deribit into PostgreSQL: inverse trades
 * valued in USD, options at the index price, liquidations flagged, books by
 * change id, funding, open interest in contracts and USD, DVOL and the option
 * chain through the API, heartbeats answered, lost trades repaired by trade_seq.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { BookSync } from "../src/book/sync.ts"
import type { NormalizedRecord, OptionQuote, Trade } from "../src/domain/records.ts"
import { makeDecoder, tradeRecord } from "../src/venues/deribit/normalize.ts"
import { decodeInstruments, deribitGreeks, type DeribitInstrument, instrumentFrom } from "../src/venues/deribit/instruments.ts"
import { InstrumentRegistry } from "../src/domain/instruments.ts"
import { LargeTradeDetector } from "../src/domain/large-trades.ts"
import { ReferencePrices } from "../src/domain/valuation.ts"
import type { LargeTradeRow } from "../src/domain/rows.ts"
import { parseOptionName } from "../src/venues/deribit/normalize.ts"
import { changeIdRule } from "../src/venues/deribit/rules.ts"
import { activeOption, FakeDeribit } from "./fake/deribit.ts"
import { recording } from "./support/fixtures.ts"
import { maxInWindow } from "./support/rate.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"
import { postgresLayer } from "../src/storage/database.ts"

const frames = () => recording("DERIBIT.ws.1.0").frames.map((f) => f.text)

describe("deribit normalizer", () => {
  it("decodes every recorded frame: option books by change id, tickers with greeks as chain quotes", () => {
    const decode = makeDecoder("deribit")
    const records: Array<NormalizedRecord> = []
    for (const frame of frames()) assert.isUndefined(decode(frame, records), frame.slice(0, 120))
    const quotes = records.filter((r): r is OptionQuote => r.kind === "option_quote")
    assert.strictEqual(quotes.length, 89)
    const first = quotes.find((q) => q.symbol === "ETH-30JUL21-2800-C")!
    assert.deepInclude(first, {
      currency: "ETH",
      expiry: Date.UTC(2021, 6, 30, 8),
      strike: 2800,
      optionType: "call",
      markPrice: 0.001972,
      markIv: 120.74,
      bidIv: 115.62,
      askIv: 125.63,
      openInterest: 12685,
      underlyingPrice: 2003.61
    })
    assert.deepStrictEqual(first.greeks, { vega: 0.20072, theta: -1.64029, rho: 0.01188, gamma: 0.0002, delta: 0.03127 })
    // Every recorded book chains: snapshot, then prev_change_id = the previous change_id, with no resync.
    const sync = new BookSync({ venue: "deribit", rule: changeIdRule, depth: 20, snapshotIntervalMs: 1000, maxBuffered: 100, requestSnapshot: () => undefined })
    for (const r of records) {
      if (r.kind === "book_snapshot") sync.onSnapshot(r)
      if (r.kind === "book_delta") sync.onDelta(r)
    }
    assert.isAbove(sync.status().length, 5)
    assert.isTrue(sync.status().every((s) => s.state === "live" && s.resyncs === 0))
  })

  it("maps documented trades: taker direction, USD amounts, liquidation flag, option index price", () => {
    const decode = makeDecoder("deribit")
    const out: Array<NormalizedRecord> = []
    decode(JSON.stringify({
      jsonrpc: "2.0",
      method: "subscription",
      params: {
        channel: "trades.future.BTC.100ms",
        data: [
          { trade_seq: 30289432, trade_id: "48079254", timestamp: 1590484156350, tick_direction: 0, price: 8950, mark_price: 8948.9, instrument_name: "BTC-PERPETUAL", index_price: 8955.88, direction: "sell", amount: 10, liquidation: "M" },
          { trade_seq: 1966, trade_id: "ETH-1", timestamp: 1590484156351, price: 0.0125, iv: 71.5, instrument_name: "ETH-25JUN21-2000-C", index_price: 2000, direction: "buy", amount: 3 }
        ]
      }
    }), out)
    const [perp, option] = out as Array<Trade>
    assert.deepInclude(perp!, { symbol: "BTC-PERPETUAL", tradeId: "48079254", sequence: 30289432, price: 8950, size: 10, side: "sell", liquidation: true })
    assert.isUndefined(perp!.quoteUsdRate)
    assert.deepInclude(option!, { symbol: "ETH-25JUN21-2000-C", sequence: 1966, side: "buy", quoteUsdRate: 2000 })
  })

  it("values every contract type as a hand computation does, and stores the liquidated order's side", () => {
    const listing = (instrument_name: string, kind: string, base: string, quote: string, contract_size: number, type?: string) => ({
      instrument_name, kind, base_currency: base, quote_currency: quote, contract_size, expiration_timestamp: 1_798_185_600_000,
      settlement_period: instrument_name.endsWith("PERPETUAL") ? "perpetual" : "month", ...(type === undefined ? {} : { instrument_type: type, future_type: type })
    })
    const instruments = new InstrumentRegistry()
    for (const i of [
      listing("BTC-PERPETUAL", "future", "BTC", "USD", 10, "reversed"),
      listing("BTC-25DEC26", "future", "BTC", "USD", 10, "reversed"),
      listing("ETH-PERPETUAL", "future", "ETH", "USD", 1, "reversed"),
      listing("BTC_USDC-PERPETUAL", "future", "BTC", "USDC", 0.001, "linear"),
      listing("ETH_USDC-25DEC26", "future", "ETH", "USDC", 0.01, "linear"),
      listing("BTC-25DEC26-60000-C", "option", "BTC", "BTC", 1),
      listing("SOL_USDC-25DEC26-200-P", "option", "SOL", "USDC", 1)
    ]) instruments.add(instrumentFrom("deribit", i as DeribitInstrument))
    const detector = new LargeTradeDetector(instruments, new ReferencePrices(), { byAsset: {}, otherAssets: 0 })
    const trade = (instrument_name: string, price: number, amount: number, extra: Record<string, unknown> = {}) =>
      tradeRecord("deribit", { trade_seq: 1, trade_id: instrument_name, timestamp: 1_790_000_000_000, price, amount, direction: "sell", instrument_name, index_price: 60_000, ...extra } as any, "trades")
    const rows: Array<LargeTradeRow> = []
    const cases: Array<[Trade, number, string]> = [
      [trade("BTC-PERPETUAL", 60_000, 1000), 1000, "inverse perpetual: amount is USD"],
      [trade("BTC-25DEC26", 61_000, 500), 500, "inverse future: amount is USD"],
      [trade("ETH-PERPETUAL", 3000, 250), 250, "inverse ETH perpetual: amount is USD"],
      [trade("BTC_USDC-PERPETUAL", 60_000, 0.5), 30_000, "linear perpetual: 0.5 BTC x 60,000 (not x contract size 0.001)"],
      [trade("ETH_USDC-25DEC26", 3000, 2), 6000, "linear future: 2 ETH x 3,000"],
      [trade("BTC-25DEC26-60000-C", 0.05, 2), 6000, "coin option: 0.05 BTC x 2 x index 60,000"],
      [trade("SOL_USDC-25DEC26-200-P", 12, 3, { index_price: 180 }), 36, "USDC option: 12 USDC x 3 SOL, not at the SOL index"]
    ]
    for (const [t, usd, what] of cases) {
      assert.strictEqual(detector.trade(t, rows), "stored", what)
      assert.strictEqual(rows.at(-1)!.valueUsd, usd, what)
    }
    // Liquidations: "M" the maker's order was liquidated (the taker sold, so the liquidated order bought), "T" the taker's, "MT" both.
    const liquidations: Array<[string, string, string | undefined]> = [["M", "buy", "buy"], ["T", "sell", "sell"], ["MT", "sell", "both"]]
    for (const [flag, side, liquidated] of liquidations) {
      detector.trade(trade("BTC-PERPETUAL", 60_000, 200_000, { liquidation: flag, trade_id: `liq-${flag}` }), rows)
      const row = rows.at(-1)!
      assert.isTrue(row.isLiquidation)
      assert.strictEqual(row.side, side, `liquidation ${flag}`)
      assert.deepInclude(row.metadata as object, { taker_side: "sell", liquidated_side: liquidated, liquidation: flag })
    }
  })

  it("keeps the instruments of a get_instruments answer when one listing is odd (a combo without expiration_timestamp)", () => {
    const listings = JSON.parse(recording("DERIBIT.0").rest.find((r) => r.url.includes("get_instruments"))!.body).result
    const combo = { instrument_name: "BTC-FS-27DEC26_PERP", kind: "future_combo", base_currency: "BTC", quote_currency: "USD", contract_size: 10 }
    const decoded = decodeInstruments({ jsonrpc: "2.0", result: [...listings.slice(0, 5), combo, ...listings.slice(5)] })
    assert.isTrue(decoded._tag === "Success")
    const { kept, dropped, problem } = (decoded as any).success
    assert.strictEqual(kept.length, listings.length)
    assert.strictEqual(dropped, 1)
    assert.include(problem, "expiration_timestamp")
  })

  it("reads DVOL, perpetual funding and JSON-RPC errors; heartbeats are not data", () => {
    const decode = makeDecoder("deribit")
    const out: Array<NormalizedRecord> = []
    assert.isUndefined(decode('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"deribit_volatility_index.btc_usd","data":{"volatility":51.13,"timestamp":1700000000000,"index_name":"btc_usd"}}}', out))
    assert.isUndefined(decode('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":{"instrument_name":"BTC-PERPETUAL","timestamp":1700000000000,"mark_price":50000,"index_price":49990,"open_interest":123,"current_funding":0.00002,"funding_8h":0.00015}}}', out))
    assert.isUndefined(decode('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}', out))
    assert.deepStrictEqual(out[0], { kind: "volatility_index", venue: "deribit", symbol: "btc_usd", value: 51.13, timestamp: 1700000000000 })
    assert.deepInclude(out[1]!, { kind: "funding", rate: 0.00015, predictedRate: null, markPrice: 50000, indexPrice: 49990 })
    assert.strictEqual(out.length, 2)
    const error = decode('{"jsonrpc":"2.0","id":7,"error":{"code":10028,"message":"too_many_requests"}}', out)
    assert.strictEqual(error?._tag, "DecodeError")
    assert.include(error!.detail, "10028")
    assert.strictEqual(decode('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":{"type":"change","timestamp":1,"instrument_name":"BTC-PERPETUAL","change_id":2,"prev_change_id":1,"bids":[["replace",1,1]],"asks":[]}}}', out)?._tag, "DecodeError")
  })

  it("computes greeks that agree with Deribit's own on the 89 real option tickers of the recorded session", () => {
    const tickers = frames().map((f) => JSON.parse(f)).filter((m) => String(m.params?.channel ?? "").startsWith("ticker.")).map((m) => m.params.data)
    assert.strictEqual(tickers.length, 89)
    const worst: Record<string, { relative: number; absolute: number }> = {}
    for (const t of tickers) {
      const computed = deribitGreeks(parseOptionName(t.instrument_name)!, t.underlying_price, t.mark_iv, t.timestamp)!
      for (const name of ["delta", "gamma", "vega", "theta", "rho"] as const) {
        const theirs = t.greeks[name] as number
        const absolute = Math.abs(computed[name] - theirs)
        // Deribit publishes 5 decimals: below 0.01 compare absolutely, above relatively.
        const relative = Math.abs(theirs) >= 0.01 ? absolute / Math.abs(theirs) : 0
        const w = worst[name] ?? { relative: 0, absolute: 0 }
        worst[name] = { relative: Math.max(w.relative, relative), absolute: Math.abs(theirs) < 0.01 ? Math.max(w.absolute, absolute) : w.absolute }
      }
    }
    console.log("greeks against Deribit's (worst of 89):", JSON.stringify(worst))
    for (const [name, w] of Object.entries(worst)) {
      assert.isAtMost(w.relative, 1e-3, `${name}: within 0.1 % where it is 0.01 or more`)
      assert.isAtMost(w.absolute, 1e-4, `${name}: within 0.0001 where it is under 0.01`)
    }
  })

  it("reads option names: expiry at 08:00 UTC, strike, type", () => {
    assert.deepStrictEqual(parseOptionName("BTC-24SEP21-40000-P"), { currency: "BTC", expiry: Date.UTC(2021, 8, 24, 8), strike: 40000, optionType: "put" })
    assert.deepStrictEqual(parseOptionName("XRP_USDC-5JAN26-0d625-C"), { currency: "XRP", expiry: Date.UTC(2026, 0, 5, 8), strike: 0.625, optionType: "call" })
    assert.isUndefined(parseOptionName("BTC-PERPETUAL"))
  })
})

const env = (fake: FakeDeribit, port: number) => ({
  DATABASE_URL: postgresUrl,
  PORT: String(port),
  HOST: "127.0.0.1",
  EXCHANGES: "deribit",
  DERIBIT_WS_URL: fake.wsUrl,
  DERIBIT_REST_URL: fake.restUrl,
  DERIBIT_HEARTBEAT_SECONDS: "1",
  DERIBIT_OPTION_CHAIN_MINUTES: "0.05",
  LARGE_TRADE_THRESHOLD_BTC: "1",
  LARGE_TRADE_THRESHOLD_ETH: "1",
  LARGE_TRADE_THRESHOLD_DEFAULT: "1",
  ORDERBOOK_INTERVAL_SECONDS: "1",
  OPEN_INTEREST_INTERVAL_SECONDS: "1",
  FUNDING_SAMPLE_SECONDS: "1",
  WRITER_FLUSH_MS: "20"
})

const startFake = Effect.acquireRelease(Effect.promise(() => FakeDeribit.start({ frameIntervalMs: 3 })), (f) => Effect.promise(() => f.close()))
const clean = truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

describe("deribit end to end", () => {
  it.live("trades valued per contract type, books, funding, open interest, DVOL and the option chain through the API", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const fake = yield* startFake
      const port = freePort()
      yield* startService(env(fake, port))
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      yield* eventually("trades of every kind", Effect.sync(() =>
        fake.played("BTC-PERPETUAL").length >= 20 && fake.played(activeOption).length >= 3 ? true : undefined), 30_000)
      const perpetual = fake.played("BTC-PERPETUAL").slice(0, 10)
      const { body } = yield* eventually("trades stored", Effect.map(getJson(`${base}/large-trades?exchange=deribit&limit=1000`), (answer) => {
        const ids = new Set(answer.body.data.trades.map((t: any) => t.trade_id))
        return perpetual.every((t) => ids.has(t.trade_id)) && answer.body.data.trades.some((t: any) => t.symbol === activeOption) ? answer : undefined
      }), 30_000)
      const rows = new Map<string, any>(body.data.trades.map((t: any) => [t.trade_id, t]))
      for (const trade of perpetual) {
        const row = rows.get(trade.trade_id)
        // Inverse: the amount is USD already; 10 USD contracts.
        assert.strictEqual(row.value_usd, trade.amount, `${trade.trade_id} USD value`)
        assert.strictEqual(row.side, trade.direction)
        assert.strictEqual(row.is_liquidation, trade.liquidation !== undefined)
        assert.strictEqual(row.metadata.contract_type, "inverse")
      }
      const option = body.data.trades.find((t: any) => t.symbol === activeOption)
      const played = fake.played(activeOption).find((t) => t.trade_id === option.trade_id)!
      assert.closeTo(option.value_usd, Math.round(played.price * played.amount * played.index_price * 100) / 100, 0.005, "option: coin price x amount x index")
      assert.strictEqual(option.metadata.quote_usd_source, "venue index:BTC")

      const oi = yield* eventually("open interest", Effect.map(getJson(`${base}/open-interest?symbol=BTC-PERPETUAL`), ({ body }) =>
        body.data.count > 0 ? body.data.open_interest[0] : undefined), 20_000)
      assert.strictEqual(oi.open_interest_usd, 1_200_000_000, "Deribit counts inverse open interest in USD")
      assert.strictEqual(oi.open_interest, 120_000_000, "in 10 USD contracts")
      const funding = yield* eventually("funding", Effect.map(getJson(`${base}/funding-rates?exchange=deribit`), ({ body }) =>
        body.data.count > 0 ? body.data.funding_rates[0] : undefined), 20_000)
      assert.match(funding.symbol, /PERPETUAL$/)
      assert.isAbove(funding.rate, 0)
      const dvol = yield* eventually("DVOL", Effect.map(getJson(`${base}/volatility-index?index=btc_usd`), ({ body }) =>
        body.data.count > 0 ? body.data : undefined), 20_000)
      assert.strictEqual(dvol.values[0].value, 55.25)
      assert.deepStrictEqual(dvol.summary.indexes, ["btc_usd"])
      const chain = yield* eventually("option chain", Effect.map(getJson(`${base}/option-chain?currency=BTC`), ({ body }) =>
        body.data.count > 0 ? body.data : undefined), 30_000)
      const put = chain.options.find((o: any) => o.instrument === "BTC-24SEP21-34000-P")
      assert.strictEqual(put.option_type, "put")
      assert.strictEqual(put.strike, 34000)
      // Computed from the book summary's mark IV (no per-option ticker call by default), as Deribit's own were.
      const recorded = fake.optionTicker("BTC-24SEP21-34000-P")!
      for (const name of ["delta", "gamma", "vega", "theta", "rho"] as const) {
        assert.closeTo(put.greeks[name], recorded.greeks[name], Math.max(1e-4, Math.abs(recorded.greeks[name]) * 1e-3), name)
      }
      assert.isFalse(fake.restCalls.some((c) => c.includes("/public/ticker")), "no per-option ticker calls")
      assert.isNumber(put.mark_iv)
      const byExpiry = yield* getJson(`${base}/option-chain?currency=BTC&expiry=2021-09-24`)
      assert.isTrue(byExpiry.body.data.options.every((o: any) => o.expiry.startsWith("2021-09-24")))
      assert.isAbove(byExpiry.body.data.count, 0)

      const books = yield* eventually("books", Effect.map(getJson(`${base}/orderbooks?exchange=deribit&symbol=BTC-PERPETUAL`), ({ body }) =>
        body.data.orderbooks.length > 0 ? body.data.orderbooks[0] : undefined), 20_000)
      assert.isBelow(books.bids[0][0], books.asks[0][0])
      assert.isAbove(fake.tests, 0, "heartbeat test_requests answered")
      const health = yield* getJson(`http://127.0.0.1:${port}/health`)
      const feed = health.body.feeds.find((f: any) => f.venue === "deribit")
      assert.strictEqual(feed.reconnects, 0, "never closed for an unanswered heartbeat")
    })), { timeout: 90_000 })

  it.live("trades lost in transit are repaired by trade_seq exactly once", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const fake = yield* startFake
      const port = freePort()
      yield* startService(env(fake, port))
      const base = `http://127.0.0.1:${port}/api/v1/exchange`
      yield* eventually("trades flowing", Effect.sync(() => (fake.sentTrades.length >= 5 ? true : undefined)), 30_000)
      fake.loseNext("trade", 4)
      yield* eventually("trades after the loss", Effect.sync(() => (fake.lost.length === 4 && fake.sentTrades.length >= 30 ? true : undefined)), 30_000)
      const gaps = yield* eventually("gaps verified", Effect.map(getJson(`${base}/gaps?exchange=deribit&channel=trades`), ({ body }) =>
        body.data.count > 0 && body.data.gaps.every((g: any) => g.repair_status === "verified") ? body.data.gaps : undefined), 30_000)
      assert.strictEqual(gaps.reduce((n: number, g: any) => n + g.repaired_count, 0), 4)
      const lostIds = fake.lost.flatMap((l) => (l.data as Array<any>).map((t) => t.trade_id))
      const { body } = yield* eventually("lost trades stored", Effect.map(getJson(`${base}/large-trades?exchange=deribit&limit=1000`), (answer) => {
        const ids = answer.body.data.trades.map((t: any) => t.trade_id)
        return lostIds.every((id) => ids.includes(id)) ? answer : undefined
      }), 30_000)
      const ids = body.data.trades.map((t: any) => `${t.symbol}:${t.trade_id}`)
      assert.strictEqual(new Set(ids).size, ids.length, "nothing stored twice")
    })), { timeout: 90_000 })

  it.live("a storm of book gaps resubscribes in few, listed requests, never over Deribit's 3 requests a second", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const fake = yield* startFake
      const port = freePort()
      yield* startService(env(fake, port))
      yield* eventually("books live", Effect.map(getJson(`http://127.0.0.1:${port}/health`), ({ body }) =>
        body.feeds.some((f: any) => f.venue === "deribit" && f.books.length > 1 && f.books.every((b: any) => b.state === "live")) ? true : undefined), 30_000)
      const before = fake.requests.length
      // Lose many book changes at once: most books see a change_id gap within moments of each other.
      fake.loseNext("book", 40)
      yield* eventually("books resynced", Effect.map(getJson(`http://127.0.0.1:${port}/health`), ({ body }) => {
        const books = body.feeds.find((f: any) => f.venue === "deribit")?.books ?? []
        return books.filter((b: any) => b.resyncs > 0).length >= 3 && books.every((b: any) => b.state === "live") ? true : undefined
      }), 30_000)
      const resubscribes = fake.requests.slice(before).filter((r) => r.method === "public/subscribe")
      const channels = resubscribes.flatMap((r) => r.params.channels as Array<string>)
      assert.isAtLeast(channels.length, 3)
      assert.isBelow(resubscribes.length, channels.length, "resubscriptions gathered into listed requests")
      assert.isAtMost(maxInWindow(fake.receivedAt, 1000), 3, "never over the pace, at the start or in the storm")
    })), { timeout: 90_000 })
})
