/**
 * Who may call the API, and how often. Open unless configured:
 * - `API_TOKENS` (comma-separated): a request proves a token with
 *   `Authorization: Bearer <token>`, or with the session cookie the dashboard
 *   gets from `POST /api/v1/session` (HttpOnly, SameSite=Strict: fetch and
 *   EventSource send it by themselves, page scripts cannot read it). Tokens are
 *   compared in constant time (equal-length SHA-256 digests, every configured
 *   token each time). The cookie holds an expiry and an HMAC keyed by the token,
 *   never the token: it survives a restart, ends when its token is removed.
 * - Failed attempts (a wrong token or a forged cookie) are limited per address:
 *   past `API_AUTH_FAILURES_PER_MINUTE` the address gets 429 for the rest of the
 *   minute, before any token is compared, so tokens cannot be guessed at speed.
 * - `API_RATE_LIMIT_PER_MINUTE`: a request budget per verified token, else per
 *   address (an IPv6 address counts by its /64). A token nobody verified never
 *   buys a budget of its own. Budgets live in a bounded least-recently-used
 *   table: a flood of new clients evicts the idlest entry, never anyone's count.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto"
import { Clock, Config, Context, Effect, Layer, Metric, Option, Redacted } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { apiRejected } from "../observability/metrics.ts"

export const accessConfig = Config.all({
  tokens: Config.Redacted("API_TOKENS").pipe(
    Config.option,
    // Set but empty (a variable that did not expand) stays closed: no token verifies, nothing opens by mistake.
    Config.map(Option.map((raw) => [...new Set(Redacted.value(raw).split(",").map((t) => t.trim()).filter((t) => t.length > 0))]))
  ),
  perMinute: Config.Int("API_RATE_LIMIT_PER_MINUTE").pipe(Config.withDefault(0)),
  failuresPerMinute: Config.Int("API_AUTH_FAILURES_PER_MINUTE").pipe(Config.withDefault(10))
})

/** How many clients the budgets remember; past it the least recently seen is forgotten. */
export const trackedClients = 10_000

/**
 * Fixed one-minute windows per key (small state, exact counting, a Retry-After
 * to the window's end) in a Map kept in least-recently-used order: every use
 * moves its key to the end, and a new key past `capacity` evicts the first.
 */
export class MinuteBudget {
  private readonly windows = new Map<string, { start: number; used: number }>()
  private readonly perMinute: number
  private readonly capacity: number
  constructor(perMinute: number, capacity: number = trackedClients) {
    this.perMinute = perMinute
    this.capacity = capacity
  }

  /** Seconds until `key` may go again, or undefined while it is within its budget. */
  exhausted(key: string, now: number): number | undefined {
    const window = this.touch(key, now)
    return window.used >= this.perMinute ? Math.max(1, Math.ceil((window.start + 60_000 - now) / 1000)) : undefined
  }

  /** Counts one use unless the budget is spent; returns what `exhausted` would have. */
  spend(key: string, now: number): number | undefined {
    const retryAfter = this.exhausted(key, now)
    if (retryAfter === undefined) this.windows.get(key)!.used++
    return retryAfter
  }

  get size(): number {
    return this.windows.size
  }

  private touch(key: string, now: number) {
    const start = Math.floor(now / 60_000) * 60_000
    let window = this.windows.get(key)
    if (window !== undefined) this.windows.delete(key)
    if (window === undefined || window.start !== start) window = { start, used: 0 }
    this.windows.set(key, window)
    if (this.windows.size > this.capacity) this.windows.delete(this.windows.keys().next().value!)
    return window
  }
}

/**
 * The key a client address counts under: IPv4 as is (also when IPv4-mapped),
 * IPv6 by its /64, which one host usually holds whole, so rotating addresses
 * inside it buys no budget and no extra token guesses.
 */
