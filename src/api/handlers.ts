/**
 * The data endpoints' handlers: each runs its query (and the gap coverage of
 * its window) under admission control and answers in the contract's envelope.
 * Failures are the contract's error envelopes, declared in contract.ts.
 */
import { Clock, Duration, Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import type { SqlClient, Statement } from "effect/sql"
import {
  arbitrage,
  bars,
  spreads,
  basis,
  coverage,
  fundingRatesStatements,
  gaps,
  alerts,
  largeTradesStatements,
  latestOrderBooks,
  openInterestStatements,
  optionChain,
  readFundingRates,
  readLargeTrades,
  readOpenInterest,
  rolls,
  settlements,
  volatilityIndex,
  withCoverage
} from "../storage/queries.ts"
import { CoverageRecorder } from "../gaps/coverage.ts"
import { fundingComparison, openInterestAggregate, termStructure } from "../analytics/views.ts"
import { type Lane, type Overloaded, QueryAdmission } from "./admission.ts"
import { type ExchangeData, MarketDataApi, type UnavailableBody } from "./contract.ts"

const queryTimeout = Duration.seconds(10)

const failureBody = (code: UnavailableBody["error"]["code"], message: string): UnavailableBody => ({
  success: false,
  error: { code, message },
  timestamp: new Date().toISOString()
})

/** Any database failure or a timeout is the contract's 503; a full lane is 503 OVERLOADED (Retry-After added by the middleware). */
const guarded = <A, E, R>(query: Effect.Effect<A, E, R>) =>
  query.pipe(
    Effect.timeoutOrElse({ duration: queryTimeout, orElse: () => Effect.fail("timeout" as const) }),
    Effect.mapError(() => failureBody("DATABASE_UNAVAILABLE", "the database did not answer; try again shortly"))
  )

const overloaded = (error: Overloaded) =>
  failureBody("OVERLOADED", `too many ${error.lane === "heavy" ? "long-window " : ""}queries at once; retry after ${error.retryAfterSeconds} s`)

/** The filters echoed back: what the request gave, with the window it got. */
const filtersOf = (query: Record<string, unknown>, hours: number | undefined) => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(query)) if (value !== undefined) out[key] = value
  if (hours !== undefined) out.hours = hours
  return out
}

/** Runs `work` in its admission lane: windows over the large tables longer than a day go to the heavy one. */
const admitted = <A, R>(hours: number | undefined, largeTable: boolean, work: Effect.Effect<A, UnavailableBody, R>) =>
  Effect.gen(function*() {
    const admission = yield* QueryAdmission
    const lane: Lane = largeTable ? admission.laneOf(hours) : "light"
    return yield* admission.admit(lane, work).pipe(Effect.catchTag("Overloaded", (e) => Effect.fail(overloaded(e))))
  })

const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms).toISOString())

type Endpoints = (typeof ExchangeData)["endpoints"]

/** A number JSON cannot carry, written as HttpApi's JSON codec writes it ("NaN", "Infinity", "-Infinity"). */
const nonFiniteAsText = (_key: string, value: unknown) => (typeof value === "number" && !Number.isFinite(value) ? String(value) : value)

const hasNonFinite = (value: unknown): boolean => {
  if (typeof value === "number") return !Number.isFinite(value)
  if (typeof value !== "object" || value === null) return false
  if (Array.isArray(value)) return value.some(hasNonFinite)
  for (const key in value) if (hasNonFinite((value as Record<string, unknown>)[key])) return true
  return false
}

/**
 * What HttpApi's JSON encoding of a declared success body gives, without
 * walking the body through its Schema. A replacer on every value doubles
 * JSON.stringify's time (100 to 200 µs on a 100-trade body); one quick look
 * for a non-finite number first costs about a fifth of that.
 */
export const successJson = (body: unknown): string => (hasNonFinite(body) ? JSON.stringify(body, nonFiniteAsText) : JSON.stringify(body))

/**
 * An endpoint's success body as its JSON response. The compiler holds the body
 * to the endpoint's declared success Schema; the bytes are those HttpApi's own
 * encoding would write (a property test holds the two equal for every
 * endpoint's Schema). What is skipped is walking the body through the Schema
 * again at run time, element by element, which cost a quarter of the API's
 * throughput on a 100-row answer (306 vs 411 req/s for large-trades?hours=24).
 */
