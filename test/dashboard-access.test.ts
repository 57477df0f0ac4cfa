/**
 * The dashboard with API_TOKENS set, in a real headless Chromium (Debian's
 * `chromium`, driven by playwright-core): the page asks for a token, refuses a
 * wrong one, and with the right one loads its data over fetch and the stream
 * over EventSource with the HttpOnly session cookie, which page scripts cannot
 * read; a reload stays signed in, and without the cookie the page asks again.
 */
import { existsSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBinance } from "./fake/binance.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const clean = truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

// Outside CI a machine without Chromium skips this file; in CI (.ci/run installs it) a missing browser fails it.
describe.skipIf(!existsSync(chromiumPath) && process.env.CI === undefined)("dashboard behind API_TOKENS", () => {
  it.live("asks for a token, then loads the data, the stream and feed health with its session cookie", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 30 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      const token = "dashboard-token-7f3a"
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance-futures", API_TOKENS: `other-token,${token}`,
        BINANCE_FUTURES_SYMBOLS: "SUSHIUSDT,AKROUSDT", BINANCE_FUTURES_WS_URL: `ws://127.0.0.1:${fake.port}`, BINANCE_FUTURES_REST_URL: fake.httpUrl,
        LARGE_TRADE_THRESHOLD_DEFAULT: "1", FUNDING_SAMPLE_SECONDS: "1", WRITER_FLUSH_MS: "20"
      })
      const base = `http://127.0.0.1:${port}`
      const bearer = { headers: { authorization: `Bearer ${token}` } }
      yield* eventually("funding stored", Effect.map(
        Effect.promise(() => fetch(`${base}/api/v1/exchange/funding-rates?hours=24`, bearer).then((r) => r.json() as Promise<any>)),
        (body) => (body.data.funding_rates.length > 0 ? true : undefined)
      ))
      const browser = yield* Effect.acquireRelease(
        Effect.promise(() => chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-gpu"] })),
        (b) => Effect.promise(() => b.close())
      )
      const context = yield* Effect.promise(() => browser.newContext({ viewport: { width: 1400, height: 1000 } }))
      const tab = yield* Effect.promise(() => context.newPage())
      const problems: Array<string> = []
      tab.on("console", (m) => {
        // The refused sign-in is a 401 the browser reports as a console error; anything else is a fault.
        if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(m.text())
      })
      tab.on("pageerror", (e) => problems.push(String(e)))
      const wait = (selector: string, timeout = 10_000) => Effect.promise(() => tab.waitForSelector(selector, { timeout }))

      yield* Effect.promise(() => tab.goto(base, { waitUntil: "load" }))
      yield* wait("#sign-in:visible")
      assert.strictEqual(yield* Effect.promise(() => tab.textContent("#stream-state")), "connecting", "nothing streams before the token")

      yield* Effect.promise(() => tab.fill("#token", "wrong-token"))
      yield* Effect.promise(() => tab.click("#sign-in button"))
      yield* wait("#sign-in-error:text('refused')")

      yield* Effect.promise(() => tab.fill("#token", token))
      yield* Effect.promise(() => tab.click("#sign-in button"))
      yield* Effect.promise(() => tab.waitForSelector("#sign-in", { state: "hidden", timeout: 5000 }))
      // The stream (EventSource), a fetched panel and /health's detail, all with the cookie.
      yield* wait("#stream-state:text('live')")
      yield* wait("#tape tr[data-trade^='binance-futures/']", 30_000)
      yield* wait("tr[data-funding^='binance-futures/']")
      yield* wait("tr[data-feed^='binance-futures/'][data-state='connected']")

      const pageSees = (yield* Effect.promise(() => tab.evaluate("({ cookie: document.cookie, url: location.href, stored: JSON.stringify(localStorage) })"))) as
        { cookie: string; url: string; stored: string }
      assert.notInclude(pageSees.cookie, "mds_session", "HttpOnly: scripts cannot read the session")
      for (const place of [pageSees.url, pageSees.stored]) assert.notInclude(place, token)
      const cookies = yield* Effect.promise(() => context.cookies(base))
      const session = cookies.find((c) => c.name === "mds_session")
      assert.isDefined(session)
      assert.isTrue(session!.httpOnly)
      assert.strictEqual(session!.sameSite, "Strict")
      assert.notInclude(session!.value, token)

      // A reload stays signed in: no prompt, the stream live again.
      yield* Effect.promise(() => tab.reload({ waitUntil: "load" }))
      yield* wait("#stream-state:text('live')")
      assert.isFalse(yield* Effect.promise(() => tab.isVisible("#sign-in")))
      assert.strictEqual((yield* getJson(`${base}/api/v1/exchange/gaps`)).status, 401, "the API itself stays closed without a token")
      // Signed out (the cookie gone), the page asks again.
      yield* Effect.promise(() => context.clearCookies())
      yield* Effect.promise(() => tab.reload({ waitUntil: "load" }))
      yield* wait("#sign-in:visible")
      assert.deepStrictEqual(problems, [], `no console errors: ${problems.join(" / ")}`)
    })), { timeout: 120_000 })
})
