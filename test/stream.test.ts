/**
 * The streaming API: `GET /api/v1/stream` (Server-Sent Events) in the running
 * service fed by the fake Binance USD-M: events from the pipeline, filtered as
 * asked; a client that leaves and comes back with Last-Event-ID gets exactly
 * what it missed, once, in order (from the ring while the database is locked,
 * from the database once the ring has moved on, a trade stored late
 * included); a heartbeat racing live events loses none; a long replay ends
 * with `truncated` and where to continue; a failed replay is an `error`
 * event. And the hub alone: a client that stops reading is dropped with a
 * reason; the others go on.
 *
 * The oracle for "what was missed" is a reference client connected
 * throughout (a fast reader with the same filter), or the database.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { type ArbitrageRow, RowBatch } from "../src/domain/rows.ts"
import { FeedRegistry } from "../src/feed/status.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { streamReplayStatements, streamStoredUpTo } from "../src/storage/queries.ts"
import { parseEventId, StreamHub } from "../src/stream/hub.ts"
import { FakeBinance } from "./fake/binance.ts"
import { TcpProxy } from "./support/proxy.ts"
import { eventually, freePort, postgresUrl, startService, truncateAll } from "./support/service.ts"

const futures = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
const database = postgresLayer(postgresUrl)
const clean = truncateAll.pipe(Effect.provide(database), Effect.scoped)

interface SseEvent {
  readonly event: string
  readonly id: string | undefined
  readonly data: any
}

/** A stream reader running in the background until closed; a read error fails `close` (and the test). */
interface SseClient {
  readonly status: number
  readonly body: any
  readonly events: Array<SseEvent>
  readonly comments: Array<string>
  /** The server ended the stream. */
  ended: boolean
  readonly close: () => Promise<void>
}

/** `stall`: the reader stops reading for `forMs` every `everyMs` (a slow network), so the server's writes wait for drain. */
interface ReadOptions {
  readonly stall?: { readonly everyMs: number; readonly forMs: number } | undefined
}

const open = async (url: string, headers: Record<string, string>, options: ReadOptions): Promise<SseClient> => {
  const response = await fetch(url, { headers })
  if (response.status !== 200) {
    const body = await response.json()
    return { status: response.status, body, events: [], comments: [], ended: true, close: async () => {} }
  }
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  let closing = false
  const client: SseClient = {
    status: 200,
    body: undefined,
    events: [],
    comments: [],
    ended: false,
    close: async () => {
      closing = true
      await reader.cancel()
      await loop
    }
  }
  let lastStall = Date.now()
  const loop = (async () => {
    while (true) {
      if (options.stall !== undefined && Date.now() - lastStall >= options.stall.everyMs) {
        await new Promise((resolve) => setTimeout(resolve, options.stall!.forMs))
        lastStall = Date.now()
      }
      const { value, done } = await reader.read()
      if (done) {
        if (!closing) client.ended = true
        return
      }
      buffer += decoder.decode(value, { stream: true })
      let end: number
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        let event = "message"
        let id: string | undefined
        const data: Array<string> = []
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) client.comments.push(line.slice(1).trim())
          else if (line.startsWith("event: ")) event = line.slice(7)
          else if (line.startsWith("id: ")) id = line.slice(4)
          else if (line.startsWith("data: ")) data.push(line.slice(6))
        }
        if (data.length > 0) client.events.push({ event, id, data: JSON.parse(data.join("\n")) })
      }
    }
  })()
  return client
}

/** A client for the test's scope: closed (and its reader's errors surfaced) at the latest when the scope ends. */
const connect = (url: string, headers: Record<string, string> = {}, options: ReadOptions = {}) =>
  Effect.acquireRelease(Effect.promise(() => open(url, headers, options)), (client) => Effect.promise(() => client.close()))

const close = (client: SseClient) => Effect.promise(() => client.close())

/** Polls `check` until true, or dies after `timeoutMs` naming what did not happen. */
const waitFor = (what: string, check: () => boolean, timeoutMs = 30_000) =>
  eventually(what, Effect.sync(() => (check() ? true : undefined)), timeoutMs)

