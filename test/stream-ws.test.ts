/**
 * The stream over a WebSocket: `GET /api/v1/stream/ws` in the running service
 * fed by the fake Binance USD-M, with a real client (the `ws` package). The
 * filters deliver exactly the matching events (trades of our own with known
 * values); a client that leaves and comes back with a first message
 * `{"resume": id}` gets exactly what it missed, once, in order; a client that
 * stops reading is dropped with the `dropped` frame and close 4000 while
 * another goes on; without a token (API_TOKENS set) the handshake is refused.
 *
 * The oracle for "what was missed" is a reference client connected
 * throughout, as in stream.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import WebSocket from "ws"
import { WsFrame } from "../src/api/stream-ws.ts"
import { parseEventId } from "../src/stream/hub.ts"
import { FakeBinance } from "./fake/binance.ts"
import { eventually, freePort, postgresUrl, startService, truncateAll } from "./support/service.ts"
import { postgresLayer } from "../src/storage/database.ts"

const futures = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
const database = postgresLayer(postgresUrl)
const clean = truncateAll.pipe(Effect.provide(database), Effect.scoped)
const decodeFrame = Schema.decodeUnknownSync(Schema.fromJsonString(WsFrame))

/** A WebSocket client recording every frame (each decoded with the WsFrame schema) and how it was closed. */
interface WsClient {
  /** 101 once open; otherwise the refused handshake's status. */
  readonly status: number
  readonly body: any
  readonly frames: Array<WsFrame>
  /** Frames that did not decode: the test fails on any. */
  readonly malformed: Array<string>
  closed: { readonly code: number; readonly reason: string } | undefined
  readonly socket: WebSocket
  readonly close: () => Promise<void>
}

const open = (url: string, options: { readonly headers?: Record<string, string>; readonly first?: string } = {}) =>
  new Promise<WsClient>((resolve, reject) => {
    const socket = new WebSocket(url, { headers: options.headers ?? {} })
    const frames: Array<WsFrame> = []
    const malformed: Array<string> = []
    const ended = new Promise<void>((done) => socket.once("close", () => done()))
    const client = (status: number, body: any): WsClient => {
      const c: WsClient = {
        status, body, frames, malformed, closed: undefined, socket,
        close: async () => {
          if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close(1000)
          await Promise.race([ended, new Promise((r) => setTimeout(r, 5_000))])
          socket.terminate()
        }
      }
      socket.on("close", (code, reason) => {
        c.closed = { code, reason: reason.toString() }
      })
      return c
    }
    socket.on("message", (data) => {
      const text = data.toString()
      try {
        frames.push(decodeFrame(text))
      } catch {
        malformed.push(text)
      }
    })
    socket.once("unexpected-response", (_request, response) => {
      let body = ""
      response.on("data", (chunk: Buffer) => (body += chunk.toString()))
      response.on("end", () => {
        socket.terminate()
        resolve(client(response.statusCode ?? 0, JSON.parse(body)))
      })
    })
    socket.once("open", () => {
      const c = client(101, undefined)
      if (options.first !== undefined) socket.send(options.first)
      resolve(c)
    })
    socket.once("error", (e) => {
      if (socket.readyState !== WebSocket.OPEN) reject(e)
    })
  })

/** A client for the test's scope: closed at the latest when the scope ends. */
const connect = (url: string, options: { readonly headers?: Record<string, string>; readonly first?: string } = {}) =>
  Effect.acquireRelease(Effect.promise(() => open(url, options)), (client) => Effect.promise(() => client.close()))

const close = (client: WsClient) => Effect.promise(() => client.close())

const waitFor = (what: string, check: () => boolean, timeoutMs = 30_000) =>
  eventually(what, Effect.sync(() => (check() ? true : undefined)), timeoutMs)

