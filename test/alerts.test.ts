/**
 * Alerts in the running service, fed by the fake Binance USD-M replaying its
 * recording: rules fire on the live records and on the feeds' state; each
 * firing is stored (GET /alerts), published (`alert.<rule>.<symbol>`) and
 * POSTed to a webhook that is down at first and gets every alert, signed,
 * once it is back; the cooldown turns a storm into one alert per key; a
 * webhook that never answers slows nothing; a bad rules file stops start-up.
 */
import { spawnSync } from "node:child_process"
import { createHmac, randomUUID } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { NodeHttpClient } from "@effect/platform-node"
import { ConfigProvider, Context, Effect, Layer, Metric } from "effect"
import { AlertDelivery } from "../src/alerts/delivery.ts"
import { CrossCheck } from "../src/alerts/cross-venue.ts"
import { AlertEngine } from "../src/alerts/engine.ts"
import type { Alert } from "../src/alerts/delivery.ts"
import { RowBatch } from "../src/domain/rows.ts"
import { FeedRegistry } from "../src/feed/status.ts"
import { GapLedger } from "../src/gaps/ledger.ts"
import { postgresLayer } from "../src/storage/database.ts"
import { brokerUrl, consumer } from "./support/broker.ts"
import { FakeBinance } from "./fake/binance.ts"
import { eventually, freePort, getData, getJson, postgresUrl, startService, truncateAll } from "./support/service.ts"

const futures = ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
const secret = "test-hmac-key"
const clean = truncateAll.pipe(Effect.provide(postgresLayer(postgresUrl)), Effect.scoped)

interface Received {
  readonly headers: IncomingMessage["headers"]
  readonly body: string
}

