/**
 * CME: contract months and expiries computed, checked against CME's listing
 * written out by hand for the pinned trade dates (test/fake/cme.ts), settlement
 * sources parsed from their documented formats, basis and roll detection on
 * hand-computed cases, and the service end to end against the fake sources:
 * settlements, open interest in contracts and USD (x multiplier), basis to our
 * own Coinbase spot, roll events and front months through the API, and an
 * honest failure when the free source refuses.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { computeBasis, detectRoll, rollState, settlementTime } from "../src/venues/cme/analytics.ts"
import { contract, fromMonthLabel, fromSymbol, lastFriday, listedContracts } from "../src/venues/cme/contracts.ts"
import { databentoQuantity, websiteNumber, type Settlement } from "../src/venues/cme/sources.ts"
import { contractsListedOn, FakeCme, handListedTradeDates } from "./fake/cme.ts"
import { FakeCoinbase } from "./fake/coinbase.ts"
import { pinnedClock } from "./support/clock.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"
import { postgresLayer } from "../src/storage/database.ts"

const utc = (iso: string) => Date.parse(`${iso}T00:00:00Z`)

describe("CME contracts", () => {
  it("expires on the last Friday of the month, the business day before on Christmas, Boxing Day and Good Friday", () => {
    // Fri 26 Dec 2025 is Boxing Day, a London holiday, and the 25th Christmas: "the prior London and U.S. business day".
    assert.strictEqual(lastFriday(2025, 12), utc("2025-12-24"))
    assert.strictEqual(lastFriday(2026, 1), utc("2026-01-30"))
    assert.strictEqual(lastFriday(2026, 12), utc("2026-12-24"), "25 Dec 2026 is a Friday and a holiday")
    assert.strictEqual(lastFriday(2024, 3), utc("2024-03-28"), "Good Friday 29 Mar 2024")
    assert.strictEqual(lastFriday(2027, 2), utc("2027-02-26"))
  })

  it("names contracts with month codes and reads CME's month labels and Globex symbols", () => {
    assert.strictEqual(contract("BTC", 2026, 12).symbol, "BTCZ26")
    assert.strictEqual(contract("MET", 2027, 1).symbol, "METF27")
    assert.deepStrictEqual(fromMonthLabel("MBT", "JAN 27"), contract("MBT", 2027, 1))
    assert.isUndefined(fromMonthLabel("BTC", "Total"))
    const now = utc("2026-11-24")
    assert.strictEqual(fromSymbol("BTCZ6", now)!.symbol, "BTCZ26")
    assert.strictEqual(fromSymbol("ETHF7", now)!.symbol, "ETHF27")
    assert.strictEqual(fromSymbol("BTCZ26", now)!.expiry, utc("2026-12-24"))
    assert.isUndefined(fromSymbol("BTCZ6-BTCF7", now), "spreads are not contracts")
    assert.isUndefined(fromSymbol("ESZ6", now), "not a crypto product")
  })

  it("lists the next months from any date, keeping a contract through its expiry day", () => {
    assert.deepStrictEqual(listedContracts("BTC", utc("2026-11-24"), 3).map((c) => c.symbol), ["BTCX26", "BTCZ26", "BTCF27"])
    assert.deepStrictEqual(listedContracts("BTC", utc("2026-11-27") + 3_600_000, 2).map((c) => c.symbol), ["BTCX26", "BTCZ26"])
    assert.deepStrictEqual(listedContracts("BTC", utc("2026-11-28"), 2).map((c) => c.symbol), ["BTCZ26", "BTCF27"])
  })

  it("lists what CME lists on each pinned trade date: its six consecutive months, with their last trading days (hand-written)", () => {
    for (const tradeDate of handListedTradeDates()) {
      for (const root of ["BTC", "MBT"]) {
        // The hand table: 6 consecutive months first, then the additional Decembers.
        const consecutive = contractsListedOn(tradeDate, root).slice(0, 6)
        const computed = listedContracts(root, Date.parse(`${tradeDate}T12:00:00Z`), 6)
        assert.deepStrictEqual(computed.map((c) => [c.symbol, isoDay(c.expiry)]), consecutive.map((c) => [c.symbol, isoDay(c.expiry)]), `${root} on ${tradeDate}`)
      }
    }
  })

  it("reads Databento quantities of DBN v3 (quoted 64-bit, i64::MAX undefined) and v2 (numbers, i32::MAX undefined)", () => {
    assert.strictEqual(databentoQuantity("12345"), 12345)
    assert.strictEqual(databentoQuantity(12345), 12345)
    assert.isUndefined(databentoQuantity("9223372036854775807"))
    assert.isUndefined(databentoQuantity(2147483647))
    assert.isUndefined(databentoQuantity(null))
    assert.isUndefined(databentoQuantity("12.5x"))
  })

  it("reads CME's display numbers", () => {
    assert.strictEqual(websiteNumber("91,250"), 91_250)
    assert.strictEqual(websiteNumber("3,402.5B"), 3402.5)
    assert.strictEqual(websiteNumber("-"), null)
    assert.strictEqual(websiteNumber(undefined), null)
  })
})

describe("CME analytics", () => {
  it("settles at 3:00 p.m. Chicago: 21:00 UTC in winter, 20:00 UTC in summer", () => {
    assert.strictEqual(new Date(settlementTime(utc("2026-11-24"))).toISOString(), "2026-11-24T21:00:00.000Z")
    assert.strictEqual(new Date(settlementTime(utc("2026-07-15"))).toISOString(), "2026-07-15T20:00:00.000Z")
  })

  it("computes basis, percent and annualised percent by hand", () => {
    const dec = contract("BTC", 2026, 12)
    const at = Date.parse("2026-11-24T21:00:00Z")
    const b = computeBasis(dec, 96_000, 95_000, at)
    assert.strictEqual(b.basis, 1000)
    assert.closeTo(b.basisPercent, 1000 / 95_000 * 100, 1e-12)
    // 24 Dec 00:00 UTC is 29 days and 3 hours after 24 Nov 21:00 UTC.
    assert.closeTo(b.daysToExpiry, 29.125, 1e-9)
    assert.closeTo(b.annualizedPercent!, (1000 / 95_000 * 100) * 365 / 29.125, 1e-9)
    assert.isNull(computeBasis(dec, 96_000, 95_000, Date.parse("2026-12-23T12:00:00Z")).annualizedPercent)
  })

  it("detects a roll when the next contract's open interest overtakes the front's", () => {
    const at = Date.parse("2026-11-20T21:00:00Z")
    const s = (month: number, openInterest: number | null, volume: number | null): Settlement =>
      ({ contract: contract("BTC", month > 12 ? 2027 : 2026, month > 12 ? month - 12 : month), tradeDate: utc("2026-11-20"), price: 1, volume, openInterest, source: "t" })
    const before = rollState("BTC", [s(11, 12_000, 9000), s(12, 5000, 4000), s(13, 800, 300)], at)
    assert.strictEqual(before.front!.contract.symbol, "BTCX26")
    assert.strictEqual(before.active!.contract.symbol, "BTCX26")
    assert.isUndefined(detectRoll(before))
    const after = rollState("BTC", [s(11, 7000, 9000), s(12, 9500, 4000), s(13, 800, 300)], at)
    assert.strictEqual(after.active!.contract.symbol, "BTCZ26")
    assert.deepInclude(detectRoll(after)!, { reason: "open_interest" })
    assert.strictEqual(detectRoll(after)!.to.contract.symbol, "BTCZ26")
    const byVolume = rollState("BTC", [s(11, null, 1000), s(12, null, 4000)], at)
    assert.strictEqual(detectRoll(byVolume)!.reason, "volume")
  })
})

const clean = truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10)
/** The most recent weekday before `today` (the service looks back from its own today). */
const lastWeekdayBefore = (today: number) => {
  let date = Math.floor(today / 86_400_000) * 86_400_000 - 86_400_000
  while ([0, 6].includes(new Date(date).getUTCDay())) date -= 86_400_000
  return date
}

