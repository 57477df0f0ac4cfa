/**
 * The outbox survives the process: `node src/main.ts` collects from the fake
 * Binance USD-M with the broker cut away and the webhook down, so broker
 * messages and webhook deliveries pile up; the process is then killed
 * (SIGKILL) or stopped (SIGTERM). A second process on the same database,
 * after the broker and the webhook come back, delivers every message and every
 * webhook POST: the message ids received, deduplicated, are exactly the ids of
 * the rows stored (large trades, liquidations, funding, open interest, alerts,
 * every gap's final state), and the webhook got exactly the stored alerts.
 * Duplicates (at-least-once) are counted and printed.
 *
 * Also: SIGTERM releases the writer, then the publisher, then alert delivery,
 * and the log says what stays in the outbox; messages older than
 * OUTBOX_MAX_AGE_HOURS are deleted and counted, never silently dropped.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { postgresLayer } from "../src/storage/database.ts"
import { FakeBinance } from "./fake/binance.ts"
import { brokerHost, brokerPort, brokerUrl, brokerUrlVia, consumer } from "./support/broker.ts"
import { TcpProxy } from "./support/proxy.ts"
import { eventually, freePort, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const symbols = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]

const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

const query = <Row extends object>(text: string) =>
  withDatabase(SqlClient.SqlClient.use((sql) => sql.unsafe<Row>(text)))

const ids = (text: string) => Effect.map(query<{ id: string }>(text), (rows) => rows.map((r) => r.id))

/** Every message id the stored rows stand for: one per published row, and each gap's final state. */
const storedMessageIds = Effect.gen(function*() {
  const rows = yield* ids(`SELECT id FROM large_trades UNION ALL SELECT id FROM funding_rates UNION ALL SELECT id FROM open_interest
    UNION ALL SELECT id FROM alerts`)
  const gaps = yield* query<{ id: string; repair_status: string; gap_end: Date | null; repaired_count: string }>(
    `SELECT id, repair_status, gap_end, repaired_count::text AS repaired_count FROM data_gaps`
  )
  // A gap's message id names its state: id, status, end (epoch ms) and repaired count, as the ledger publishes it.
  const gapIds = gaps.map((g) => `${g.id}:${g.repair_status}:${g.gap_end === null ? "open" : g.gap_end.getTime()}:${g.repaired_count}`)
  return { rows: new Set(rows), gaps: new Set(gapIds) }
})

/** A webhook receiver on `port` answering 204, keeping every request's alert id and body. */
const receiver = (port: number) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ server: Server; received: Array<{ id: string; body: string }> }>((resolve) => {
        const received: Array<{ id: string; body: string }> = []
        const server = createServer((req: IncomingMessage, res: ServerResponse) => {
          let body = ""
          req.on("data", (chunk) => (body += chunk))
          req.on("end", () => {
            received.push({ id: String(req.headers["x-alert-id"]), body })
            res.writeHead(204).end()
          })
        })
        server.listen(port, "127.0.0.1", () => resolve({ server, received }))
      })
    ),
    ({ server }) => Effect.promise(() => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }))
  )

const rulesFile = (hookPort: number) => {
  const path = join(mkdtempSync(join(tmpdir(), "outbox-rules-")), "rules.yaml")
  writeFileSync(path, `
webhooks:
  - name: desk
    url: http://127.0.0.1:${hookPort}/alerts
    timeout_ms: 1000
rules:
  - name: every-trade
    kind: large_trade
    min_value_usd: 1
    cooldown_seconds: 0
`)
  return path
}

interface Child {
  readonly child: ChildProcess
  readonly output: Array<string>
}

/** `node src/main.ts` as a user starts it, its log kept. */
const spawnService = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync((): Child => {
      const child = spawn(process.execPath, [fileURLToPath(new URL("../src/main.ts", import.meta.url))], {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", LOG_LEVEL: "Info", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const output: Array<string> = []
      child.stdout?.on("data", (chunk: Buffer) => output.push(chunk.toString()))
      child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()))
      return { child, output }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

const exited = (child: ChildProcess) =>
  Effect.promise(() =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
      : new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal }))
      )
  )