export const addressKey = (address: string): string => {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)
  if (mapped !== null) return mapped[1]!
  if (!address.includes(":")) return address
  const [head = "", tail] = address.split("%")[0]!.toLowerCase().split("::")
  const headGroups = head === "" ? [] : head.split(":")
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":")
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill("0"), ...tailGroups]
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`
}

const sha256 = (text: string) => createHash("sha256").update(text).digest()

/** Index of the configured token `presented` is, comparing against every one in constant time. */
const matchToken = (digests: ReadonlyArray<Buffer>, presented: string): number | undefined => {
  const digest = sha256(presented)
  let found = -1
  for (let i = 0; i < digests.length; i++) {
    const equal = timingSafeEqual(digest, digests[i]!)
    found = equal && found < 0 ? i : found
  }
  return found < 0 ? undefined : found
}

export const sessionCookie = "mds_session"
export const sessionHours = 7 * 24
const sessionMac = (token: string, expiresAt: number) => createHmac("sha256", token).update(`market-data session until ${expiresAt}`).digest()
/** The cookie's value: `<expiry ms>.<base64url HMAC-SHA256 keyed by the token>`. */
export const sessionValue = (token: string, expiresAt: number) => `${expiresAt}.${sessionMac(token, expiresAt).toString("base64url")}`

const bearerOf = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const header = request.headers.authorization
  const match = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header)
  return match?.[1]?.trim()
}

/** What a request proved. */
export type Caller =
  | { readonly _tag: "Open" } // no API_TOKENS: anyone, counted by address
  | { readonly _tag: "Verified"; readonly token: number } // the index of the token it proved
  | { readonly _tag: "Anonymous"; readonly clearCookie: boolean } // no credential (or an expired cookie)
  | { readonly _tag: "Refused"; readonly clearCookie: boolean } // a wrong token or a forged cookie: counted as a failure
  | { readonly _tag: "LockedOut"; readonly retryAfter: number } // too many failures from this address: nothing compared

export const errorResponse = (status: number, code: string, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.text(JSON.stringify({ success: false, error: { code, message }, timestamp: new Date().toISOString() }), {
    status,
    contentType: "application/json",
    ...(headers === undefined ? {} : { headers })
  })

const lockedOut = (retryAfter: number) =>
  errorResponse(429, "RATE_LIMITED", `too many failed token attempts from this address; retry after ${retryAfter} s`, { "retry-after": String(retryAfter) })

export const expiredSessionCookie = `${sessionCookie}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict`

export class ApiAccess extends Context.Service<ApiAccess, {
  /** Whether API_TOKENS is set. */
  readonly required: boolean
  /** Who the request is; a failed credential is counted against its address. */
  readonly identify: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<Caller>
  /** Access control and budget for the data endpoints, /metrics and the stream: the refusal, or undefined to go on. */
  readonly guard: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse | undefined>
  /** The session cookie for the token a request proved (`Authorization: Bearer`), valid `sessionHours`. */
  readonly sessionFor: (request: HttpServerRequest.HttpServerRequest, caller: Caller & { _tag: "Verified" }, now: number) => string
}>()("market-data/api/ApiAccess") {
  static readonly layer = Layer.effect(ApiAccess, Effect.gen(function*() {
    const config = yield* accessConfig
    const tokens = Option.getOrElse(config.tokens, () => [] as Array<string>)
    const digests = tokens.map(sha256)
    const failures = new MinuteBudget(Math.max(1, config.failuresPerMinute))
    const budget = config.perMinute > 0 ? new MinuteBudget(config.perMinute) : undefined

    const verifySession = (value: string, now: number): Caller => {
      const parts = /^(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(value)
      if (parts === null) return { _tag: "Refused", clearCookie: true }
      const expiresAt = Number(parts[1])
      const presented = Buffer.from(parts[2]!, "base64url")
      let found = -1
      for (let i = 0; i < tokens.length; i++) {
        const equal = timingSafeEqual(presented, sessionMac(tokens[i]!, expiresAt))
        found = equal && found < 0 ? i : found
      }
      if (found < 0) return { _tag: "Refused", clearCookie: true }
      // A genuine cookie past its time is no guess: ask again, count nothing.
      return expiresAt <= now ? { _tag: "Anonymous", clearCookie: true } : { _tag: "Verified", token: found }
    }

    const identifyAt = (request: HttpServerRequest.HttpServerRequest, now: number): Caller => {
      if (Option.isNone(config.tokens)) return { _tag: "Open" }
      const bearer = bearerOf(request)
      const cookie = request.cookies[sessionCookie]
      if (bearer === undefined && (cookie === undefined || cookie === "")) return { _tag: "Anonymous", clearCookie: false }
      const address = addressOf(request)
      if (config.failuresPerMinute > 0) {
        const retryAfter = failures.exhausted(address, now)
        if (retryAfter !== undefined) return { _tag: "LockedOut", retryAfter }
      }
      let caller: Caller
      if (bearer !== undefined) {
        const token = matchToken(digests, bearer)
        caller = token === undefined ? { _tag: "Refused", clearCookie: false } : { _tag: "Verified", token }
      } else {
        caller = verifySession(cookie!, now)
      }
      if (caller._tag === "Refused" && config.failuresPerMinute > 0) failures.spend(address, now)
      return caller
    }

    const identify = (request: HttpServerRequest.HttpServerRequest) => Effect.map(Clock.currentTimeMillis, (now) => identifyAt(request, now))

    const guard = (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const caller = yield* identify(request)
        if (caller._tag === "LockedOut") {
          yield* Metric.update(Metric.withAttributes(apiRejected, { reason: "locked_out" }), 1)
          return lockedOut(caller.retryAfter)
        }
        if (caller._tag === "Anonymous" || caller._tag === "Refused") {
          yield* Metric.update(Metric.withAttributes(apiRejected, { reason: "unauthorized" }), 1)
          return errorResponse(401, "UNAUTHORIZED", "a valid bearer token is required (Authorization: Bearer <token>, or the dashboard's session)", {
            "www-authenticate": "Bearer",
            ...(caller.clearCookie ? { "set-cookie": expiredSessionCookie } : {})
          })
        }
        if (budget !== undefined) {
          const key = caller._tag === "Verified" ? `token ${caller.token}` : `address ${addressOf(request)}`
          const retryAfter = budget.spend(key, yield* Clock.currentTimeMillis)
          if (retryAfter !== undefined) {
            yield* Metric.update(Metric.withAttributes(apiRejected, { reason: "rate_limited" }), 1)
            return errorResponse(429, "RATE_LIMITED", `more than ${config.perMinute} requests this minute; retry after ${retryAfter} s`, { "retry-after": String(retryAfter) })
          }
        }
        return undefined
      })

    const sessionFor = (request: HttpServerRequest.HttpServerRequest, caller: Caller & { _tag: "Verified" }, now: number) => {
      const expiresAt = now + sessionHours * 3_600_000
      // Secure whenever the browser reached us over TLS (a terminating proxy says so); plain HTTP on a LAN would drop a Secure cookie.
      const secure = request.headers["x-forwarded-proto"]?.split(",")[0]?.trim() === "https" ? "; Secure" : ""
      return `${sessionCookie}=${sessionValue(tokens[caller.token]!, expiresAt)}; Path=/; Max-Age=${sessionHours * 3600}; HttpOnly; SameSite=Strict${secure}`
    }

    return ApiAccess.of({ required: Option.isSome(config.tokens), identify, guard, sessionFor })
  }))
}

const addressOf = (request: HttpServerRequest.HttpServerRequest) => addressKey(Option.getOrElse(request.remoteAddress, () => "unknown"))

const sessionAnswer = (status: number, data: { required: boolean; authenticated: boolean; expires_at?: string }, headers: Record<string, string> = {}) =>
  HttpServerResponse.text(JSON.stringify({ success: true, data, timestamp: new Date().toISOString() }), { status, contentType: "application/json", headers })

/**
 * `/api/v1/session`, how the dashboard gets in when API_TOKENS is set:
 * `POST` with `Authorization: Bearer <token>` sets the session cookie, `GET`
 * says whether a token is required and whether this request has proved one,
 * `DELETE` ends the session.
 */
export const SessionRoutes = Layer.unwrap(Effect.map(ApiAccess, (access) => Layer.mergeAll(
  HttpRouter.add("GET", "/api/v1/session", (request) =>
    Effect.gen(function*() {
      const caller = yield* access.identify(request)
      if (caller._tag === "LockedOut") return lockedOut(caller.retryAfter)
      const clear = (caller._tag === "Anonymous" || caller._tag === "Refused") && caller.clearCookie ? { "set-cookie": expiredSessionCookie } : undefined
      return sessionAnswer(200, { required: access.required, authenticated: caller._tag === "Open" || caller._tag === "Verified" }, clear)
    })),
  HttpRouter.add("POST", "/api/v1/session", (request) =>
    Effect.gen(function*() {
      const caller = yield* access.identify(request)
      switch (caller._tag) {
        case "Open":
          return sessionAnswer(200, { required: false, authenticated: true })
        case "LockedOut":
          return lockedOut(caller.retryAfter)
        case "Verified": {
          const now = yield* Clock.currentTimeMillis
          return sessionAnswer(200, { required: true, authenticated: true, expires_at: new Date(now + sessionHours * 3_600_000).toISOString() }, {
            "set-cookie": access.sessionFor(request, caller, now),
            "cache-control": "no-store"
          })
        }
        default:
          return errorResponse(401, "UNAUTHORIZED", "send the token as Authorization: Bearer <token> to open a session", { "www-authenticate": "Bearer" })
      }
    })),
  HttpRouter.add("DELETE", "/api/v1/session", () =>
    Effect.sync(() => sessionAnswer(200, { required: access.required, authenticated: false }, { "set-cookie": expiredSessionCookie })))
)))