const trades = (client: SseClient) => client.events.filter((e) => e.event === "large_trade")
const ids = (events: ReadonlyArray<SseEvent>) => events.map((e) => e.id!)
const seqOf = (id: string) => {
  const position = parseEventId(id)
  if (position?._tag !== "Live") throw new Error(`not a live id: ${id}`)
  return position.seq
}
/** Events sent before the "N events replayed" comment: the replay. */
const replayedCount = (client: SseClient) => {
  const comment = client.comments.find((c) => / events replayed from /.test(c))
  return comment === undefined ? undefined : Number(comment.split(" ")[0])
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
    return { fake, port, base: `http://127.0.0.1:${port}/api/v1/stream` }
  })

/**
 * Holds `LOCK TABLE … IN ACCESS EXCLUSIVE MODE` in its own transaction until
 * released: the writer's inserts wait (a slow database). `stored` asks,
 * inside that transaction, which of these row ids the table has.
 */
const lockTable = (table: string) =>
  Effect.gen(function*() {
    const locked = yield* Deferred.make<void>()
    const ask = yield* Deferred.make<ReadonlyArray<string>>()
    const answer = yield* Deferred.make<ReadonlyArray<string>>()
    const release = yield* Deferred.make<void>()
    const holder = yield* SqlClient.SqlClient.use((sql) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* sql`LOCK TABLE ${sql.literal(table)} IN ACCESS EXCLUSIVE MODE`
        yield* Deferred.succeed(locked, undefined)
        const rowIds = yield* Deferred.await(ask)
        const rows = yield* sql`SELECT id FROM ${sql.literal(table)} WHERE id IN ${sql.in(rowIds)}`
        yield* Deferred.succeed(answer, rows.map((r) => r.id as string))
        yield* Deferred.await(release)
      }))
    ).pipe(Effect.provide(database), Effect.forkChild)
    yield* Deferred.await(locked)
    return {
      stored: (rowIds: ReadonlyArray<string>) => Effect.andThen(Deferred.succeed(ask, rowIds), Deferred.await(answer)),
      release: Effect.andThen(Deferred.succeed(release, undefined), Fiber.join(holder))
    }
  })