const trades = (client: WsClient) => client.frames.filter((f) => f.kind === "large_trade")
const ids = (frames: ReadonlyArray<WsFrame>) => frames.map((f) => f.id!)
const seqOf = (id: string) => {
  const position = parseEventId(id)
  if (position?._tag !== "Live") throw new Error(`not a live id: ${id}`)
  return position.seq
}

/** The service on the fake Binance USD-M, every trade a large trade. */
const serviceOnFake = (env: Record<string, string>, fakeOptions: { frameIntervalMs: number }) =>
  Effect.gen(function*() {
    yield* clean
    const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start(fakeOptions)), (f) => Effect.promise(() => f.close()))
    const port = freePort()
    yield* startService({
      DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance-futures",
      BINANCE_FUTURES_SYMBOLS: futures.join(","), BINANCE_FUTURES_WS_URL: fake.wsUrl, BINANCE_FUTURES_REST_URL: fake.httpUrl,
      LARGE_TRADE_THRESHOLD_DEFAULT: "1", WRITER_FLUSH_MS: "20", ...env
    })
    /** One aggTrade of our own (ids far above the recording's). */
    const trade = (symbol: string, id: number, price: string, quantity: string) => {
      // The service runs on the wall clock and refuses trades far from it; nothing asserted depends on the date.
      const now = Date.now()
      fake.inject("futures", JSON.stringify({ stream: `${symbol.toLowerCase()}@aggTrade`, data: { e: "aggTrade", E: now, s: symbol, a: id, p: price, q: quantity, f: id, l: id, T: now, m: false } }))
    }
    return { fake, port, trade, http: `http://127.0.0.1:${port}`, base: `ws://127.0.0.1:${port}/api/v1/stream/ws` }
  })

const metricsText = (http: string) => Effect.promise(() => fetch(`${http}/metrics`).then((r) => r.text()))

