/**
 * The API declared with effect/http-api, seen from outside: the OpenAPI
 * document and the documentation page come from the declaration, the typed
 * client derived from it reads the contract's answers, and the optional access
 * control (bearer tokens, CORS origins, a per-client request budget) does what
 * its settings say while /health stays open for container probes (status only
 * when tokens are set). Under abuse: random tokens, a flood of new clients and
 * repeated guesses buy nothing; the dashboard's session cookie is the token's
 * stand-in and never the token.
 */
import { request as httpRequest } from "node:http"
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, Layer, Schema } from "effect"
import { addressKey, MinuteBudget, sessionValue } from "../src/api/access.ts"
import { ExchangeData } from "../src/api/contract.ts"
import { successJson } from "../src/api/handlers.ts"
import { MarketDataClient } from "../src/client.ts"
import { pinnedClock } from "./support/clock.ts"
import { TcpProxy } from "./support/proxy.ts"
import { freePort, getJson, postgresUrl, startService } from "./support/service.ts"

const serve = (env: Record<string, string> = {}, clock: Layer.Layer<never> = Layer.empty) =>
  Effect.gen(function*() {
    const port = freePort()
    yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none", ...env }, clock)
    return `http://127.0.0.1:${port}`
  })

/**
 * The service's calendar pinned 5 s into a minute, so a test's requests all
 * fall in one budget window (budgets are per calendar minute) whatever the
 * time it runs.
 */
const earlyInAMinute = () => pinnedClock(Date.UTC(2026, 10, 2, 9, 0, 5)).layer

/** A GET from a chosen loopback address (127.0.0.0/8 is all loopback on Linux): many clients from one machine. */
const getFrom = (url: string, localAddress: string, headers: Record<string, string> = {}) =>
  new Promise<number>((resolve, reject) => {
    const call = httpRequest(url, { localAddress, headers, agent: false }, (response) => {
      response.resume()
      response.on("end", () => resolve(response.statusCode ?? 0))
    })
    call.on("error", reject)
    call.end()
  })

