/**
 * What every data endpoint of the API goes through, as HttpApi middleware:
 * - the contract's 400: an unknown or repeated parameter, or one that does not
 *   decode, answers `INVALID_PARAMETER` with a message naming it (HttpApi's own
 *   answer would be an empty 400);
 * - access control and the per-client request budget of access.ts (bearer
 *   token or session cookie, failed attempts limited per address, budgets per
 *   verified token, else per address).
 * Without configuration the API stays open and unmetered, as it always was.
 */
import { Effect, Layer, SchemaIssue } from "effect"
import { HttpServerRequest } from "effect/http"
import { HttpApiSchemaError } from "effect/http-api/HttpApiError"
import { ApiAccess, errorResponse } from "./access.ts"
import { ContractMiddleware, declaredParameters } from "./contract.ts"

export { errorResponse }

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

/**
 * Access control and budget, shared by the data endpoints, /metrics and the
 * stream (one ApiAccess per server, so one budget and one failure count per client).
 * The stream's EventSource proves its token with the session cookie, which the guard reads.
 */
export const makeGuard = Effect.map(ApiAccess, (access) => access.guard)

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
