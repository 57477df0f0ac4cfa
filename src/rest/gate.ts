/**
 * Every REST call of a venue goes through its gate: a request-weight budget per
 * window (synced from the venue's used-weight header), HTTP 429 honoured with
 * Retry-After, 418 treated as a ban (no call at all until it expires), a cap on
 * calls in flight, and a circuit breaker for a venue that keeps failing.
 * It reads the Effect Clock, so TestClock drives it in tests.
 */
import { Clock, Config, Duration, Effect, Metric, Semaphore } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { transportCause } from "../domain/transport.ts"
import { defaultUserAgent } from "../version.ts"
import { BannedError, RateLimitedError, RestError } from "../domain/errors.ts"
import { restBanned, restRequests, restWeightUsed } from "../observability/metrics.ts"

export interface RestGateOptions {
  readonly venue: string
  /** Weight allowed per window; a venue's metadata may correct it later (`setWeightLimit`). */
  readonly weightLimit: number
  readonly windowMs: number
  /** Header carrying the venue's own count of weight used in the window (Binance: x-mbx-used-weight-1m). */
  readonly usedWeightHeader?: string | undefined
  readonly maxInFlight: number
  readonly requestTimeoutMs: number
  /** Consecutive failures (network, 5xx, timeout) that open the circuit. */
  readonly breakerThreshold: number
  readonly breakerOpenMs: number
  /** Statuses that mean "banned for a while" (Binance 418; Bybit answers 403 when an IP went over its limit). Default [418]. */
  readonly banStatuses?: ReadonlyArray<number>
  /** Used when a 429/418 carries no Retry-After. */
  readonly defaultRetryAfterMs: number
}

export const defaultGateOptions = (venue: string, weightLimit: number): RestGateOptions => ({
  venue,
  weightLimit,
  windowMs: 60_000,
  maxInFlight: 4,
  requestTimeoutMs: 10_000,
  breakerThreshold: 5,
  breakerOpenMs: 30_000,
  defaultRetryAfterMs: 60_000
})

export interface RestGateState {
  readonly weightLimit: number
  readonly weightUsed: number
  readonly blockedUntil: number | null
  readonly bannedUntil: number | null
  readonly circuit: "closed" | "open" | "half-open"
  readonly consecutiveFailures: number
}

export type RestFailure = RestError | RateLimitedError | BannedError

export interface RestRequest {
  readonly headers?: Record<string, string>
  /** POST this form (`application/x-www-form-urlencoded`) instead of a GET: Databento's documented way. */
  readonly form?: Record<string, string>
  /** The body is JSON lines (Databento): parsed into an array. */
  readonly lines?: boolean
}

export interface RestGate {
  readonly venue: string
  /** GET (or POST a form) for a JSON body (or, with `lines`, a JSON-lines body as an array), spending `weight` of the budget first. */
  readonly getJson: (url: string, weight: number, request?: RestRequest) => Effect.Effect<unknown, RestFailure>
  readonly setWeightLimit: (limit: number) => void
  readonly state: () => RestGateState
}

/** An HTTP client failure with what lies under it (DNS, refused, TLS, timeout), not just "Transport error". */
const describeHttpError = (error: { readonly message: string }): string => {
  const cause = transportCause((error as { reason?: unknown }).reason ?? error)
  return cause === undefined || error.message.includes(cause) ? error.message : `${error.message}: ${cause}`
}

const retryAfterMs = (header: string | undefined, fallback: number): number => {
  const seconds = header === undefined ? Number.NaN : Number(header)
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : fallback
}

/** USER_AGENT: what every REST call says it is (default market-data-service/<version>). */
export const userAgentConfig = Config.String("USER_AGENT").pipe(Config.withDefault(defaultUserAgent))

