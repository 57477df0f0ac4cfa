/**
 * The API declared with effect/http-api, seen from outside: the OpenAPI
 * document and the documentation page come from the declaration, the typed
 * client derived from it reads the contract's answers, and the optional access
 * control (bearer tokens, CORS origins, a per-client request budget) does what
 * its settings say while /health stays open for container probes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Schema } from "effect"
import { ExchangeData } from "../src/api/contract.ts"
import { successJson } from "../src/api/handlers.ts"
import { MarketDataClient } from "../src/client.ts"
import { freePort, getJson, postgresUrl, startService } from "./support/service.ts"

const serve = (env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const port = freePort()
    yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none", ...env })
    return `http://127.0.0.1:${port}`
  })

const request = (url: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    return { status: response.status, headers: response.headers, text, body: text.length > 0 && text.startsWith("{") ? JSON.parse(text) : undefined }
  })

describe("API declaration", () => {
  it.effect("writes every endpoint's success body exactly as HttpApi's JSON encoding of its Schema would", () =>
    Effect.gen(function*() {
      const endpoints = Object.values(ExchangeData.endpoints)
      assert.isAbove(endpoints.length, 10)
      let compared = 0
      let refused = 0
      for (const endpoint of endpoints) {
        for (const schema of endpoint.success) {
          const encode = Schema.encodeUnknownSync(schema as Schema.Codec<unknown, unknown>)
          const bodies = yield* Arbitrary.sampleEffect(Arbitrary.schema(schema), { count: 60, seed: 7 })
          // Non-finite numbers are the one place the JSON codec differs from JSON.stringify: make sure they occur.
          let turn = 0
          const withNonFinite = (value: unknown): unknown =>
            typeof value === "number"
              ? [NaN, Infinity, -Infinity, value][turn++ % 4]
              : Array.isArray(value)
              ? value.map(withNonFinite)
              : value !== null && typeof value === "object"
              ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withNonFinite(v)]))
              : value
          const edges = bodies.map(withNonFinite)
          for (const body of [...bodies, ...edges]) {
            let expected: string
            try {
              expected = JSON.stringify(encode(body))
            } catch {
              // Not JSON where the declaration says Unknown (metadata, filters): our bodies take those from
              // jsonb columns and decoded query parameters, so they are always JSON.
              refused++
              continue
            }
            assert.strictEqual(successJson(body), expected, `${endpoint.path}`)
            compared++
          }
        }
      }
      console.log(`success bodies: ${compared} compared, ${refused} refused by the codec`)
      assert.isAbove(compared, endpoints.length * 60, "samples compared")
    }))

  it.live("documents itself from the declaration (/openapi.json, /docs) and answers the contract's 404 and 405", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = yield* serve()
      const openapi = (yield* getJson(`${base}/openapi.json`)).body
      const paths = Object.keys(openapi.paths)
      for (const path of ["large-trades", "funding-rates", "open-interest", "orderbooks", "gaps", "volatility-index", "option-chain", "settlements", "basis", "rolls"]) {
        assert.include(paths, `/api/v1/exchange/${path}`)
      }
      const largeTrades = openapi.paths["/api/v1/exchange/large-trades"].get
      assert.sameMembers(largeTrades.parameters.map((p: any) => p.name), ["symbol", "exchange", "hours", "min_value_usd", "only_liquidations", "side", "limit"])
      assert.includeMembers(Object.keys(largeTrades.responses), ["200", "400", "503"])
      const docs = yield* request(`${base}/docs`)
      assert.strictEqual(docs.status, 200)
      assert.include(docs.text.toLowerCase(), "<html")
      const post = yield* request(`${base}/api/v1/exchange/large-trades`, { method: "POST" })
      assert.strictEqual(post.status, 405)
      assert.strictEqual(post.body.error.code, "METHOD_NOT_ALLOWED")
      const missing = yield* request(`${base}/api/v2/nothing`)
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(missing.body.error.code, "NOT_FOUND")
      const head = yield* request(`${base}/api/v1/exchange/large-trades?hours=1`, { method: "HEAD" })
      assert.strictEqual(head.status, 200)
      // Open by default: no token needed, no CORS headers sent.
      const open = yield* request(`${base}/api/v1/exchange/funding-rates`, { headers: { origin: "https://elsewhere.example" } })
      assert.strictEqual(open.status, 200)
      assert.isNull(open.headers.get("access-control-allow-origin"))
    })), { timeout: 60_000 })

  it.live("the typed client reads the contract's answers and its typed errors", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = yield* serve()
      const client = yield* MarketDataClient.make(base)
      const answer = yield* client.exchange.largeTrades({ query: { symbol: "BTC", hours: 2, side: "buy", limit: 5 } })
      assert.isTrue(answer.success)
      assert.isNumber(answer.data.count)
      assert.isArray(answer.data.trades)
      assert.deepStrictEqual(answer.filters, { symbol: "BTC", hours: 2, side: "buy", limit: 5 })
      assert.isBoolean(answer.coverage.complete)
      const rolls = yield* client.exchange.rolls({ query: { root: "BTC" } })
      assert.deepStrictEqual(rolls.filters, { root: "BTC", hours: 2160 })
      // A bad parameter is refused before the request leaves.
      const refused = yield* Effect.flip(client.exchange.fundingRates({ query: { hours: 0 } }))
      assert.isDefined(refused)
    }).pipe(Effect.provide(MarketDataClient.layer))), { timeout: 60_000 })
})

describe("API access control", () => {
  it.live("bearer tokens guard the data and /metrics, /health stays open; CORS answers configured origins", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = yield* serve({ API_TOKENS: "alpha-token, beta-token", CORS_ORIGINS: "https://dash.example" })
      const anonymous = yield* request(`${base}/api/v1/exchange/large-trades`)
      assert.strictEqual(anonymous.status, 401)
      assert.strictEqual(anonymous.body.error.code, "UNAUTHORIZED")
      assert.strictEqual(anonymous.headers.get("www-authenticate"), "Bearer")
      const wrong = yield* request(`${base}/api/v1/exchange/large-trades`, { headers: { authorization: "Bearer nope" } })
      assert.strictEqual(wrong.status, 401)
      const allowed = yield* request(`${base}/api/v1/exchange/large-trades`, { headers: { authorization: "Bearer beta-token" } })
      assert.strictEqual(allowed.status, 200)
      assert.strictEqual((yield* request(`${base}/metrics`)).status, 401)
      assert.strictEqual((yield* request(`${base}/metrics`, { headers: { authorization: "Bearer alpha-token" } })).status, 200)
      assert.strictEqual((yield* request(`${base}/health`)).status, 200, "container probes need no token")
      const client = yield* MarketDataClient.make(base, { token: "alpha-token" })
      assert.isTrue((yield* client.exchange.gaps({ query: {} })).success)
      const preflight = yield* request(`${base}/api/v1/exchange/large-trades`, {
        method: "OPTIONS",
        headers: { origin: "https://dash.example", "access-control-request-method": "GET", "access-control-request-headers": "authorization" }
      })
      assert.isBelow(preflight.status, 300)
      assert.strictEqual(preflight.headers.get("access-control-allow-origin"), "https://dash.example")
      const cross = yield* request(`${base}/api/v1/exchange/large-trades`, { headers: { origin: "https://dash.example", authorization: "Bearer alpha-token" } })
      assert.strictEqual(cross.headers.get("access-control-allow-origin"), "https://dash.example")
    }).pipe(Effect.provide(MarketDataClient.layer))), { timeout: 60_000 })

  it.live("a client over its budget gets 429 with Retry-After; another client is not held up by it", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = yield* serve({ API_TOKENS: "greedy,modest", API_RATE_LIMIT_PER_MINUTE: "5" })
      const call = (token: string) => request(`${base}/api/v1/exchange/orderbooks`, { headers: { authorization: `Bearer ${token}` } })
      const greedy = []
      for (let i = 0; i < 8; i++) greedy.push(yield* call("greedy"))
      assert.deepStrictEqual(greedy.map((r) => r.status), [200, 200, 200, 200, 200, 429, 429, 429])
      const limited = greedy[5]!
      assert.strictEqual(limited.body.error.code, "RATE_LIMITED")
      const retryAfter = Number(limited.headers.get("retry-after"))
      assert.isTrue(retryAfter >= 1 && retryAfter <= 60)
      assert.strictEqual((yield* call("modest")).status, 200, "budgets are per client")
    })), { timeout: 60_000 })
})