const asJson = <K extends keyof Endpoints>(_endpoint: K) => (body: Endpoints[K]["~Success"]["Type"]) =>
  HttpServerResponse.text(successJson(body), { status: 200, contentType: "application/json" })

/** An endpoint's data in the success envelope. */
const answer = <A, E, R>(query: Record<string, unknown>, hours: number | undefined, run: Effect.Effect<A, E, R>) =>
  admitted(hours, false, Effect.gen(function*() {
    const data = yield* guarded(run)
    return { success: true as const, data, filters: filtersOf(query, hours), timestamp: yield* now }
  }))

/** The same for the large tables, with the gap coverage of the window for the channels the data draws on. */
const answerWithCoverage = <A, E, R>(
  query: { readonly symbol?: string | undefined; readonly exchange?: string | undefined },
  hours: number,
  run: Effect.Effect<A, E, R>,
  channels: ReadonlyArray<string>
) =>
  admitted(hours, true, Effect.gen(function*() {
    const current = yield* (yield* CoverageRecorder).current
    // The data and its coverage on two connections at once: a request waits for the slower, not for both.
    const [data, covered] = yield* Effect.all([
      guarded(run),
      guarded(coverage({ symbol: query.symbol, exchange: query.exchange, hours, channels }, current))
    ], { concurrency: 2 })
    return { success: true as const, data, coverage: covered, filters: filtersOf(query, hours), timestamp: yield* now }
  }))

/**
 * The same where the data is one statement returning one row (large-trades,
 * funding-rates, open-interest): the data's statement and the coverage's evidence
 * in one statement (withCoverage), one round trip a request.
 */
const answerInOneStatement = <A>(
  query: { readonly symbol?: string | undefined; readonly exchange?: string | undefined },
  hours: number,
  statement: (sql: SqlClient.SqlClient, now: number) => Statement.Statement<Record<string, unknown>>,
  read: (row: Record<string, unknown>) => A,
  channels: ReadonlyArray<string>
) =>
  admitted(hours, true, Effect.gen(function*() {
    const current = yield* (yield* CoverageRecorder).current
    const { data, coverage: covered } = yield* guarded(withCoverage({ symbol: query.symbol, exchange: query.exchange, hours, channels }, current, statement, read))
    return { success: true as const, data, coverage: covered, filters: filtersOf(query, hours), timestamp: yield* now }
  }))