describe("streaming API", () => {
  it.live("streams the pipeline's events as asked; bad parameters are refused by name", () =>
    Effect.scoped(Effect.gen(function*() {
      const { port, base } = yield* serviceOnFake({}, { frameIntervalMs: 20 })

      // Bad parameters: a 400 in the contract's envelope naming what is wrong.
      for (const [query, named] of [["kinds=trades", "kinds"], ["min_value_usd=-3", "min_value_usd"], ["symbol=BTC;DROP", "symbol"], ["limit=5", "limit"], ["exchange=a&exchange=b", "exchange"]] as const) {
        const refused = yield* connect(`${base}?${query}`)
        assert.strictEqual(refused.status, 400, query)
        assert.strictEqual(refused.body.error.code, "INVALID_PARAMETER")
        assert.include(refused.body.error.message, named)
      }
      const badId = yield* connect(base, { "last-event-id": "nonsense" })
      assert.strictEqual(badId.status, 400)
      assert.include(badId.body.error.message, "Last-Event-ID")

      // Live: large trades of one symbol above a value, and the feed's state.
      const first = yield* connect(`${base}?kinds=large_trade,feed_state&symbol=SUSHI&min_value_usd=100`)
      yield* waitFor("3 large trades", () => trades(first).length >= 3)
      yield* close(first)
      const live = trades(first)
      for (const t of live) {
        assert.strictEqual(t.data.symbol, "SUSHIUSDT")
        assert.isAtLeast(t.data.value_usd, 100)
        assert.isFalse(t.data.is_liquidation)
        assert.match(t.id!, /^\d+\.\d+\.\d+:large_trade:binance-futures_SUSHIUSDT_\d+$/)
      }
      const seqs = live.map((t) => seqOf(t.id!))
      for (let i = 1; i < seqs.length; i++) assert.isAbove(seqs[i]!, seqs[i - 1]!, "arrival sequence increases")
      assert.isTrue(first.events.some((e) => e.event === "feed_state" && e.data.feed.startsWith("binance-futures")), "the feeds' state first")
      assert.isFalse(first.events.some((e) => e.event !== "large_trade" && e.event !== "feed_state"))

      const metrics = Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))
      assert.match(yield* metrics, /stream_events_total(\{[^}]*\})? [1-9]/)
      // The client went away: its subscription ended with its response stream.
      yield* eventually("no stream connections left", Effect.map(metrics, (text) => (/stream_connections(\{[^}]*\})? 0\b/.test(text) ? true : undefined)), 10_000)
    })), { timeout: 120_000 })

  it.live("a client that leaves during a burst while the database is locked gets exactly the events it missed, once, in order", () =>
    Effect.scoped(Effect.gen(function*() {
      const { base } = yield* serviceOnFake({}, { frameIntervalMs: 3 })
      const query = `${base}?kinds=large_trade`
      const reference = yield* connect(query)
      const client = yield* connect(query)
      yield* waitFor("the client reads some trades", () => trades(client).length >= 5)

      // The database slows to a stop (the writer's inserts wait on the lock); the client leaves mid-burst.
      const lock = yield* lockTable("large_trades")
      yield* close(client)
      const lastSeen = trades(client).at(-1)!
      const at = ids(trades(reference)).indexOf(lastSeen.id!)
      assert.isAtLeast(at, 0, "the reference saw the client's last event")
      yield* waitFor("30 trades arrive while the client is away", () => trades(reference).length >= at + 1 + 30)

      const resumed = yield* connect(query, { "last-event-id": lastSeen.id! })
      yield* waitFor("the replay and some live trades", () => {
        const n = replayedCount(resumed)
        return n !== undefined && trades(resumed).length >= n + 5
      })
      const replayed = replayedCount(resumed)!
      const missedRows = trades(resumed).slice(0, replayed).map((e) => e.id!.slice(e.id!.indexOf(":large_trade:") + ":large_trade:".length))
      const storedWhenResumed = yield* lock.stored(missedRows)
      yield* lock.release
      yield* close(resumed)
      yield* waitFor("the reference has everything the resumed client got", () => trades(reference).length >= at + 1 + trades(resumed).length)
      yield* close(reference)

      assert.isAtLeast(replayed, 30, "at least 30 events were missed and replayed")
      assert.isBelow(storedWhenResumed.length, missedRows.length, "some missed events were still in the writer's queue, not in the database")
      const expected = ids(trades(reference)).slice(at + 1, at + 1 + trades(resumed).length)
      assert.deepStrictEqual(ids(trades(resumed)), expected, "exactly the events after the last one seen, in arrival order, then live: none lost, none twice")
      assert.strictEqual(new Set(ids(trades(resumed))).size, trades(resumed).length)
      assert.notInclude(ids(trades(resumed)), lastSeen.id!, "the last event seen is not sent again")
    })), { timeout: 120_000 })

  it.live("a heartbeat racing live events loses none of them", () =>
    Effect.scoped(Effect.gen(function*() {
      // A 1 ms heartbeat: it fires between nearly every two events.
      const { base, fake } = yield* serviceOnFake({ STREAM_HEARTBEAT_MS: "1" }, { frameIntervalMs: 20 })
      const client = yield* connect(`${base}?kinds=large_trade&symbol=SUSHIUSDT`, {}, { stall: { everyMs: 300, forMs: 1500 } })
      yield* waitFor("the feed is live", () => trades(client).length >= 1)
      // 4000 trades of our own in bursts of 40 every 5 ms (ids far above the recording's), the reader stalled
      // for 1.5 s at times (a slow network: the server's writes wait for drain).
      const first = 800_000_000
      for (let i = 0; i < 4000; i++) {
        const now = Date.now()
        fake.inject("futures", JSON.stringify({ stream: "sushiusdt@aggTrade", data: { e: "aggTrade", E: now, s: "SUSHIUSDT", a: first + i, p: "7.5", q: "100", f: first + i, l: first + i, T: now, m: i % 2 === 0 } }))
        if (i % 40 === 39) yield* Effect.sleep("5 millis")
      }
      // The oracle is the database: every one of them the writer stored.
      const stored = yield* eventually("the writer stored them", SqlClient.SqlClient.use((sql) =>
        Effect.map(sql`SELECT trade_id FROM large_trades WHERE exchange = 'binance-futures' AND symbol = 'SUSHIUSDT' AND (CASE WHEN trade_id ~ '^[0-9]+$' THEN trade_id::bigint END) >= ${first}`, (rows) => {
          const all = rows.map((r) => Number(r.trade_id)).sort((a, b) => a - b)
          return all.includes(first + 3999) ? all : undefined
        })).pipe(Effect.provide(database)))
      assert.isAtLeast(stored.length, 3900, "the service stored (nearly) all of them")
      // Given time to arrive (until it has them all, or nothing more came for a second): a lost one never does.
      const injected = () => trades(client).filter((e) => Number(e.data.trade_id) >= first).length
      let previous = -1
      let quiet = 0
      while (injected() < stored.length && quiet < 5) {
        quiet = injected() === previous ? quiet + 1 : 0
        previous = injected()
        yield* Effect.sleep("200 millis")
      }
      yield* close(client)
      const received = trades(client).map((e) => Number(e.data.trade_id)).filter((id) => id >= first)
      assert.isAtLeast(client.comments.filter((c) => c === "keep-alive").length, 50, "heartbeats interleaved with the events")
      assert.deepStrictEqual(received, stored, "every trade, in order, none lost to a heartbeat")
    })), { timeout: 120_000 })

  it.live("a replay longer than STREAM_REPLAY_LIMIT ends with truncated and the id to continue from", () =>
    Effect.scoped(Effect.gen(function*() {
      const { base } = yield* serviceOnFake({ STREAM_REPLAY_LIMIT: "5" }, { frameIntervalMs: 5 })
      const query = `${base}?kinds=large_trade`
      const reference = yield* connect(query)
      const client = yield* connect(query)
      yield* waitFor("the client reads some trades", () => trades(client).length >= 2)
      yield* close(client)
      const lastSeen = trades(client).at(-1)!
      const at = ids(trades(reference)).indexOf(lastSeen.id!)
      yield* waitFor("12 trades arrive while the client is away", () => trades(reference).length >= at + 1 + 12)

      const first = yield* connect(query, { "last-event-id": lastSeen.id! })
      yield* waitFor("the truncated replay ends the stream", () => first.ended)
      const truncated = first.events.at(-1)!
      assert.strictEqual(truncated.event, "truncated")
      assert.deepStrictEqual(ids(trades(first)), ids(trades(reference)).slice(at + 1, at + 6), "the first 5 missed events")
      assert.strictEqual(truncated.data.continue_from, trades(first).at(-1)!.id)
      assert.strictEqual(truncated.id, truncated.data.continue_from, "a browser continues from the id by itself")
      assert.strictEqual(truncated.data.replayed, 5)

      const rest = yield* connect(query, { "last-event-id": truncated.data.continue_from })
      yield* waitFor("the next events", () => trades(rest).length >= 5)
      yield* close(rest)
      yield* waitFor("the reference has them too", () => trades(reference).length >= at + 6 + trades(rest).length)
      assert.deepStrictEqual(ids(trades(rest)), ids(trades(reference)).slice(at + 6, at + 6 + trades(rest).length), "continues where the cut was")
    })), { timeout: 120_000 })

  it.live("once the ring has moved on, the database replays by insert time: a trade stored late is not skipped, nothing is missed or sent twice", () =>
    Effect.scoped(Effect.gen(function*() {
      const { fake, base } = yield* serviceOnFake({ STREAM_RING_EVENTS: "3", STREAM_RESUME_OVERLAP_MS: "0" }, { frameIntervalMs: 20 })
      const query = `${base}?kinds=large_trade&symbol=SUSHIUSDT`
      const reference = yield* connect(query)
      const client = yield* connect(query)
      yield* waitFor("the client reads some trades", () => trades(client).length >= 3)
      yield* close(client)
      const lastSeen = trades(client).at(-1)!
      const at = ids(trades(reference)).indexOf(lastSeen.id!)
      // A trade an hour old by the venue's clock arrives now (a venue clock behind, a repaired trade).
      const now = Date.now()
      const late = { e: "aggTrade", E: now - 3_600_000, s: "SUSHIUSDT", a: 900_000_001, p: "7.5", q: "100", f: 900_000_001, l: 900_000_001, T: now - 3_600_000, m: false }
      fake.inject("futures", JSON.stringify({ stream: "sushiusdt@aggTrade", data: late }))
      yield* waitFor("the late trade and 10 more arrive", () => trades(reference).some((e) => e.data.trade_id === "900000001") && trades(reference).length >= at + 1 + 10)
      const missed = trades(reference).slice(at + 1)
      const missedRows = missed.map((e) => e.id!.slice(e.id!.indexOf(":large_trade:") + ":large_trade:".length))
      yield* eventually("the missed trades are stored", SqlClient.SqlClient.use((sql) =>
        Effect.map(sql`SELECT count(*)::int AS n FROM large_trades WHERE id IN ${sql.in(missedRows)}`, (rows) => (rows[0]!.n === missedRows.length ? true : undefined))
      ).pipe(Effect.provide(database)))

      const resumed = yield* connect(query, { "last-event-id": lastSeen.id! })
      yield* waitFor("the replay", () => replayedCount(resumed) !== undefined)
      yield* close(resumed)
      yield* close(reference)
      const keys = trades(resumed).map((e) => e.data.trade_id as string)
      assert.include(keys, "900000001", "the trade stored late, an hour behind by exchange time")
      for (const m of missed) assert.include(keys, m.data.trade_id, `missed trade ${m.data.trade_id} replayed`)
      assert.strictEqual(new Set(keys).size, keys.length, "nothing twice")
      assert.match(resumed.comments.join("\n"), /replayed from the database, then the ring/)
      assert.isTrue(trades(resumed).some((e) => e.id!.startsWith("db.")), "some from the database")
    })), { timeout: 120_000 })

  it.live("a long replay from the database comes in truncated parts that continue by insert position: nothing missed, nothing twice", () =>
    Effect.scoped(Effect.gen(function*() {
      const { base } = yield* serviceOnFake({ STREAM_RING_EVENTS: "3", STREAM_REPLAY_LIMIT: "4", STREAM_RESUME_OVERLAP_MS: "0" }, { frameIntervalMs: 20 })
      const query = `${base}?kinds=large_trade`
      const reference = yield* connect(query)
      const client = yield* connect(query)
      yield* waitFor("the client reads some trades", () => trades(client).length >= 3)
      yield* close(client)
      const lastSeen = trades(client).at(-1)!
      const at = ids(trades(reference)).indexOf(lastSeen.id!)
      yield* waitFor("15 trades arrive while the client is away", () => trades(reference).length >= at + 1 + 15)
      const missed = trades(reference).slice(at + 1).map((e) => e.data.trade_id as string)

      // Reconnect as a browser does: with the id of the last event received, truncated or not, until one goes live.
      const got: Array<string> = []
      const continuations: Array<string> = []
      let from = lastSeen.id!
      for (let part = 0; part < 40; part++) {
        const resumed = yield* connect(query, { "last-event-id": from })
        yield* waitFor("a part of the replay", () => resumed.ended || replayedCount(resumed) !== undefined)
        yield* close(resumed)
        const cut = resumed.events.at(-1)
        const partTrades = trades(resumed)
        got.push(...partTrades.map((e) => e.data.trade_id as string))
        if (cut?.event !== "truncated") {
          assert.match(resumed.comments.join("\n"), /events replayed from the database, then the ring/, "the last part succeeded")
          break
        }
        assert.isAtMost(partTrades.length, 4)
        continuations.push(cut.id!)
        from = cut.id!
      }
      yield* close(reference)
      assert.isAtLeast(continuations.length, 2, "the replay came in parts")
      assert.isTrue(continuations.some((id) => id.startsWith("db.")), "continued from a database position")
      for (const id of missed) assert.include(got, id, `missed trade ${id} replayed`)
      assert.strictEqual(new Set(got).size, got.length, "nothing twice across the parts")
      // The look-up that keeps ring events already sent from the database out of the last part.
      const row = trades(reference)[at + 1]!.id!.split(":").slice(2).join(":")
      const had = yield* streamStoredUpTo([`large_trade:${row}`, "large_trade:never-stored"], BigInt(Date.now() + 60_000) * 1000n).pipe(Effect.provide(database))
      assert.deepStrictEqual([...had], [`large_trade:${row}`])
    })), { timeout: 120_000 })

  it.live("a replay admission control refuses is an error event to retry, not an empty success", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const port = freePort()
      // No light-lane permits at all: every replay from the database is shed.
      yield* startService({ DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none", API_MAX_LIGHT_QUERIES: "0" })
      const lastEventId = `${Date.now() - 60_000}:large_trade:binance-futures_SUSHIUSDT_1`
      const resumed = yield* connect(`http://127.0.0.1:${port}/api/v1/stream?kinds=large_trade`, { "last-event-id": lastEventId })
      yield* waitFor("the stream ends, or claims a replay", () => resumed.ended || resumed.comments.some((c) => /events replayed/.test(c)), 30_000)
      assert.isFalse(resumed.comments.some((c) => /events replayed/.test(c)), "no claim that the replay succeeded")
      const last = resumed.events.at(-1)
      assert.strictEqual(last?.event, "error")
      assert.strictEqual(last?.data.reason, "overloaded")
      assert.strictEqual(last?.data.continue_from, lastEventId)
    })), { timeout: 120_000 })

  it.live("a replay the database cannot serve is an error event, never an empty success", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const proxy = yield* Effect.acquireRelease(Effect.promise(() => TcpProxy.start(Number(new URL(postgresUrl).port || 5432))), (p) => Effect.promise(() => p.close()))
      const through = new URL(postgresUrl)
      through.port = String(proxy.port)
      const port = freePort()
      yield* startService({ DATABASE_URL: through.toString(), PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none" })
      yield* Effect.promise(() => proxy.cut())
      // An id from before arrival sequences (<ms>:<kind>:<row id>): only the database can resume it.
      const lastEventId = `${Date.now() - 60_000}:large_trade:binance-futures_SUSHIUSDT_1`
      const resumed = yield* connect(`http://127.0.0.1:${port}/api/v1/stream?kinds=large_trade`, { "last-event-id": lastEventId })
      assert.strictEqual(resumed.status, 200)
      yield* waitFor("the stream ends, or claims a replay", () => resumed.ended || resumed.comments.some((c) => /events replayed/.test(c)), 30_000)
      assert.isFalse(resumed.comments.some((c) => /events replayed/.test(c)), "no claim that the replay succeeded")
      assert.isTrue(resumed.ended, "the stream ends: the client reconnects with the same id")
      const last = resumed.events.at(-1)
      assert.strictEqual(last?.event, "error")
      assert.strictEqual(last?.data.reason, "database")
      assert.strictEqual(last?.data.continue_from, lastEventId, "resume with the same id: nothing was skipped")
      assert.isFalse(resumed.events.some((e) => e.event === "large_trade"))
    })), { timeout: 120_000 })

  it.live("the replay's symbol filter matches each instrument once, never a regex per row: the large tables' symbol index can serve it", () =>
    Effect.gen(function*() {
      yield* clean
      const sql = yield* SqlClient.SqlClient
      // 40 instruments × 2,500 trades, so the planner's choice is a real one.
      const symbols = Array.from({ length: 40 }, (_, i) => (i === 0 ? "SUSHIUSDT" : `C${i}USDT`))
      yield* sql`INSERT INTO large_trades (id, exchange, symbol, side, price, size, value_usd, timestamp, trade_id, is_liquidation, metadata)
        SELECT 'x_' || s || '_' || n, 'x', s, 'buy', 1, 1, 1, (NOW() AT TIME ZONE 'UTC') - (n || ' seconds')::interval, n::text, false, '{}'
        FROM generate_series(1, 2500) AS n, unnest(${sql.literal(`ARRAY[${symbols.map((x) => `'${x}'`).join(",")}]`)}) AS s`
      yield* sql`ANALYZE large_trades`
      const now = Date.now()
      const statement = streamReplayStatements(sql, {
        start: { _tag: "InsertedSince", ms: now - 3_600_000 }, until: now + 60_000, earliest: now - 7 * 3_600_000,
        kinds: new Set(["large_trade"]), symbol: "SUSHI", limit: 100
      }).large_trades!
      const [text, params] = statement.compile()
      const [{ "QUERY PLAN": plan }] = yield* sql.unsafe<{ "QUERY PLAN": ReadonlyArray<{ Plan: unknown }> }>(`EXPLAIN (FORMAT JSON) ${text}`, params)
      const tableScans: Array<Record<string, unknown>> = []
      const walk = (node: any) => {
        if (node["Relation Name"] === "large_trades") tableScans.push(node)
        for (const child of node.Plans ?? []) walk(child)
      }
      walk(plan[0]!.Plan)
      assert.isNotEmpty(tableScans)
      for (const scan of tableScans) {
        for (const condition of [scan.Filter, scan["Index Cond"]]) {
          assert.notInclude(String(condition ?? ""), "~", `no regex per row of large_trades (${scan["Node Type"]}: ${condition})`)
        }
      }
      assert.include(JSON.stringify(plan), "~", "the regex runs over the distinct instruments")
      const rows = yield* statement
      assert.strictEqual(rows.length, 101, "the limit and one more, to tell whether the replay is cut")
      assert.isTrue(rows.every((r) => r.symbol === "SUSHIUSDT"))
    }).pipe(Effect.provide(database)), { timeout: 60_000 })

  it.effect("a client that stops reading is dropped with a reason once its buffer is full; another goes on; a resume from the ring is exact", () =>
    Effect.gen(function*() {
      const hub = yield* StreamHub
      const filter = { kinds: new Set(["large_trade" as const]), exchange: undefined, symbol: undefined, minValueUsd: undefined }
      const offer = (i: number) => {
        const batch = new RowBatch()
        batch.large_trades.push({ id: `x_BTCUSDT_${i}`, exchange: "x", symbol: "BTCUSDT", side: "buy", price: 1, size: 1, sizeBase: null, sizeUnit: null, valueUsd: 1, timestamp: 1_000 + i, tradeId: String(i), isLiquidation: false, metadata: {} })
        hub.offer(batch)
      }
      const received: Array<string> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const slow = yield* hub.subscribe(filter, undefined)
        const reader = yield* hub.subscribe(filter, undefined)
        assert.strictEqual(hub.clients(), 2)
        const third = yield* Effect.flip(hub.subscribe(filter, undefined))
        assert.strictEqual(third._tag, "TooManyClients")
        assert.include(third.message, "STREAM_MAX_CLIENTS")
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < 4; i++) offer(round * 4 + i)
          // The reader keeps up (4 at a time, under its 5 slots); the slow one never reads.
          received.push(...(yield* Stream.runCollect(reader.live.pipe(Stream.take(4)))).map((e) => e.id!))
        }
        assert.strictEqual(received.length, 12, "the reading client got everything")
        assert.strictEqual(hub.clients(), 1, "the slow client is gone")
        const slowGot = yield* Stream.runCollect(slow.live.pipe(
          Stream.map((e) => e.id!),
          Stream.catchTag("ClientDropped", (e) => Stream.succeed(`dropped: ${e.reason}`))
        ))
        assert.deepStrictEqual(slowGot.slice(0, 5), received.slice(0, 5), "what it had buffered first")
        assert.match(slowGot[5]!, /^dropped: too slow: 5 events waiting/)
        assert.strictEqual(slowGot.length, 6)
      }))
      assert.strictEqual(hub.clients(), 0, "the subscription ended with its scope")

      // Ids carry the arrival sequence; a resume from the 7th gets the 8th to 12th from the ring.
      assert.deepStrictEqual(received.map(seqOf), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
      const resumed = yield* Effect.scoped(Effect.map(hub.subscribe(filter, parseEventId(received[6]!)), (s) => s.resume))
      assert.strictEqual(resumed?._tag, "Ring")
      assert.deepStrictEqual(resumed?._tag === "Ring" ? resumed.events.map((e) => e.id) : [], received.slice(7))
    }).pipe(
      Effect.provide(StreamHub.layer.pipe(
        Layer.provide(FeedRegistry.layer),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { STREAM_CLIENT_BUFFER: "5", STREAM_RING_EVENTS: "100", STREAM_MAX_CLIENTS: "2" } })))
      ))
    ))
  it.effect("a resume the ring cannot place gets the open opportunities as one snapshot event first, and no spread or arbitrage event sampled before its position; an exact ring resume gets no snapshot", () =>
    Effect.gen(function*() {
      const hub = yield* StreamHub
      const filter = { kinds: new Set(["spread" as const, "arbitrage" as const]), exchange: undefined, symbol: undefined, minValueUsd: undefined }
      const opportunity = (id: string, lastSeenAt: number, closedAt: number | null): ArbitrageRow => ({
        id, asset: "BTC", market: "spot", buyExchange: "alpha", buySymbol: "BTCUSDT", sellExchange: "beta", sellSymbol: "BTCUSDT",
        openedAt: 1_000, closedAt, closeReason: closedAt === null ? null : "edge gone", lastSeenAt, openEdgeBps: 2, peakEdgeBps: 2, peakAt: 1_000,
        buyPrice: 100_000, sellPrice: 100_050, sizeBase: 1, sizeUsd: 100_000, buyFeeBps: 1, sellFeeBps: 1, metadata: null
      })
      const sample = (at: number) => ({ id: `BTC_${at}`, asset: "BTC", timestamp: at, quotes: [], pairs: [], excluded: [], changed: true, metadata: null })
      const ids = yield* Effect.scoped(Effect.gen(function*() {
        const watcher = yield* hub.subscribe(filter, undefined)
        assert.deepStrictEqual(watcher.snapshot, [], "a new client: no opportunity snapshot")
        const offer = (fill: (batch: RowBatch) => void) => {
          const batch = new RowBatch()
          fill(batch)
          hub.offer(batch)
        }
        // Sampled at 500 ms: a spread. At 1 000: A and B open. At 2 000: A closes. At 3 000: a spread.
        offer((b) => b.exchange_spreads.push(sample(500)))
        offer((b) => b.arbitrage_opportunities.push(opportunity("A", 1_000, null), opportunity("B", 1_000, null)))
        offer((b) => b.arbitrage_opportunities.push(opportunity("A", 2_000, 2_000)))
        offer((b) => b.exchange_spreads.push(sample(3_000)))
        return (yield* Stream.runCollect(watcher.live.pipe(Stream.take(5)))).map((e) => e.id!)
      }))
      // From a database position at 2 500 ms (db.<µs>): of the ring's five, only the spread sampled at 3 000 ms is later;
      // the snapshot says B is open now (A closed at 2 000, before the position: the client may never have seen it close).
      const fromDb = yield* Effect.scoped(hub.subscribe(filter, parseEventId("db.2500000:large_trade:x_1")))
      assert.strictEqual(fromDb.resume?._tag, "Database")
      assert.deepStrictEqual(fromDb.resume?._tag === "Database" ? fromDb.resume.ring.map((e) => e.rowId) : [], ["BTC_3000"])
      assert.deepStrictEqual(fromDb.snapshot.map((e) => [e.kind, e.id, e.rowId]), [["arbitrage", undefined, "open-snapshot"]])
      const snapshot = JSON.parse(fromDb.snapshot[0]!.data)
      assert.strictEqual(snapshot.snapshot, true)
      assert.deepStrictEqual(snapshot.open.map((o: any) => [o.id, o.status]), [["B", "open"]])
      // An exact resume from the ring (after the first event): the four after it, and no snapshot.
      const exact = yield* Effect.scoped(hub.subscribe(filter, parseEventId(ids[0]!)))
      assert.strictEqual(exact.resume?._tag, "Ring")
      assert.deepStrictEqual(exact.resume?._tag === "Ring" ? exact.resume.events.map((e) => e.id) : [], ids.slice(1))
      assert.deepStrictEqual(exact.snapshot, [])
    }).pipe(
      Effect.provide(StreamHub.layer.pipe(
        Layer.provide(FeedRegistry.layer),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { STREAM_RING_EVENTS: "100" } })))
      ))
    ))
})