/**
 * The service's "now" for each run (12:00 UTC that day), pinned: the trade date
 * it finds is the weekday before. Chosen for what makes dates awkward.
 */
const pinnedDays = {
  "the front contract's expiry day (Fri 27 Nov 2026, seen from Sunday the 29th)": "2026-11-29",
  "a month end (Mon 30 Nov 2026)": "2026-12-01",
  "an expiry moved for Christmas (Thu 24 Dec 2026)": "2026-12-25",
  "Christmas Day (Fri 25 Dec 2026, after the moved expiry)": "2026-12-26",
  "a year end (Thu 31 Dec 2026)": "2027-01-01",
  "an expiry moved for Good Friday (Thu 25 Mar 2027)": "2027-03-26",
  "Good Friday (26 Mar 2027)": "2027-03-27"
} as const

const endToEnd = (source: "cme-website" | "databento" | "databento-v2", pinnedDay: string) =>
  Effect.scoped(Effect.gen(function*() {
    yield* clean
    const clock = pinnedClock(Date.parse(`${pinnedDay}T12:00:00Z`))
    const cme = yield* Effect.acquireRelease(Effect.promise(() => FakeCme.start()), (f) => Effect.promise(() => f.close()))
    if (source === "databento-v2") cme.dbnVersion = 2
    const coinbase = yield* Effect.acquireRelease(Effect.promise(() => FakeCoinbase.start({ frameIntervalMs: 1, now: clock.now })), (f) => Effect.promise(() => f.close()))
    const tradeDate = lastWeekdayBefore(clock.now())
    const day = isoDay(tradeDate)
    const btc = cme.publish(day, "BTC", 95_000)
    cme.publish(day, "MBT", 95_000, { rolled: true })
    const port = freePort()
    yield* startService({
      DATABASE_URL: postgresUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      EXCHANGES: "coinbase,cme",
      COINBASE_FEED: "exchange",
      COINBASE_PRODUCTS: "SKL-USD",
      COINBASE_WS_URL: coinbase.wsUrl,
      COINBASE_REST_URL: coinbase.httpUrl,
      CME_PRODUCTS: "BTC,MBT",
      CME_WEBSITE_URL: cme.url,
      ...(source !== "cme-website" ? { DATABENTO_API_KEY: "db-test-key", DATABENTO_URL: cme.url } : {}),
      // The test's spot: whatever Coinbase product runs; the arithmetic is what is checked.
      CME_SPOT_SOURCES: "BTC=coinbase:SKL-USD",
      CME_BASIS_SPOT_TOLERANCE_MINUTES: "100000",
      CME_LOOKBACK_DAYS: "4",
      CME_POLL_MINUTES: "0.02",
      WRITER_FLUSH_MS: "20"
    }, clock.layer)
    const stored = source === "cme-website" ? "cme-website" : "databento"
    const base = `http://127.0.0.1:${port}/api/v1/exchange`
    const settlements = yield* eventually("settlements", Effect.map(getJson(`${base}/settlements?exchange=cme&hours=240`), ({ body }) =>
      body.data.count >= 8 ? body.data : undefined), 30_000)
    const front = btc[0]!
    const row = settlements.settlements.find((s: any) => s.symbol === front.contract.symbol)
    assert.strictEqual(row.settlement_price, front.price)
    assert.strictEqual(row.open_interest, front.openInterest)
    assert.strictEqual(row.volume, front.volume)
    assert.strictEqual(row.trade_date, day)
    assert.strictEqual(row.expiry, isoDay(front.contract.expiry))
    assert.strictEqual(row.contract_size, 5)
    assert.strictEqual(row.source, stored)
    if (stored === "databento") {
      assert.isTrue(cme.databentoCalls.length > 0 && cme.databentoCalls.every((c) => c.method === "POST"), "get_range is POSTed with a form, as the official clients do")
      assert.deepInclude(cme.databentoCalls[0]!.params, { dataset: "GLBX.MDP3", schema: "statistics", stype_in: "parent", symbols: "BTC.FUT,MBT.FUT", encoding: "json" })
    }

    const oi = yield* getJson(`${base}/open-interest?symbol=${front.contract.symbol}&hours=240`)
    const reading = oi.body.data.open_interest[0]
    assert.strictEqual(reading.open_interest, front.openInterest, "contracts")
    assert.strictEqual(reading.open_interest_usd, front.openInterest * 5 * front.price, "contracts x 5 BTC x settlement")
    const micro = yield* getJson(`${base}/open-interest?symbol=MBT${front.contract.symbol.slice(3)}&hours=240`)
    assert.strictEqual(micro.body.data.open_interest[0].metadata.contract_size, 0.1)
    const everything = yield* getJson(`${base}/open-interest?symbol=BTC&hours=240&limit=1000`)
    assert.isTrue(everything.body.data.open_interest.some((r: any) => r.symbol.startsWith("MBT")), "symbol=BTC finds the micro contracts too")

    // Every listed contract gets a basis; within a day of (or past) its expiry the annualised figure is null, not a division by ~0.
    const bases = yield* eventually("basis", Effect.map(getJson(`${base}/basis?symbol=BTC&hours=240&limit=1000`), ({ body }) =>
      btc.every((p) => body.data.basis.some((b: any) => b.symbol === p.contract.symbol)) ? body.data.basis : undefined), 30_000)
    for (const published of btc) {
      const basis = bases.find((b: any) => b.symbol === published.contract.symbol)
      assert.isDefined(basis, `a basis for ${published.contract.symbol}`)
      assert.strictEqual(basis.futures_price, published.price)
      assert.closeTo(basis.basis, published.price - basis.spot_price, 1e-6)
      assert.strictEqual(basis.spot_source, "coinbase:SKL-USD")
      assert.closeTo(basis.days_to_expiry, (published.contract.expiry - Date.parse(basis.timestamp)) / 86_400_000, 1e-6)
      if (basis.days_to_expiry >= 1) {
        const expected = basis.basis_percent * 365 / basis.days_to_expiry
        assert.closeTo(basis.annualized_percent, expected, Math.abs(expected) * 1e-9, "stored figures are rounded: compare relatively")
      }
      else assert.isNull(basis.annualized_percent, `${published.contract.symbol} expires within a day of ${day}`)
    }

    const rolls = yield* getJson(`${base}/rolls?hours=240`)
    assert.strictEqual(rolls.body.data.count, 1, "only MBT rolled")
    assert.deepInclude(rolls.body.data.rolls[0], { root: "MBT", reason: "open_interest", trade_date: day })
    const fronts = rolls.body.data.front_months
    const btcFront = fronts.find((f: any) => f.root === "BTC")
    assert.strictEqual(btcFront.front, front.contract.symbol)
    assert.strictEqual(btcFront.active, front.contract.symbol)
    const mbtFront = fronts.find((f: any) => f.root === "MBT")
    assert.notStrictEqual(mbtFront.active, mbtFront.front, "MBT's open interest has moved to the next month")
  }))

