/**
 * What every data endpoint of the API goes through, as HttpApi middleware:
 * - the contract's 400: an unknown or repeated parameter, or one that does not
 *   decode, answers `INVALID_PARAMETER` with a message naming it (HttpApi's own
 *   answer would be an empty 400);
 * - optional access control: `API_TOKENS` (comma-separated bearer tokens);
 * - an optional per-client request budget, `API_RATE_LIMIT_PER_MINUTE` (per
 *   token, else per address): beyond it 429 `RATE_LIMITED` with Retry-After,
 *   so one client cannot starve the others.
 * Without configuration the API stays open and unmetered, as it always was.
 */
import { Clock, Config, Effect, Layer, Metric, Option, Redacted, SchemaIssue } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiSchemaError } from "effect/http-api/HttpApiError"
import { apiRejected } from "../observability/metrics.ts"
import { ContractMiddleware, declaredParameters } from "./contract.ts"

export const errorResponse = (status: number, code: string, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.text(JSON.stringify({ success: false, error: { code, message }, timestamp: new Date().toISOString() }), {
    status,
    contentType: "application/json",
    ...(headers === undefined ? {} : { headers })
  })

export const accessConfig = Config.all({
  tokens: Config.Redacted("API_TOKENS").pipe(
    Config.option,
    Config.map(Option.map((raw) => new Set(Redacted.value(raw).split(",").map((t) => t.trim()).filter((t) => t.length > 0))))
  ),
  perMinute: Config.Int("API_RATE_LIMIT_PER_MINUTE").pipe(Config.withDefault(0))
})

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

const shown = (raw: string | undefined) => JSON.stringify((raw ?? "").slice(0, 60))

/** The first problem of a query that did not decode, as "name: what was expected, got \"value\"". */
const describeQueryError = (error: HttpApiSchemaError, search: URLSearchParams): string => {
  const issue = formatIssues(error.cause.issue).issues[0]
  const segment = issue?.path?.[0]
  const name = segment === undefined ? "query" : String(typeof segment === "object" ? segment.key : segment)
  const expected = (issue?.message ?? "invalid").split("\n")[0]!
  return `${name}: ${expected.charAt(0).toLowerCase()}${expected.slice(1)}, got ${shown(search.get(name) ?? undefined)}`
}

const bearerOf = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const header = request.headers.authorization
  const match = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header)
  return match?.[1]?.trim()
}

/** Who a request counts against: its token, else its address. */
export const clientOf = (request: HttpServerRequest.HttpServerRequest): string =>
  bearerOf(request) ?? Option.getOrElse(request.remoteAddress, () => "unknown")

/** Fixed one-minute windows per client: small state, exact counting, a Retry-After to the window's end. */
const makeBudget = (perMinute: number) => {
  const windows = new Map<string, { start: number; used: number }>()
  return (client: string, now: number): number | undefined => {
    const start = Math.floor(now / 60_000) * 60_000
    let window = windows.get(client)
    if (window === undefined || window.start !== start) {
      if (windows.size > 10_000) windows.clear()
      window = { start, used: 0 }
      windows.set(client, window)
    }
    if (window.used >= perMinute) return Math.max(1, Math.ceil((start + 60_000 - now) / 1000))
    window.used++
    return undefined
  }
}

/** Access control and budget, shared by the data endpoints and /metrics. */
export const makeGuard = Effect.gen(function*() {
  const config = yield* accessConfig
  const spend = config.perMinute > 0 ? makeBudget(config.perMinute) : undefined
  return (request: HttpServerRequest.HttpServerRequest) =>
    Effect.gen(function*() {
      if (Option.isSome(config.tokens)) {
        const token = bearerOf(request)
        if (token === undefined || !config.tokens.value.has(token)) {
          yield* Metric.update(Metric.withAttributes(apiRejected, { reason: "unauthorized" }), 1)
          return errorResponse(401, "UNAUTHORIZED", "a valid bearer token is required (Authorization: Bearer <token>)", { "www-authenticate": "Bearer" })
        }
      }
      if (spend !== undefined) {
        const retryAfter = spend(clientOf(request), yield* Clock.currentTimeMillis)
        if (retryAfter !== undefined) {
          yield* Metric.update(Metric.withAttributes(apiRejected, { reason: "rate_limited" }), 1)
          return errorResponse(429, "RATE_LIMITED", `more than ${config.perMinute} requests this minute; retry after ${retryAfter} s`, { "retry-after": String(retryAfter) })
        }
      }
      return undefined
    })
})

export const ContractMiddlewareLive = Layer.effect(ContractMiddleware, Effect.gen(function*() {
  const guard = yield* makeGuard
  return (httpEffect, { endpoint }) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const refused = yield* guard(request)
      if (refused !== undefined) return refused
      const search = new URL(request.url, "http://localhost").searchParams
      const declared = declaredParameters(endpoint)
      const seen = new Set<string>()
      for (const name of search.keys()) {
        if (!declared.includes(name)) {
          return errorResponse(400, "INVALID_PARAMETER", `unknown parameter ${shown(name)}; allowed: ${declared.join(", ")}`)
        }
        if (seen.has(name)) return errorResponse(400, "INVALID_PARAMETER", `${name} is given more than once`)
        seen.add(name)
      }
      return yield* Effect.catch(httpEffect, (error) => {
        if (HttpApiSchemaError.is(error) && error.kind === "Query") {
          return Effect.succeed(errorResponse(400, "INVALID_PARAMETER", describeQueryError(error, search)))
        }
        // A shed query: the declared 503 envelope, with the Retry-After its code promises.
        const body = error as { readonly success?: unknown; readonly error?: { readonly code?: unknown; readonly message?: unknown } }
        if (body?.success === false && body.error?.code === "OVERLOADED") {
          return Effect.succeed(errorResponse(503, "OVERLOADED", String(body.error.message), { "retry-after": "1" }))
        }
        return Effect.fail(error)
      })
    })
}))