describe("streaming API over WebSocket", () => {
  it.live("the filters deliver exactly the matching events; bad parameters and bad first messages are refused", () =>
    Effect.scoped(Effect.gen(function*() {
      const { base, http, trade } = yield* serviceOnFake({ STREAM_MAX_CLIENTS: "3", STREAM_WS_RESUME_WAIT_MS: "400" }, { frameIntervalMs: 20 })

      // Refused before the handshake, as SSE refuses them: a 400 naming the parameter.
      for (const [query, named] of [["kinds=trades", "kinds"], ["min_value_usd=-3", "min_value_usd"], ["symbol=BTC;DROP", "symbol"], ["token=secret", "token"], ["last_event_id=nonsense", "Last-Event-ID"]] as const) {
        const refused = yield* connect(`${base}?${query}`)
        assert.strictEqual(refused.status, 400, query)
        assert.strictEqual(refused.body.error.code, "INVALID_PARAMETER")
        assert.include(refused.body.error.message, named)
      }
      const plain = yield* Effect.promise(() => fetch(base.replace("ws://", "http://")))
      assert.strictEqual(plain.status, 426, "a plain GET is told to upgrade")

      // A first message that is not a resume message: the error frame, then close 1008.
      const garbled = yield* connect(base, { first: "hello" })
      yield* waitFor("the protocol error closes it", () => garbled.closed !== undefined)
      assert.deepStrictEqual(garbled.frames.map((f) => [f.kind, f.data.reason]), [["error", "protocol"]])
      assert.strictEqual(garbled.closed!.code, 1008)
      const badId = yield* connect(base, { first: JSON.stringify({ resume: "nonsense" }) })
      yield* waitFor("the bad id closes it", () => badId.closed !== undefined)
      assert.strictEqual(badId.closed!.code, 1008)
      assert.include(String(badId.frames[0]!.data.message), "Last-Event-ID must be an id this stream sent")

      // A client that says nothing goes live once the server has waited STREAM_WS_RESUME_WAIT_MS (400 ms) for a resume message.
      const openedAt = Date.now()
      const quiet = yield* connect(`${base}?kinds=feed_state`)
      yield* waitFor("the quiet client's snapshot", () => quiet.frames.length > 0)
      assert.isAtLeast(Date.now() - openedAt, 400, "not before the wait")
      assert.strictEqual(quiet.frames[0]!.kind, "feed_state")
      yield* close(quiet)

      // Two filtered clients, live at once (`{"resume": null}`: no wait); each is subscribed once its feed snapshot arrived.
      const sushi = yield* connect(`${base}?kinds=large_trade,feed_state&symbol=SUSHI&min_value_usd=100`, { first: JSON.stringify({ resume: null }) })
      const akro = yield* connect(`${base}?kinds=large_trade,feed_state&exchange=binance-futures&symbol=AKROUSDT`, { first: JSON.stringify({ resume: null }) })
      yield* waitFor("both have the feeds' snapshot", () => [sushi, akro].every((c) => c.frames.some((f) => f.kind === "feed_state")))
      const third = yield* connect(base, { first: "{}" })
      yield* waitFor("the third is subscribed", () => third.frames.some((f) => f.kind === "feed_state"))
      const fourth = yield* connect(base)
      assert.strictEqual(third.status, 101)
      assert.strictEqual(fourth.status, 503, "STREAM_MAX_CLIENTS (3) reached: refused before the handshake")
      yield* close(third)

      // Our trades, value = price × quantity (USDT at par):
      const first = 800_000_000
      trade("SUSHIUSDT", first + 1, "2.5", "40") //    2.5 × 40    = 100    SUSHI ≥ 100: sushi (the bound is inclusive)
      trade("SUSHIUSDT", first + 2, "2.5", "39.6") //  2.5 × 39.6  =  99    below 100: nobody
      trade("SUSHIUSDT", first + 3, "7.5", "100") //   7.5 × 100   = 750    sushi
      trade("AKROUSDT", first + 4, "0.01", "50000") // 0.01 × 50000 = 500   not SUSHI: akro
      trade("AKROUSDT", first + 5, "0.01", "100") //   0.01 × 100  =   1    akro (no minimum)
      trade("KEEPUSDT", first + 6, "0.1", "5000") //   0.1 × 5000  = 500    neither
      trade("SUSHIUSDT", first + 7, "10", "10") //     10 × 10     = 100    sushi, and the last
      trade("AKROUSDT", first + 8, "0.02", "50") //    0.02 × 50   =   1    akro, and the last
      const ours = (client: WsClient) => trades(client).filter((f) => Number(f.data.trade_id) >= first)
      yield* waitFor("the last of ours arrive", () => ours(sushi).some((f) => f.data.trade_id === String(first + 7)) && ours(akro).some((f) => f.data.trade_id === String(first + 8)))
      // A moment for anything wrongly let through, then count.
      yield* Effect.sleep("500 millis")
      assert.deepStrictEqual(ours(sushi).map((f) => [f.data.trade_id, f.data.value_usd]), [[String(first + 1), 100], [String(first + 3), 750], [String(first + 7), 100]])
      assert.deepStrictEqual(ours(akro).map((f) => [f.data.trade_id, f.data.value_usd]), [[String(first + 4), 500], [String(first + 5), 1], [String(first + 8), 1]])
      // Every frame of them, the recording's trades included, matches its filter; ids are the SSE ids, in arrival order.
      for (const f of trades(sushi)) {
        assert.strictEqual(f.data.symbol, "SUSHIUSDT")
        assert.isAtLeast(f.data.value_usd as number, 100)
      }
      for (const f of trades(akro)) assert.deepStrictEqual([f.data.exchange, f.data.symbol], ["binance-futures", "AKROUSDT"])
      for (const client of [sushi, akro]) {
        assert.isFalse(client.frames.some((f) => f.kind !== "large_trade" && f.kind !== "feed_state"))
        assert.isNull(client.frames[0]!.id, "the snapshot first, without ids")
        const seqs = ids(trades(client)).map(seqOf)
        for (let i = 1; i < seqs.length; i++) assert.isAbove(seqs[i]!, seqs[i - 1]!, "arrival sequence increases")
        for (const f of trades(client)) assert.match(f.id!, /^\d+\.\d+\.\d+:large_trade:binance-futures_[A-Z]+USDT_\d+$/)
        assert.deepStrictEqual(client.malformed, [])
      }
      assert.match(yield* metricsText(http), /stream_events_total(\{[^}]*\})? [1-9]/)
      yield* close(sushi)
      yield* close(akro)
      yield* eventually("no stream connections left", Effect.map(metricsText(http), (text) => (/stream_connections(\{[^}]*\})? 0\b/.test(text) ? true : undefined)), 10_000)
    })), { timeout: 120_000 })

  it.live("a client that comes back with {\"resume\": id} as its first message gets exactly what it missed, once, in order, then live", () =>
    Effect.scoped(Effect.gen(function*() {
      const { base } = yield* serviceOnFake({}, { frameIntervalMs: 5 })
      const query = `${base}?kinds=large_trade`
      const reference = yield* connect(query, { first: "{}" })
      const client = yield* connect(query, { first: JSON.stringify({ resume: null }) })
      yield* waitFor("the client reads some trades", () => trades(client).length >= 5)
      yield* close(client)
      const lastSeen = trades(client).at(-1)!
      const at = ids(trades(reference)).indexOf(lastSeen.id!)
      assert.isAtLeast(at, 0, "the reference saw the client's last event")
      yield* waitFor("20 trades arrive while the client is away", () => trades(reference).length >= at + 1 + 20)

      const resumed = yield* connect(query, { first: JSON.stringify({ resume: lastSeen.id }) })
      yield* waitFor("the replay and some live trades", () => {
        const replayed = resumed.frames.find((f) => f.kind === "replayed")
        return replayed !== undefined && trades(resumed).length >= (replayed.data.count as number) + 5
      })
      // The same id as a parameter (as SSE's last_event_id): no first message, no wait.
      const byParameter = yield* connect(`${query}&last_event_id=${encodeURIComponent(lastSeen.id!)}`)
      yield* waitFor("its replay", () => byParameter.frames.some((f) => f.kind === "replayed"))
      yield* close(resumed)
      yield* close(byParameter)
      yield* waitFor("the reference has everything the resumed client got", () => trades(reference).length >= at + 1 + trades(resumed).length)
      yield* close(reference)

      const replayedFrame = resumed.frames.find((f) => f.kind === "replayed")!
      const replayed = replayedFrame.data.count as number
      assert.isAtLeast(replayed, 20, "at least the 20 missed events were replayed")
      assert.strictEqual(replayedFrame.data.source, "the ring")
      assert.strictEqual(resumed.frames.indexOf(replayedFrame), replayed, "the replay comes first, then its account")
      const expected = ids(trades(reference)).slice(at + 1, at + 1 + trades(resumed).length)
      assert.deepStrictEqual(ids(trades(resumed)), expected, "exactly the events after the last one seen, in arrival order, then live: none lost, none twice")
      assert.strictEqual(new Set(ids(trades(resumed))).size, trades(resumed).length)
      assert.isTrue(ids(trades(resumed)).every((id) => seqOf(id) > seqOf(lastSeen.id!)), "nothing from before the id")
      assert.deepStrictEqual(ids(trades(byParameter)).slice(0, replayed), expected.slice(0, replayed), "last_event_id resumes at the same place")
      console.log("resume transcript:\n" + [
        `> ${JSON.stringify({ resume: lastSeen.id })}`,
        ...resumed.frames.slice(0, 2).map((f) => `< ${JSON.stringify(f)}`),
        "< …",
        ...resumed.frames.slice(replayed - 1, replayed + 2).map((f) => `< ${JSON.stringify(f)}`)
      ].join("\n"))
    })), { timeout: 120_000 })

  it.live("a replay cut at STREAM_REPLAY_LIMIT ends with truncated and close 4001; a refused replay with error and close 4002", () =>
    Effect.scoped(Effect.gen(function*() {
      // No light-lane permits: a replay from the database is shed; one from the ring needs none.
      const { base } = yield* serviceOnFake({ STREAM_REPLAY_LIMIT: "5", API_MAX_LIGHT_QUERIES: "0" }, { frameIntervalMs: 5 })
      const query = `${base}?kinds=large_trade`
      const reference = yield* connect(query, { first: "{}" })
      const client = yield* connect(query, { first: "{}" })
      yield* waitFor("the client reads some trades", () => trades(client).length >= 2)
      yield* close(client)
      const lastSeen = trades(client).at(-1)!
      const at = ids(trades(reference)).indexOf(lastSeen.id!)
      yield* waitFor("8 trades arrive while the client is away", () => trades(reference).length >= at + 1 + 8)

      const cut = yield* connect(query, { first: JSON.stringify({ resume: lastSeen.id }) })
      yield* waitFor("the truncated replay closes it", () => cut.closed !== undefined)
      const truncated = cut.frames.at(-1)!
      assert.strictEqual(truncated.kind, "truncated")
      assert.deepStrictEqual(ids(trades(cut)), ids(trades(reference)).slice(at + 1, at + 6), "the first 5 missed events")
      assert.strictEqual(truncated.id, trades(cut).at(-1)!.id, "resume from the last one sent")
      assert.strictEqual(truncated.data.continue_from, truncated.id)
      assert.strictEqual(truncated.data.replayed, 5)
      assert.strictEqual(cut.closed!.code, 4001)

      // An id from before arrival sequences: only the database can resume it, and admission refuses.
      const legacy = `${Date.now() - 60_000}:large_trade:binance-futures_SUSHIUSDT_1`
      const refused = yield* connect(query, { first: JSON.stringify({ resume: legacy }) })
      yield* waitFor("the refused replay closes it", () => refused.closed !== undefined)
      assert.deepStrictEqual(refused.frames.map((f) => [f.kind, f.data.reason, f.data.continue_from]), [["error", "overloaded", legacy]], "no event, no claim of a replay")
      assert.strictEqual(refused.closed!.code, 4002)
      console.log(`truncated transcript:\n< ${JSON.stringify(truncated)}\n  close ${cut.closed!.code} ${JSON.stringify(cut.closed!.reason)}\n< ${JSON.stringify(refused.frames[0])}\n  close ${refused.closed!.code} ${JSON.stringify(refused.closed!.reason)}`)
    })), { timeout: 120_000 })

  it.live("a client that stops reading is dropped with the reason and close 4000 once its buffer is full; another client gets every event", () =>
    Effect.scoped(Effect.gen(function*() {
      const { base, http, trade } = yield* serviceOnFake({ STREAM_CLIENT_BUFFER: "1000" }, { frameIntervalMs: 1_000_000 })
      const query = `${base}?kinds=large_trade&symbol=SUSHIUSDT`
      const reader = yield* connect(query, { first: JSON.stringify({ resume: null }) })
      const slow = yield* connect(query, { first: JSON.stringify({ resume: null }) })
      // Warm-up trades (below `first`) until both are subscribed; the comparison is of the trades from `first` on.
      for (let warmUp = 700_000_000; !(trades(reader).length >= 1 && trades(slow).length >= 1); warmUp++) {
        assert.isBelow(warmUp, 700_000_100, "both clients go live")
        trade("SUSHIUSDT", warmUp, "7.5", "100")
        yield* Effect.sleep("100 millis")
      }
      const first = 800_000_000
      const ours = (client: WsClient) => trades(client).filter((f) => Number(f.data.trade_id) >= first)
      // The slow client stops reading its connection: what the kernel's buffers hold, then the server's writer waits.
      slow.socket.pause()

      const droppedCount = Effect.map(metricsText(http), (text) => Number(/stream_clients_dropped_total\{[^}]*reason="too_slow"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0))
      let injected = 0
      // Bursts of 100 (well under the reader's 1000) until the hub has dropped the slow one (bounded: at most 60,000 trades).
      while ((yield* droppedCount) === 0 && injected < 60_000) {
        for (let i = 0; i < 100; i++) trade("SUSHIUSDT", first + injected++, "7.5", "100")
        yield* Effect.sleep("30 millis")
      }
      assert.strictEqual(yield* droppedCount, 1, `the slow client was dropped (after ${injected} trades)`)
      yield* waitFor("the reader gets every trade", () => ours(reader).length >= injected, 60_000)

      // It reads again: what its buffers held, then the reason, then the close.
      slow.socket.resume()
      yield* waitFor("the slow client is closed", () => slow.closed !== undefined, 30_000)
      const last = slow.frames.at(-1)!
      assert.strictEqual(last.kind, "dropped")
      assert.match(String(last.data.reason), /^too slow: 1000 events waiting/)
      assert.strictEqual(slow.closed!.code, 4000)
      assert.strictEqual(slow.closed!.reason, "dropped: too slow")
      const got = ids(ours(slow))
      assert.deepStrictEqual(got, ids(ours(reader)).slice(0, got.length), "what it got is what the reader got, in order, up to the drop")
      assert.isBelow(got.length, injected, "it did not get everything")
      assert.isFalse(reader.frames.some((f) => f.kind === "dropped"), "the reader was never dropped")
      assert.isUndefined(reader.closed)
      assert.deepStrictEqual(ours(reader).map((f) => Number(f.data.trade_id)), Array.from({ length: injected }, (_, i) => first + i), "every injected trade, in order")
      console.log(`slow client: dropped after ${injected} trades injected; it got ${got.length}, then:\n< ${JSON.stringify(last)}\n  close ${slow.closed!.code} ${JSON.stringify(slow.closed!.reason)}`)
    })), { timeout: 180_000 })

  it.live("with API_TOKENS the handshake needs the token (header, or the dashboard's session cookie); none in the URL", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const port = freePort()
      yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none", API_TOKENS: "s3cret", STREAM_HEARTBEAT_MS: "200" })
      const base = `ws://127.0.0.1:${port}/api/v1/stream/ws`
      const anonymous = yield* connect(base)
      assert.strictEqual(anonymous.status, 401)
      assert.strictEqual(anonymous.body.error.code, "UNAUTHORIZED")
      const wrong = yield* connect(base, { headers: { authorization: "Bearer guess" } })
      assert.strictEqual(wrong.status, 401)
      const inUrl = yield* connect(`${base}?token=s3cret`)
      assert.strictEqual(inUrl.status, 401, "a token in the URL proves nothing")

      const bearer = yield* connect(base, { headers: { authorization: "Bearer s3cret" }, first: "{}" })
      assert.strictEqual(bearer.status, 101)
      // The browser's way: POST /api/v1/session with the token once, then the cookie goes with the handshake.
      const session = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/api/v1/session`, { method: "POST", headers: { authorization: "Bearer s3cret" } }))
      const cookie = session.headers.get("set-cookie")!.split(";")[0]!
      const browser = yield* connect(base, { headers: { cookie }, first: "{}" })
      assert.strictEqual(browser.status, 101)
      yield* waitFor("heartbeats on both", () => [bearer, browser].every((c) => c.frames.some((f) => f.kind === "heartbeat")))
      assert.deepStrictEqual(bearer.frames[0], { kind: "heartbeat", id: null, data: {} })
      // A client's own keep-alive: the server answers its ping.
      const pong = yield* Effect.promise(() =>
        new Promise<string>((resolve) => {
          bearer.socket.once("pong", (data) => resolve(data.toString()))
          bearer.socket.ping("are you there")
        })
      ).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(pong, "are you there")
    })), { timeout: 60_000 })
})