describe.each(["cme-website", "databento", "databento-v2"] as const)("CME end to end from %s", (source) => {
  it.live("settlements, open interest in contracts and USD, basis to our own spot, rolls and front months", () =>
    endToEnd(source, "2026-11-24"), { timeout: 60_000 })
})

describe("CME end to end on awkward dates", () => {
  for (const [what, pinnedDay] of Object.entries(pinnedDays)) {
    it.live(what, () => endToEnd("cme-website", pinnedDay), { timeout: 60_000 })
  }
})

describe("CME source refusing", () => {
  it.live("a 403 from the free source is a counted, logged failure: nothing invented, retried next poll", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const cme = yield* Effect.acquireRelease(Effect.promise(() => FakeCme.start()), (f) => Effect.promise(() => f.close()))
      cme.refuse = 403
      const clock = pinnedClock(Date.parse("2026-11-25T12:00:00Z"))
      cme.publish(isoDay(lastWeekdayBefore(clock.now())), "BTC", 95_000)
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "cme",
        CME_PRODUCTS: "BTC", CME_WEBSITE_URL: cme.url, CME_POLL_MINUTES: "0.01", CME_LOOKBACK_DAYS: "4"
      }, clock.layer)
      yield* eventually("a few refused polls", Effect.sync(() => (cme.calls.length >= 2 ? true : undefined)), 20_000)
      const metrics = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))
      assert.match(metrics, /cme_source_failures_total\{[^}]*source="cme-website"[^}]*\} [1-9]/)
      const { body } = yield* getJson(`http://127.0.0.1:${port}/api/v1/exchange/settlements?hours=240`)
      assert.strictEqual(body.data.count, 0)
      // /health says so: the venue is degraded, with the source, the status and what to do about it.
      const health = yield* eventually("the refusal in /health", Effect.map(getJson(`http://127.0.0.1:${port}/health`), ({ body }) =>
        body.venues.cme === "degraded" ? body : undefined))
      assert.include(health.venue_reasons.cme, "cme-website failing")
      assert.include(health.venue_reasons.cme, "403")
      assert.include(health.venue_reasons.cme, "DATABENTO_API_KEY")
      cme.refuse = undefined
      yield* eventually("settlements once it answers", Effect.map(getJson(`http://127.0.0.1:${port}/api/v1/exchange/settlements?hours=240`), ({ body }) =>
        body.data.count > 0 ? true : undefined), 20_000)
      const recovered = yield* eventually("running again", Effect.map(getJson(`http://127.0.0.1:${port}/health`), ({ body }) =>
        body.venues.cme === "running" ? body : undefined))
      assert.isUndefined(recovered.venue_reasons.cme)
    })), { timeout: 60_000 })
})