const randomToken = () => Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2)

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
      for (const path of ["large-trades", "funding-rates", "open-interest", "orderbooks", "gaps", "volatility-index", "option-chain", "settlements", "basis", "rolls", "funding-comparison", "open-interest-aggregate", "term-structure"]) {
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

describe("API access control under abuse", () => {
  it.live("a random bearer token buys no budget: 20 requests each with one get 5 answers, as 20 plain requests do", () =>
    Effect.scoped(Effect.gen(function*() {
      const statuses = (base: string, headers: () => Record<string, string>) =>
        Effect.promise(async () => {
          const seen: Array<number> = []
          for (let i = 0; i < 20; i++) seen.push((await fetch(`${base}/api/v1/exchange/orderbooks`, { headers: headers() })).status)
          return seen
        })
      const answered = (seen: Array<number>) => seen.filter((s) => s === 200).length
      // The measurement, each on a fresh service (API_TOKENS unset, 5 a minute).
      const plain = yield* statuses(yield* serve({ API_RATE_LIMIT_PER_MINUTE: "5" }, earlyInAMinute()), () => ({}))
      const randomBearers = yield* statuses(yield* serve({ API_RATE_LIMIT_PER_MINUTE: "5" }, earlyInAMinute()), () => ({ authorization: `Bearer ${randomToken()}` }))
      assert.strictEqual(answered(plain), 5)
      assert.strictEqual(answered(randomBearers), 5, "an unverified token counts against the address")
      assert.deepStrictEqual(randomBearers.slice(5), Array(15).fill(429))
    })), { timeout: 60_000 })

  it.live("a flood of 10,050 new clients does not reset a client's spent budget (least-recently-used eviction, no global clear)", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = yield* serve({ API_RATE_LIMIT_PER_MINUTE: "5" }, earlyInAMinute())
      // /metrics spends the same budget as the data and queries no database (a query lane would shed part of the flood).
      const url = `${base}/metrics`
      const greedy = "127.0.0.2"
      const spent: Array<number> = []
      for (let i = 0; i < 6; i++) spent.push(yield* Effect.promise(() => getFrom(url, greedy)))
      assert.deepStrictEqual(spent, [200, 200, 200, 200, 200, 429])
      // 10,050 other addresses, one request each, 50 at a time; the greedy client keeps asking in between.
      const flood = Array.from({ length: 10_050 }, (_, i) => `127.1.${Math.floor(i / 250)}.${1 + (i % 250)}`)
      const greedyDuringFlood: Array<number> = []
      let answeredInFlood = 0
      for (let from = 0; from < flood.length; from += 50) {
        const statuses = yield* Effect.promise(() => Promise.all(flood.slice(from, from + 50).map((address) => getFrom(url, address))))
        answeredInFlood += statuses.filter((s) => s === 200).length
        if (from % 1000 === 0) greedyDuringFlood.push(yield* Effect.promise(() => getFrom(url, greedy)))
      }
      assert.strictEqual(answeredInFlood, flood.length, "each new client has its own budget")
      greedyDuringFlood.push(yield* Effect.promise(() => getFrom(url, greedy)))
      assert.deepStrictEqual(greedyDuringFlood, Array(greedyDuringFlood.length).fill(429), "the spent budget stays spent through the flood")
    })), { timeout: 120_000 })

  it.live("failed token attempts are limited per address, before any token is compared; tokens are compared whole", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = yield* serve({ API_TOKENS: "alpha-token", API_AUTH_FAILURES_PER_MINUTE: "10" }, earlyInAMinute())
      const url = `${base}/api/v1/exchange/gaps`
      const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
      const call = (address: string, headers: Record<string, string> = {}) => Effect.promise(() => getFrom(url, address, headers))
      // Near misses are refused: a prefix, an extension, another case.
      for (const near of ["alpha-tok", "alpha-token-x", "ALPHA-TOKEN", "xalpha-token"]) assert.strictEqual(yield* call("127.0.0.5", bearer(near)), 401, near)
      const guesses: Array<number> = []
      for (let i = 0; i < 12; i++) guesses.push(yield* call("127.0.0.3", bearer(randomToken())))
      assert.deepStrictEqual(guesses, [...Array(10).fill(401), 429, 429], "the 11th failure in a minute is refused without a look")
      assert.strictEqual(yield* call("127.0.0.3", bearer("alpha-token")), 429, "while locked out, even the right token is not compared")
      assert.strictEqual(yield* Effect.promise(() => getFrom(`${base}/metrics`, "127.0.0.3", bearer("alpha-token"))), 429, "one count for every guarded route")
      assert.strictEqual(yield* call("127.0.0.4", bearer("alpha-token")), 200, "another address is not held up")
      // Asking without any credential is no guess: it is refused and not counted.
      for (let i = 0; i < 15; i++) assert.strictEqual(yield* call("127.0.0.6"), 401)
      assert.strictEqual(yield* call("127.0.0.6", bearer("alpha-token")), 200)
    })), { timeout: 60_000 })

  it.live("/health answers anyone with a bare liveness status (200, or 503 without the database); the detail needs the token", () =>
    Effect.scoped(Effect.gen(function*() {
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => TcpProxy.start(5432)), (p) => Effect.promise(() => p.close()))
      const database = new URL(postgresUrl)
      database.port = String(proxy.port)
      const base = yield* serve({ DATABASE_URL: database.toString(), API_TOKENS: "alpha-token" })
      const withToken = { headers: { authorization: "Bearer alpha-token" } }
      const bare = yield* request(`${base}/health`)
      assert.strictEqual(bare.status, 200)
      assert.deepStrictEqual(Object.keys(bare.body).sort(), ["detail", "status", "timestamp"])
      assert.include(["ok", "degraded"], bare.body.status)
      assert.notInclude(bare.text, "127.0.0.1")
      assert.notInclude(bare.text, "postgres")
      const wrong = yield* request(`${base}/health`, { headers: { authorization: "Bearer guess" } })
      assert.deepStrictEqual(Object.keys(wrong.body).sort(), ["detail", "status", "timestamp"], "a wrong token sees no more")
      const detailed = yield* request(`${base}/health`, withToken)
      assert.strictEqual(detailed.status, 200)
      assert.include(detailed.body.database.location, "127.0.0.1")
      assert.isArray(detailed.body.feeds)
      assert.isObject(detailed.body.alerts)
      yield* Effect.promise(() => proxy.cut())
      const down = yield* request(`${base}/health`)
      assert.strictEqual(down.status, 503, "orchestrators still see the database go")
      assert.deepStrictEqual(down.body.status, "unavailable")
      assert.notProperty(down.body, "database")
      const downDetailed = yield* request(`${base}/health`, withToken)
      assert.strictEqual(downDetailed.status, 503)
      assert.isFalse(downDetailed.body.database.reachable)
    })), { timeout: 60_000 })

  it.live("the dashboard's session: POST /api/v1/session trades a token for an HttpOnly, SameSite=Strict cookie the data, /health and the stream accept", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = yield* serve({ API_TOKENS: "alpha-token,beta-token" })
      const before = yield* request(`${base}/api/v1/session`)
      assert.deepStrictEqual(before.body.data, { required: true, authenticated: false })
      const refused = yield* request(`${base}/api/v1/session`, { method: "POST", headers: { authorization: "Bearer nope" } })
      assert.strictEqual(refused.status, 401)
      assert.isNull(refused.headers.get("set-cookie"))
      const opened = yield* request(`${base}/api/v1/session`, { method: "POST", headers: { authorization: "Bearer beta-token" } })
      assert.strictEqual(opened.status, 200)
      const setCookie = opened.headers.get("set-cookie") ?? ""
      const attributes = setCookie.split(";").map((a) => a.trim())
      assert.includeMembers(attributes, ["HttpOnly", "SameSite=Strict", "Path=/", `Max-Age=${7 * 24 * 3600}`])
      const cookie = attributes[0]!
      assert.match(cookie, /^mds_session=\d+\.[A-Za-z0-9_-]{43}$/)
      assert.notInclude(cookie, "beta-token", "the cookie never carries the token")
      const withCookie = { headers: { cookie } }
      assert.deepStrictEqual((yield* request(`${base}/api/v1/session`, withCookie)).body.data, { required: true, authenticated: true })
      assert.strictEqual((yield* request(`${base}/api/v1/exchange/large-trades?hours=1`, withCookie)).status, 200)
      assert.isArray((yield* request(`${base}/health`, withCookie)).body.feeds, "the feed-health detail")
      // The stream (EventSource sends the cookie by itself).
      const stream = yield* Effect.promise(async () => {
        const abort = new AbortController()
        const response = await fetch(`${base}/api/v1/stream`, { ...withCookie, signal: abort.signal })
        const first = await response.body!.getReader().read()
        abort.abort()
        return { status: response.status, type: response.headers.get("content-type"), first: new TextDecoder().decode(first.value) }
      })
      assert.strictEqual(stream.status, 200)
      assert.strictEqual(stream.type, "text/event-stream")
      assert.include(stream.first, "retry:")
      assert.strictEqual((yield* request(`${base}/api/v1/stream`)).status, 401)
      // A forged cookie is refused, counted and cleared; an expired genuine one is cleared without counting.
      const forged = yield* request(`${base}/api/v1/exchange/gaps`, { headers: { cookie: cookie.replace(/.(?=.$)/, (c) => (c === "A" ? "B" : "A")) } })
      assert.strictEqual(forged.status, 401)
      assert.include(forged.headers.get("set-cookie") ?? "", "Max-Age=0")
      const expired = `mds_session=${sessionValue("alpha-token", Date.now() - 1000)}`
      for (let i = 0; i < 12; i++) assert.strictEqual((yield* request(`${base}/api/v1/exchange/gaps`, { headers: { cookie: expired } })).status, 401)
      assert.strictEqual((yield* request(`${base}/api/v1/exchange/gaps`, withCookie)).status, 200, "expired cookies are not failed guesses")
      const closed = yield* request(`${base}/api/v1/session`, { method: "DELETE", ...withCookie })
      assert.include(closed.headers.get("set-cookie") ?? "", "Max-Age=0")
      assert.strictEqual((yield* request(`${base}/api/v1/session`, { method: "PUT" })).status, 405)
      // Without API_TOKENS the dashboard needs no session.
      const open = yield* serve()
      assert.deepStrictEqual((yield* request(`${open}/api/v1/session`)).body.data, { required: false, authenticated: true })
    })), { timeout: 60_000 })
})