export const makeRestGate = (options: RestGateOptions) =>
  Effect.gen(function*() {
    const userAgent = yield* userAgentConfig
    const client = (yield* HttpClient.HttpClient).pipe(HttpClient.mapRequest(HttpClientRequest.setHeader("user-agent", userAgent)))
    const inFlight = yield* Semaphore.make(options.maxInFlight)
    let weightLimit = options.weightLimit
    let windowStart = 0
    let used = 0
    let blockedUntil = 0
    let bannedUntil = 0
    let consecutiveFailures = 0
    let openUntil = 0
    let halfOpenProbe = false
    const weightGauge = Metric.withAttributes(restWeightUsed, { venue: options.venue })
    const bannedGauge = Metric.withAttributes(restBanned, { venue: options.venue })
    const count = (outcome: string) =>
      Metric.update(Metric.withAttributes(restRequests, { venue: options.venue, outcome }), 1)

    /** Waits until the call may go out, then spends its weight. */
    const reserve = (weight: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const until = Math.max(blockedUntil, bannedUntil)
          if (now < until) {
            yield* Effect.sleep(Duration.millis(until - now))
            continue
          }
          if (now >= windowStart + options.windowMs) {
            windowStart = now - (now % options.windowMs)
            used = 0
          }
          if (used + weight > weightLimit) {
            yield* Effect.sleep(Duration.millis(windowStart + options.windowMs - now))
            continue
          }
          used += weight
          yield* Metric.update(weightGauge, used)
          return
        }
      })

    const circuitCheck = (url: string) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (consecutiveFailures < options.breakerThreshold) return
        if (now < openUntil || halfOpenProbe) {
          yield* count("circuit_open")
          return yield* new RestError({ venue: options.venue, url, detail: "circuit open after repeated failures" })
        }
        halfOpenProbe = true
      })

    const recordFailure = Effect.gen(function*() {
      consecutiveFailures++
      halfOpenProbe = false
      if (consecutiveFailures >= options.breakerThreshold) {
        openUntil = (yield* Clock.currentTimeMillis) + options.breakerOpenMs
      }
    })

    const call = (url: string, request: RestRequest | undefined) =>
      Effect.gen(function*() {
        const init = request?.headers === undefined ? undefined : { headers: request.headers }
        const outgoing = request?.form === undefined
          ? HttpClientRequest.get(url, init)
          : HttpClientRequest.post(url, init).pipe(HttpClientRequest.bodyUrlParams(request.form))
        const response = yield* client.execute(outgoing).pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(options.requestTimeoutMs),
            orElse: () => Effect.fail(new RestError({ venue: options.venue, url, detail: "request timed out" }))
          }),
          Effect.mapError((error) =>
            error._tag === "RestError" ? error : new RestError({ venue: options.venue, url, detail: describeHttpError(error) })
          )
        )
        const now = yield* Clock.currentTimeMillis
        const header = options.usedWeightHeader === undefined ? undefined : response.headers[options.usedWeightHeader]
        if (header !== undefined && Number.isFinite(Number(header))) {
          used = Math.max(used, Number(header))
          yield* Metric.update(weightGauge, used)
        }
        const status = response.status
        if (status === 429) {
          const wait = retryAfterMs(response.headers["retry-after"], options.defaultRetryAfterMs)
          blockedUntil = now + wait
          yield* count("rate_limited")
          yield* Effect.logWarning("REST rate limited; backing off").pipe(
            Effect.annotateLogs({ venue: options.venue, retryAfterMs: wait })
          )
          return yield* new RateLimitedError({ venue: options.venue, retryAfterMs: wait, detail: `HTTP 429 from ${url}` })
        }
        if ((options.banStatuses ?? [418]).includes(status)) {
          const wait = retryAfterMs(response.headers["retry-after"], options.defaultRetryAfterMs * 10)
          bannedUntil = now + wait
          yield* count("banned")
          yield* Metric.update(bannedGauge, 1)
          yield* Effect.logError(`REST access banned by the venue (HTTP ${status}); no calls until it expires`).pipe(
            Effect.annotateLogs({ venue: options.venue, bannedForMs: wait })
          )
          return yield* new BannedError({ venue: options.venue, untilMs: bannedUntil, detail: `HTTP ${status} from ${url}` })
        }
        const body = yield* response.text.pipe(
          Effect.mapError((error) => new RestError({ venue: options.venue, url, status, detail: error.message }))
        )
        if (status >= 500) {
          yield* recordFailure
          yield* count("server_error")
          return yield* new RestError({ venue: options.venue, url, status, detail: body.slice(0, 200) })
        }
        consecutiveFailures = 0
        halfOpenProbe = false
        if (bannedUntil !== 0 && now >= bannedUntil) {
          bannedUntil = 0
          yield* Metric.update(bannedGauge, 0)
        }
        if (status >= 400) {
          yield* count("client_error")
          return yield* new RestError({ venue: options.venue, url, status, detail: body.slice(0, 200) })
        }
        yield* count("ok")
        return yield* Effect.try({
          try: () =>
            request?.lines === true
              ? body.split("\n").filter((line) => line.trim().length > 0).map((line) => JSON.parse(line) as unknown)
              : (JSON.parse(body) as unknown),
          catch: () => new RestError({ venue: options.venue, url, status, detail: "response is not JSON" })
        })
      }).pipe(
        Effect.tapError((error) =>
          error._tag === "RestError" && error.status === undefined ? recordFailure : Effect.void
        )
      )

    const gate: RestGate = {
      venue: options.venue,
      getJson: (url, weight, request) =>
        Semaphore.withPermits(inFlight, 1)(
          Effect.gen(function*() {
            yield* circuitCheck(url)
            yield* reserve(weight)
            return yield* call(url, request)
          })
        ),
      setWeightLimit: (limit) => {
        weightLimit = limit
      },
      state: () => {
        const now = Date.now()
        return {
          weightLimit,
          weightUsed: used,
          blockedUntil: blockedUntil > now ? blockedUntil : null,
          bannedUntil: bannedUntil > now ? bannedUntil : null,
          circuit: consecutiveFailures < options.breakerThreshold ? "closed" : halfOpenProbe ? "half-open" : "open",
          consecutiveFailures
        }
      }
    }
    return gate
  })