const count = (table: string) => Effect.map(query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`), (rows) => Number(rows[0]!.n))

describe("the outbox across a restart", () => {
  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    it.live(`${signal} with messages and webhook deliveries pending: after the restart every one is delivered, once by id`, () =>
      Effect.scoped(Effect.gen(function*() {
        yield* withDatabase(truncateAll)
        const exchange = `md-outbox-${randomUUID().slice(0, 8)}`
        const broker = yield* consumer(exchange, ["#"])
        // The service reaches the broker only through this proxy: cut from the start.
        const proxy = yield* Effect.acquireRelease(Effect.promise(() => TcpProxy.start(brokerPort, brokerHost)), (p) => Effect.promise(() => p.close()))
        yield* Effect.promise(() => proxy.cut())
        const hookPort = freePort()
        const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 8 })), (f) => Effect.promise(() => f.close()))
        const env = (port: number) => ({
          DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance-futures",
          BINANCE_FUTURES_SYMBOLS: symbols.join(","), BINANCE_FUTURES_WS_URL: fake.wsUrl, BINANCE_FUTURES_REST_URL: fake.httpUrl,
          LARGE_TRADE_THRESHOLD_DEFAULT: "1", WRITER_FLUSH_MS: "20",
          AMQP_URL: brokerUrlVia(proxy.port), PUBLISH_EXCHANGE: exchange, PUBLISH_RETRY_MAX_SECONDS: "1",
          ALERT_RULES: rulesFile(hookPort), ALERT_WEBHOOK_RETRY_MAX_SECONDS: "1"
        })

        const first = yield* spawnService(env(freePort()))
        // Rows stored (and, with them, their messages and webhook deliveries) while neither the broker nor the webhook answers.
        yield* eventually("large trades and alerts stored by the first process", Effect.gen(function*() {
          const trades = yield* count("large_trades")
          const alerts = yield* count("alerts")
          return trades >= 30 && alerts >= 10 ? true : undefined
        }), 60_000)
        first.child.kill(signal)
        const exit = yield* exited(first.child)
        const outboxAtStop = new Set(yield* ids("SELECT id FROM outbox"))
        const deliveriesAtStop = new Set(yield* ids("SELECT alert_id AS id FROM alert_deliveries"))
        const storedAtStop = yield* storedMessageIds
        assert.isAtLeast(outboxAtStop.size, 30, "messages were pending when the process stopped")
        assert.isAtLeast(deliveriesAtStop.size, 10, "webhook deliveries were pending when the process stopped")
        assert.isFalse(fake.finished("futures"), "the process stopped mid-stream")
        const firstLog = first.output.join("")
        if (signal === "SIGTERM") {
          // It ended by itself, through the finalizers (runMain's exit code for an interrupted program is 130).
          assert.deepStrictEqual(exit, { code: 130, signal: null }, firstLog.slice(-2000))
          // Released in order: the writer drains, then the publisher says what stays, then alert delivery.
          const writerAt = firstLog.indexOf("writer drained its queues")
          const publisherAt = firstLog.indexOf(`publisher stopped; ${outboxAtStop.size} messages stay in the outbox for the next start`)
          const alertsAt = firstLog.indexOf(`alert delivery stopped; ${deliveriesAtStop.size} webhook deliveries stay pending for the next start`)
          assert.isAbove(writerAt, -1, firstLog.slice(-3000))
          assert.isAbove(publisherAt, writerAt, "the publisher after the writer")
          assert.isAbove(alertsAt, publisherAt, "alert delivery after the publisher")
        } else {
          assert.strictEqual(exit.signal, "SIGKILL")
        }

        const port = freePort()
        const second = yield* spawnService(env(port))
        yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 90_000)
        // Everything the second process got is in as well before the broker and the webhook return.
        yield* eventually("the second process's rows stored", Effect.map(getJson(`http://127.0.0.1:${port}/health`).pipe(Effect.orElseSucceed(() => undefined)), (health) =>
          health !== undefined && Object.values(health.body.queues as Record<string, { queued: number }>).every((q) => q.queued === 0) ? true : undefined), 30_000)
        assert.strictEqual(broker.received.deliveries, 0, "nothing reached the broker while it was away")

        yield* Effect.promise(() => proxy.restore())
        const hook = yield* receiver(hookPort)
        yield* eventually("the outbox and the webhook backlog empty", Effect.gen(function*() {
          return (yield* count("outbox")) === 0 && (yield* count("alert_deliveries")) === 0 ? true : undefined
        }), 90_000)
        const stored = yield* storedMessageIds
        const received = new Set(broker.received.byId.keys())
        // The consumer may see a message a moment before the broker's confirm reaches the publisher: wait for what was deleted.
        yield* eventually("every confirmed message at the consumer", Effect.sync(() =>
          [...stored.rows, ...stored.gaps].every((id) => broker.received.byId.has(id)) ? true : undefined), 30_000)
        for (const id of broker.received.byId.keys()) received.add(id)

        const missing = [...outboxAtStop].filter((id) => !received.has(id))
        assert.deepStrictEqual(missing, [], "every message pending at the stop was delivered after the restart")
        assert.isTrue([...storedAtStop.rows].every((id) => received.has(id)))
        const receivedRows = [...received].filter((id) => !/:(open|repairing|verified|partial|unrecoverable):/.test(id))
        assert.sameMembers(receivedRows, [...stored.rows], "the message ids are exactly the stored rows' ids")
        for (const id of stored.gaps) assert.isTrue(received.has(id), `the gap state ${id} was published`)

        const hookIds = new Set(hook.received.map((r) => r.id))
        const alertIds = yield* ids("SELECT id FROM alerts")
        assert.sameMembers([...hookIds], alertIds, "the webhook got exactly the stored alerts")
        assert.isTrue([...deliveriesAtStop].every((id) => hookIds.has(id)), "every delivery pending at the stop was POSTed after the restart")
        const duplicateMessages = broker.received.deliveries - broker.received.byId.size
        const duplicatePosts = hook.received.length - hookIds.size
        console.log(`${signal}: ${outboxAtStop.size} messages and ${deliveriesAtStop.size} webhook deliveries pending at the stop; after the restart ` +
          `${broker.received.byId.size} message ids received (${stored.rows.size} rows, ${stored.gaps.size} gap states), ${duplicateMessages} duplicate deliveries; ` +
          `${hookIds.size} alerts POSTed, ${duplicatePosts} duplicate POSTs; 0 missing`)

        second.child.kill("SIGTERM")
        const secondExit = yield* exited(second.child)
        assert.deepStrictEqual(secondExit, { code: 130, signal: null })
        assert.include(second.output.join(""), "publisher stopped; 0 messages stay in the outbox for the next start")
      })), { timeout: 300_000 })
  }

  it.live("SIGTERM with the broker and the webhook up: the writer's last rows are stored, then published, then POSTed, before the exit", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      const exchange = `md-drain-${randomUUID().slice(0, 8)}`
      const broker = yield* consumer(exchange, ["#"])
      const hookPort = freePort()
      const hook = yield* receiver(hookPort)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 8 })), (f) => Effect.promise(() => f.close()))
      const service = yield* spawnService({
        DATABASE_URL: postgresUrl, PORT: String(freePort()), HOST: "127.0.0.1", EXCHANGES: "binance-futures",
        BINANCE_FUTURES_SYMBOLS: symbols.join(","), BINANCE_FUTURES_WS_URL: fake.wsUrl, BINANCE_FUTURES_REST_URL: fake.httpUrl,
        // Rows linger in the writer's queues for up to a second: the stop finds some there, to be stored, staged and sent.
        LARGE_TRADE_THRESHOLD_DEFAULT: "1", WRITER_FLUSH_MS: "1000", WRITER_BATCH_SIZE: "100000",
        AMQP_URL: brokerUrl, PUBLISH_EXCHANGE: exchange,
        ALERT_RULES: rulesFile(hookPort)
      })
      yield* eventually("messages and POSTs flowing", Effect.sync(() =>
        broker.received.byId.size >= 30 && hook.received.length >= 10 ? true : undefined), 60_000)
      service.child.kill("SIGTERM")
      const exit = yield* exited(service.child)
      const log = service.output.join("")
      assert.deepStrictEqual(exit, { code: 130, signal: null }, log.slice(-2000))
      assert.isFalse(fake.finished("futures"), "stopped mid-stream")
      assert.include(log, "publisher stopped; 0 messages stay in the outbox for the next start")
      assert.include(log, "alert delivery stopped; 0 webhook deliveries stay pending for the next start")
      assert.strictEqual(yield* count("outbox"), 0)
      assert.strictEqual(yield* count("alert_deliveries"), 0)
      // Confirmed before the exit, so already at the consumer (give its socket a moment).
      const stored = yield* storedMessageIds
      yield* eventually("every stored row's message at the consumer", Effect.sync(() =>
        [...stored.rows, ...stored.gaps].every((id) => broker.received.byId.has(id)) ? true : undefined), 10_000)
      const receivedRows = [...broker.received.byId.keys()].filter((id) => !/:(open|repairing|verified|partial|unrecoverable):/.test(id))
      assert.sameMembers(receivedRows, [...stored.rows])
      assert.sameMembers([...new Set(hook.received.map((r) => r.id))], yield* ids("SELECT id FROM alerts"))
      console.log(`SIGTERM with the broker up: ${stored.rows.size} rows stored, every one published before the exit ` +
        `(${broker.received.deliveries - broker.received.byId.size} duplicates), ${hook.received.length} POSTs`)
    })), { timeout: 120_000 })

  it.live("messages older than OUTBOX_MAX_AGE_HOURS are deleted and counted, the younger ones kept", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withDatabase(truncateAll)
      // 0.002 h = 7.2 s. The broker is a closed port: nothing is ever published.
      const closed = yield* Effect.acquireRelease(Effect.promise(() => TcpProxy.start(brokerPort, brokerHost)), (p) => Effect.promise(() => p.close()))
      yield* Effect.promise(() => closed.cut())
      const port = freePort()
      yield* startService({
        DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "none", AMQP_URL: brokerUrlVia(closed.port),
        OUTBOX_MAX_AGE_HOURS: "0.002", OUTBOX_SWEEP_SECONDS: "0.25", PUBLISH_STATS_MS: "100"
      })
      const stage = (prefix: string, n: number) =>
        query(`INSERT INTO outbox (id, kind, routing_key, body, created_at)
          SELECT '${prefix}-' || i, 'large_trade', 'large_trade.test.X', '{}', NOW() FROM generate_series(1, ${n}) AS i`)
      yield* stage("old", 5)
      yield* Effect.sleep("4 seconds")
      yield* stage("young", 3)
      const base = `http://127.0.0.1:${port}`
      const broker = yield* eventually("the old messages aged out", Effect.map(getJson(`${base}/health`), ({ body }) =>
        body.broker.aged_out >= 5 ? body.broker : undefined), 20_000)
      assert.strictEqual(broker.aged_out, 5)
      assert.sameMembers(yield* ids("SELECT id FROM outbox"), ["young-1", "young-2", "young-3"], "the younger messages stay")
      const metrics = yield* Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
      assert.match(metrics, /publish_messages_total\{[^}]*outcome="aged_out"[^}]*\} 5\b/)
      const later = yield* eventually("the young ones aged out in turn", Effect.map(getJson(`${base}/health`), ({ body }) =>
        body.broker.aged_out >= 8 ? body.broker : undefined), 20_000)
      assert.strictEqual(later.aged_out, 8)
      assert.strictEqual(later.outbox, 0)
      assert.strictEqual(yield* count("outbox"), 0)
    })), { timeout: 60_000 })
})