export const ExchangeDataLive = HttpApiBuilder.group(MarketDataApi, "exchange", (handlers) =>
  handlers
    .handle("largeTrades", ({ query: q }) => {
      const hours = q.hours ?? 24
      const filter = {
        symbol: q.symbol,
        exchange: q.exchange,
        hours,
        limit: q.limit ?? 100,
        minValueUsd: q.min_value_usd,
        onlyLiquidations: q.only_liquidations,
        side: q.side
      }
      return answerInOneStatement(q, hours, (sql, at) => largeTradesStatements(sql, filter, at)[0], readLargeTrades,
        q.only_liquidations === true ? ["liquidations"] : ["trades", "liquidations"]).pipe(Effect.map(asJson("largeTrades")))
    })
    .handle("fundingRates", ({ query: q }) => {
      const hours = q.hours ?? 24
      const filter = { symbol: q.symbol, exchange: q.exchange, hours, limit: q.limit ?? 100 }
      return answerInOneStatement(q, hours, (sql, at) => fundingRatesStatements(sql, filter, at)[0], readFundingRates, ["funding"])
        .pipe(Effect.map(asJson("fundingRates")))
    })
    .handle("openInterest", ({ query: q }) => {
      const hours = q.hours ?? 24
      const filter = { symbol: q.symbol, exchange: q.exchange, hours, limit: q.limit ?? 100 }
      return answerInOneStatement(q, hours, (sql, at) => openInterestStatements(sql, filter, at)[0], readOpenInterest, ["open_interest"])
        .pipe(Effect.map(asJson("openInterest")))
    })
    .handle("orderBooks", ({ query: q }) =>
      answer(q, undefined, latestOrderBooks({ symbol: q.symbol, exchange: q.exchange, depth: q.depth })).pipe(Effect.map(asJson("orderBooks"))))
    .handle("gaps", ({ query: q }) => {
      const hours = q.hours ?? 24
      return answer(q, hours, gaps({
        symbol: q.symbol,
        exchange: q.exchange,
        hours,
        limit: q.limit ?? 100,
        channels: q.channel === undefined ? undefined : [q.channel],
        status: q.status
      })).pipe(Effect.map(asJson("gaps")))
    })
    .handle("alerts", ({ query: q }) => {
      const hours = q.hours ?? 24
      return answer(q, hours, alerts({ symbol: q.symbol, exchange: q.exchange, rule: q.rule, kind: q.rule_kind, hours, limit: q.limit ?? 100 }))
        .pipe(Effect.map(asJson("alerts")))
    })
    .handle("volatilityIndex", ({ query: q }) => {
      const hours = q.hours ?? 24
      return answer(q, hours, volatilityIndex({ index: q.index, exchange: q.exchange, hours, limit: q.limit ?? 100 }))
        .pipe(Effect.map(asJson("volatilityIndex")))
    })
    .handle("optionChain", ({ query: q }) =>
      answer(q, undefined, optionChain({ currency: q.currency, expiry: q.expiry, exchange: q.exchange, limit: q.limit ?? 1000 }))
        .pipe(Effect.map(asJson("optionChain"))))
    .handle("settlements", ({ query: q }) => {
      const hours = q.hours ?? 24 * 7
      return answer(q, hours, settlements({ symbol: q.symbol, exchange: q.exchange, hours, limit: q.limit ?? 100 }))
        .pipe(Effect.map(asJson("settlements")))
    })
    .handle("basis", ({ query: q }) => {
      const hours = q.hours ?? 24 * 7
      return answer(q, hours, basis({ symbol: q.symbol, exchange: q.exchange, hours, limit: q.limit ?? 100 }))
        .pipe(Effect.map(asJson("basis")))
    })
    .handle("rolls", ({ query: q }) => {
      const hours = q.hours ?? 24 * 90
      return answer(q, hours, rolls({ root: q.root, exchange: q.exchange, hours, limit: q.limit ?? 100 }))
        .pipe(Effect.map(asJson("rolls")))
    })
    .handle("fundingComparison", ({ query: q }) =>
      answer(q, undefined, fundingComparison({ symbol: q.symbol, maxAgeMinutes: q.max_age_minutes })).pipe(Effect.map(asJson("fundingComparison"))))
    .handle("openInterestAggregate", ({ query: q }) => {
      const hours = q.hours ?? 24
      // The history reads raw rows of the window (up to OI_HISTORY_5M_HOURS): a long one goes to the heavy lane.
      return admitted(hours, true, Effect.gen(function*() {
        const data = yield* guarded(openInterestAggregate({ symbol: q.symbol, hours, maxAgeMinutes: q.max_age_minutes }))
        return { success: true as const, data, filters: filtersOf(q, hours), timestamp: yield* now }
      })).pipe(Effect.map(asJson("openInterestAggregate")))
    })
    .handle("termStructure", ({ query: q }) => {
      const hours = q.hours ?? 24 * 7
      return answer(q, hours, termStructure({ symbol: q.symbol, hours, maxAgeMinutes: q.max_age_minutes })).pipe(Effect.map(asJson("termStructure")))
    })
    .handle("spreads", ({ query: q }) =>
      answer(q, q.hours, spreads({ asset: q.symbol, hours: q.hours, limit: q.limit ?? 100 })).pipe(Effect.map(asJson("spreads"))))
    .handle("arbitrage", ({ query: q }) => {
      const hours = q.hours ?? 24
      return answer(q, hours, arbitrage({ symbol: q.symbol, exchange: q.exchange, hours, limit: q.limit ?? 100 }))
        .pipe(Effect.map(asJson("arbitrage")))
    })
    .handle("bars", ({ query: q }) => {
      const hours = q.hours ?? 24
      return answerWithCoverage(q, hours, bars({
        symbol: q.symbol,
        exchange: q.exchange,
        hours,
        interval: q.interval ?? "1m",
        aggregate: q.aggregate === true,
        limit: q.limit ?? 1000
      }), ["trades", "liquidations"]).pipe(Effect.map(asJson("bars")))
    }))