/** A webhook receiver on `port`: answers 204 (or never, with `hang`), keeps what it got. */
const receiver = (port: number, options: { readonly hang?: boolean } = {}) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ server: Server; received: Array<Received> }>((resolve) => {
        const received: Array<Received> = []
        const server = createServer((req: IncomingMessage, res: ServerResponse) => {
          let body = ""
          req.on("data", (chunk) => (body += chunk))
          req.on("end", () => {
            received.push({ headers: req.headers, body })
            if (options.hang !== true) res.writeHead(204).end()
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

const rulesFile = (yaml: string) => {
  const path = join(mkdtempSync(join(tmpdir(), "alert-rules-")), "rules.yaml")
  writeFileSync(path, yaml)
  return path
}

const serviceEnv = (fake: FakeBinance, port: number, rules: string, extra: Record<string, string> = {}) => ({
  DATABASE_URL: postgresUrl, PORT: String(port), HOST: "127.0.0.1", EXCHANGES: "binance-futures",
  BINANCE_FUTURES_SYMBOLS: futures.join(","), BINANCE_FUTURES_WS_URL: fake.wsUrl, BINANCE_FUTURES_REST_URL: fake.httpUrl,
  LARGE_TRADE_THRESHOLD_DEFAULT: "1", ALERT_RULES: rules, ALERT_CHECK_INTERVAL_MS: "200", ...extra
})

describe("alerts in the running service", () => {
  it.live("rules fire on live records and feed state; stored, published, and delivered signed to a webhook that was down", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const hookPort = freePort()
      const exchange = `md-alerts-${randomUUID().slice(0, 8)}`
      const broker = yield* consumer(exchange, ["alert.#", "gap.#"])
      const rules = rulesFile(`
webhooks:
  - name: hook
    url: http://127.0.0.1:${hookPort}/alerts
    secret_env: TEST_ALERT_SECRET
    timeout_ms: 1000
rules:
  - name: big
    kind: large_trade
    min_value_usd: 1
    cooldown_seconds: 3600
  - name: cascade
    kind: liquidation_cluster
    min_value_usd: 1
    window_seconds: 60
    group_by: symbol
    webhooks: []
  - name: carry
    kind: funding
    max_abs_annualized_percent: 10
    webhooks: []
  - name: calm-carry
    kind: funding
    max_abs_annualized_percent: 11
  - name: silent
    kind: stale_feed
    seconds: 2
    webhooks: []
`)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService(serviceEnv(fake, port, rules, {
        TEST_ALERT_SECRET: secret, ALERT_WEBHOOK_RETRY_MAX_SECONDS: "1",
        AMQP_URL: brokerUrl, PUBLISH_EXCHANGE: exchange
      }))
      const base = `http://127.0.0.1:${port}`
      // Once SUSHIUSDT trades reach us, one is lost in transit: a gap in the ledger, published as gap.*.
      yield* eventually("SUSHIUSDT trades flowing", Effect.sync(() => fake.sent.some((f) => f.stream === "sushiusdt@aggTrade") ? true : undefined))
      fake.loseNext("sushiusdt@aggTrade", 1)

      // The webhook is down: alerts wait for it while they are stored.
      const failing = yield* eventually("the webhook failing in /health", Effect.map(getJson(`${base}/health`), ({ body }) => {
        const hook = body.alerts.webhooks[0]
        return hook.state === "failing" && hook.retries > 0 ? body.alerts : undefined
      }), 30_000)
      assert.isAbove(failing.webhooks[0].pending, 0)
      assert.match(failing.webhooks[0].last_error, /ECONNREFUSED|refused|connect/i)
      assert.strictEqual(failing.webhooks[0].target, `http://127.0.0.1:${hookPort}`)

      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 60_000)
      // Then the venue goes quiet: the stale-feed rule fires.
      fake.pause()
      const stored = yield* eventually("the stale feed alert", Effect.map(getJson(`${base}/api/v1/exchange/alerts?hours=1&limit=1000`), ({ body }) =>
        body.data.alerts.some((a: any) => a.rule === "silent") ? body.data : undefined), 30_000)
      fake.resume()

      const byRule = (rule: string) => stored.alerts.filter((a: any) => a.rule === rule)
      // The cooldown: one alert per instrument, however many large trades it printed.
      const big = byRule("big")
      assert.isAtLeast(big.length, 1)
      assert.strictEqual(new Set(big.map((a: any) => a.symbol)).size, big.length, "one per symbol within the cooldown")
      const health = (yield* getJson(`${base}/health`)).body.alerts
      const bigState = health.rules.find((r: any) => r.name === "big")
      assert.strictEqual(bigState.firings, big.length)
      const trades = (yield* getData(`${base}/api/v1/exchange/large-trades?hours=1&limit=1`))
      assert.strictEqual(bigState.firings + bigState.suppressed, trades.count - trades.summary.liquidation_count, "every trade met the rule once")
      assert.isAbove(bigState.suppressed, 50, "the storm was held back by the cooldown")
      assert.isNotNull(bigState.last_fired_at)
      assert.match(bigState.last_message, /binance-futures [A-Z]+USDT: /)
      assert.isAtLeast(byRule("cascade").length, 1, "the synthesized liquidations cluster")
      assert.isAtLeast(byRule("carry").length, 1, "0.01 % per 8 h is 10.95 % a year, beyond 10 %")
      assert.strictEqual(byRule("calm-carry").length, 0, "...but not beyond 11 %")
      assert.strictEqual(health.rules.find((r: any) => r.name === "calm-carry").firings, 0)
      const silent = byRule("silent")[0]
      assert.deepInclude(silent, { rule_kind: "stale_feed", exchange: "binance-futures" })
      assert.strictEqual(stored.count, stored.alerts.length)
      assert.deepStrictEqual(stored.summary.by_rule.big, big.length)

      // The webhook comes back and gets every alert of its rules, signed.
      const hook = yield* receiver(hookPort)
      const expected = new Set<string>([...big, ...byRule("calm-carry")].map((a: any) => a.id))
      yield* eventually("every alert delivered to the webhook", Effect.sync(() => {
        const ids = new Set(hook.received.map((r) => JSON.parse(r.body).id))
        return [...expected].every((id) => ids.has(id)) ? true : undefined
      }), 30_000)
      for (const request of hook.received) {
        assert.strictEqual(request.headers["x-signature-256"], `sha256=${createHmac("sha256", secret).update(request.body).digest("hex")}`)
        assert.strictEqual(request.headers["content-type"], "application/json")
        const body = JSON.parse(request.body)
        assert.deepInclude(body, { kind: "alert", schema_version: 1 })
        assert.strictEqual(request.headers["x-alert-id"], body.id)
        assert.include(["big", "calm-carry"], body.rule, "rules with webhooks: [] are not POSTed")
      }

      // Published: alerts (with the routing key alert.<rule>.<symbol>) and the gap.
      yield* eventually("alerts and the gap on the broker", Effect.sync(() =>
        [...broker.received.byId.values()].some((m: any) => m.kind === "gap" && m.channel === "trades") &&
          big.every((a: any) => broker.received.byId.has(a.id)) ? true : undefined), 30_000)
      const published = broker.received.byId.get(big[0].id)
      assert.deepInclude(published, { kind: "alert", schema_version: 1, rule: "big", rule_kind: "large_trade", symbol: big[0].symbol })
      assert.isTrue(broker.received.keys.has(`alert.big.${big[0].symbol}`))
      const gapMessages = [...broker.received.byId.values()].filter((m: any) => m.kind === "gap" && m.channel === "trades" && m.symbol === "SUSHIUSDT")
      assert.isAtLeast(gapMessages.length, 1, "the lost trade's gap")
      assert.deepInclude(gapMessages[0], { exchange: "binance-futures", cause: "sequence_gap" })

      const metrics = yield* Effect.promise(() => fetch(`${base}/metrics`).then((r) => r.text()))
      assert.match(metrics, /alert_firings_total\{[^}]*outcome="fired"[^}]*rule="big"[^}]*\} [1-9]|alert_firings_total\{[^}]*rule="big"[^}]*outcome="fired"[^}]*\} [1-9]/)
      assert.match(metrics, /alert_firings_total\{[^}]*suppressed[^}]*\} [1-9]/)
      assert.match(metrics, /alert_deliveries_total\{[^}]*webhook:hook[^}]*\} [1-9]/)
      assert.match(metrics, /alert_deliveries_total\{[^}]*target="store"[^}]*\} [1-9]|alert_deliveries_total\{[^}]*outcome="delivered"[^}]*target="store"[^}]*\} [1-9]/)
      console.log(`alerts: ${stored.count} stored (${Object.entries(stored.summary.by_rule).map(([r, n]) => `${r} ${n}`).join(", ")}), ${bigState.suppressed} suppressed by the cooldown, ${hook.received.length} webhook deliveries after it came back`)
    })), { timeout: 180_000 })

  it.live("a webhook that never answers slows neither the pipeline nor the other sinks", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* clean
      const hookPort = freePort()
      const hook = yield* receiver(hookPort, { hang: true })
      const rules = rulesFile(`
webhooks:
  - name: stuck
    url: http://127.0.0.1:${hookPort}/
    timeout_ms: 60000
    max_pending: 50
rules:
  - name: every-trade
    kind: large_trade
    min_value_usd: 1
    cooldown_seconds: 0
`)
      const fake = yield* Effect.acquireRelease(Effect.promise(() => FakeBinance.start({ frameIntervalMs: 5 })), (f) => Effect.promise(() => f.close()))
      const port = freePort()
      yield* startService(serviceEnv(fake, port, rules))
      const base = `http://127.0.0.1:${port}`
      yield* eventually("the recording played out", Effect.sync(() => (fake.finished("futures") ? true : undefined)), 60_000)
      // Everything is stored, alerts included, within moments of the recording's end, while the webhook holds its first request.
      const settled = yield* eventually("trades and alerts stored", Effect.gen(function*() {
        const trades = (yield* getData(`${base}/api/v1/exchange/large-trades?hours=1&limit=1&only_liquidations=false`))
        const alerts = (yield* getData(`${base}/api/v1/exchange/alerts?hours=1&limit=1`))
        const health = (yield* getJson(`${base}/health`)).body
        const nonLiquidations = trades.count - trades.summary.liquidation_count
        return alerts.count > 0 && alerts.count === nonLiquidations && health.alerts.rules[0].firings === alerts.count ? { trades, alerts, health } : undefined
      }), 15_000)
      const stuck = settled.health.alerts.webhooks[0]
      assert.strictEqual(stuck.delivered, 0)
      assert.strictEqual(hook.received.length, 1, "one request in flight, never answered")
      assert.strictEqual(stuck.pending, 50, "the backlog is bounded")
      assert.strictEqual(stuck.dropped, settled.alerts.count - 50, "what did not fit was dropped and counted")
      assert.strictEqual(settled.health.alerts.queued, 0, "the engine keeps up")
      assert.strictEqual(settled.health.alerts.dropped_batches, 0)
      assert.isTrue(Object.values(settled.health.queues).every((q: any) => q.queued === 0), "the writer is not held up")
      console.log(`stuck webhook: ${settled.alerts.count} alerts stored and ${settled.trades.count} trades, ${stuck.pending} waiting, ${stuck.dropped} dropped`)
    })), { timeout: 120_000 })

  it("a bad rules file stops start-up with a message naming the rule and the field", () => {
    const rules = rulesFile(`
rules:
  - name: whale
    kind: large_trade
    min_value_usd: "a lot"
`)
    // The node running the suite, as the other tests that start the service as a process do.
    const run = spawnSync(process.execPath, ["src/main.ts"], {
      cwd: new URL("..", import.meta.url).pathname,
      env: { PATH: process.env.PATH, DATABASE_URL: postgresUrl, EXCHANGES: "none", PORT: String(freePort()), ALERT_RULES: rules },
      encoding: "utf8",
      timeout: 60_000
    })
    const output = `${run.stdout}${run.stderr}`
    assert.notStrictEqual(run.status, 0, output)
    assert.include(output, rules)
    assert.match(output, /rule "whale" \(rules\[0\]\): min_value_usd: Expected number/)
    assert.notInclude(output, "Listening on", "the API never started")
  }, 70_000)

  it.live("a batch the engine cannot queue is counted in the service's own metrics, by the engine's fiber", () => {
    // The engine alone, its queue one batch deep, in a context with its own metric registry: a drop counted
    // by a fiber that escaped the engine's context would land in another registry.
    const registry = new Map()
    return Effect.gen(function*() {
      yield* clean
      const rules = rulesFile(`
rules:
  - name: never
    kind: large_trade
    min_value_usd: 1000000000000
`)
      const env = { ALERT_RULES: rules, ALERT_QUEUE_CAPACITY: "1", ALERT_CHECK_INTERVAL_MS: "60000" }
      const context = yield* Layer.build(AlertEngine.layer.pipe(
        Layer.provide([AlertDelivery.layer, FeedRegistry.layer, GapLedger.layer]),
        Layer.provide([postgresLayer(postgresUrl), NodeHttpClient.layerUndici]),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
      ))
      const engine = Context.get(context, AlertEngine)
      const batch = new RowBatch()
      batch.large_trades.push({
        id: "binance_BTCUSDT_1", exchange: "binance", symbol: "BTCUSDT", side: "buy", price: 60_000, size: 1, sizeBase: null, sizeUnit: null, valueUsd: 60_000,
        timestamp: Date.parse("2026-03-02T12:00:00Z"), tradeId: "1", isLiquidation: false, metadata: {}
      })
      // Five batches before the engine's fiber can take one: the first is queued, four are dropped.
      yield* Effect.sync(() => {
        for (let i = 0; i < 5; i++) engine.offer(batch, () => undefined)
      })
      assert.strictEqual(engine.state().dropped_batches, 4)
      const counted = yield* eventually("the drops in the metrics", Effect.map(Metric.snapshot, (snapshots) => {
        const dropped = snapshots.find((m) => m.id === "alert_batches_dropped_total")
        return dropped === undefined ? undefined : (dropped.state as Metric.CounterState<number>).count
      }), 10_000)
      assert.strictEqual(counted, 4)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, registry))
  })
  it.live("cross_venue_outlier: the engine fires on the cross-venue check's findings, then its cooldown holds the next sample's", () => {
    const registry = new Map()
    return Effect.gen(function*() {
      yield* clean
      const rules = rulesFile(`
rules:
  - name: units
    kind: cross_venue_outlier
    fields: [open_interest]
    cooldown_seconds: 3600
`)
      const env = { ALERT_RULES: rules, ALERT_CHECK_INTERVAL_MS: "50", CROSS_CHECK_SECONDS: "0.1" }
      const context = yield* Layer.build(AlertEngine.layer.pipe(
        Layer.provideMerge(CrossCheck.layer),
        Layer.provide([AlertDelivery.layer, FeedRegistry.layer, GapLedger.layer]),
        Layer.provide([postgresLayer(postgresUrl), NodeHttpClient.layerUndici]),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))
      ))
      const engine = Context.get(context, AlertEngine)
      const check = Context.get(context, CrossCheck)
      const fired: Array<Alert> = []
      engine.watch((alert) => void fired.push(alert))
      const lookup = () => ({ base: "BTC", quote: "USDT", kind: "perpetual" as const })
      const readings = (at: number, doubled: boolean) => {
        const batch = new RowBatch()
        for (const [exchange, n] of [["venue-a", 1000], ["venue-b", 500], ["venue-c", 100]] as const) {
          const contracts = exchange === "venue-c" && doubled ? 2 * n : n
          batch.open_interest.push({
            id: `${exchange}_BTC-PERP_${at}`, exchange, symbol: "BTC-PERP", openInterest: contracts, openInterestBase: null, openInterestUsd: contracts * 60_000,
            timestamp: at, metadata: null
          })
        }
        return batch
      }
      const now = Date.now()
      check.offer(readings(now - 2000, false), lookup)
      check.offer(readings(now - 1000, true), lookup)
      const alert = yield* eventually("the outlier alert", Effect.sync(() => fired[0]), 10_000)
      assert.strictEqual(alert.kind, "cross_venue_outlier")
      assert.strictEqual(alert.key, "venue-c:BTC-PERP:open_interest")
      assert.strictEqual(alert.value, 2)
      // Every later sample finds it again (until venue-c's next reading): held by the cooldown, not fired.
      yield* eventually("a suppressed firing", Effect.sync(() => (engine.state().rules[0]!.suppressed > 0 ? true : undefined)), 10_000)
      assert.strictEqual(fired.length, 1)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, registry))
  })
})