describe("request budgets", () => {
  it("forget the least recently seen client, never a busy one, and never all at once", () => {
    const budget = new MinuteBudget(5, 100)
    const at = Date.UTC(2026, 10, 2, 9, 0, 5)
    for (let i = 0; i < 5; i++) assert.isUndefined(budget.spend("busy", at))
    assert.strictEqual(budget.spend("busy", at), 55, "seconds to the end of the minute")
    for (let i = 0; i < 1000; i++) {
      budget.spend(`new ${i}`, at)
      if (i % 50 === 0) assert.isDefined(budget.spend("busy", at), "still spent")
    }
    assert.strictEqual(budget.size, 100, "bounded")
    assert.isDefined(budget.spend("busy", at))
    assert.isUndefined(budget.spend("new 0", at), "an evicted idle client starts afresh")
    assert.isUndefined(budget.spend("busy", at + 55_000), "a new minute, a new budget")
  })

  it("count an IPv6 client by its /64 and an IPv4-mapped one by its IPv4 address", () => {
    assert.strictEqual(addressKey("::ffff:10.1.2.3"), "10.1.2.3")
    assert.strictEqual(addressKey("10.1.2.3"), "10.1.2.3")
    assert.strictEqual(addressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64")
    assert.strictEqual(addressKey("2001:0db8:0001:0002:ffff:1:2:3"), "2001:db8:1:2::/64")
    assert.strictEqual(addressKey("2001:db8::7"), "2001:db8:0:0::/64")
    assert.strictEqual(addressKey("::1"), "0:0:0:0::/64")
    assert.strictEqual(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64")
  })
})
