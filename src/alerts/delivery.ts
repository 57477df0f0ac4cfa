/**
 * Where a firing goes, durably: one transaction stores the alert row
 * (`alerts`), its broker message (the outbox, `alert.<rule>.<symbol>`) and one
 * pending POST per webhook it names (`alert_deliveries`). The publisher sends
 * the message; one fiber per webhook POSTs its pending rows in order and
 * deletes each only on a 2xx, or once it is older than
 * `give_up_after_seconds` (counted and logged). A crash, a SIGTERM or a
 * webhook away loses nothing stored: the next start goes on from the table.
 *
 * The only memory in the way is the store's queue (alerts fired but not yet
 * committed, bounded); on shutdown it is drained before the writer's.
 */
import { createHmac } from "node:crypto"
import { type Cause, Clock, Config, Context, Duration, Effect, Fiber, Layer, Metric, Option, Queue, Result, Schedule, Stream } from "effect"
import { PgTypes } from "@effect/sql-pg"
import { HttpClient, HttpClientRequest } from "effect/http"
import { SqlClient, type SqlError } from "effect/sql"
import { alertJson, alertMessage } from "../domain/messages.ts"
import { transportCause } from "../domain/transport.ts"
import { userAgentConfig } from "../rest/gate.ts"
import { Outbox } from "../storage/outbox.ts"
import type { Firing } from "./evaluate.ts"
import { AlertRulesError, decodeRulesOf, readRulesDocument, type RulesFile, secretNames, type Webhook } from "./rules.ts"

export { alertJson }

/** A firing that passed its cooldown. */
export interface Alert extends Firing {
  readonly firedAt: number
}

export const deliveries = Metric.counter("alert_deliveries_total", {
  description: "Alert deliveries per rule, target (store, webhook:<name>) and outcome (delivered, retried, dropped, given_up)",
  incremental: true
})

export const countDelivery = (rule: string, target: string, outcome: string, n = 1) =>
  Metric.update(Metric.withAttributes(deliveries, { rule, target, outcome }), n)

export const deliveryConfig = Config.all({
  file: Config.String("ALERT_RULES").pipe(Config.option),
  webhookRetryMaxSeconds: Config.Number("ALERT_WEBHOOK_RETRY_MAX_SECONDS").pipe(Config.withDefault(60)),
  /** How often an idle webhook looks for new pending rows (one indexed query each time). */
  pollMs: Config.Int("ALERT_WEBHOOK_POLL_MS").pipe(Config.withDefault(500)),
  /** How long shutdown gives the store and the webhooks to finish. */
  drainTimeoutMs: Config.Int("ALERT_DRAIN_TIMEOUT_MS").pipe(Config.withDefault(5_000))
})

/** Capped, jittered exponential backoff: 500 ms doubling up to `maxMs`. */
const backoff = (maxMs: number) =>
  Schedule.min([Schedule.exponential(Duration.millis(500)), Schedule.spaced(Duration.millis(maxMs))]).pipe(Schedule.jittered)

/**
 * Reads the rules file named by ALERT_RULES, its webhook secrets through
 * Config (like every other setting); a bad file fails start-up with a message
 * naming the rule and the field.
 */
const loadRules = (file: string) =>
  Effect.gen(function*() {
    const document = yield* Effect.try({ try: () => readRulesDocument(file), catch: asRulesError(file) })
    const env: Record<string, string | undefined> = {}
    for (const name of secretNames(document)) {
      env[name] = yield* Config.String(name).pipe(Config.option, Effect.map(Option.getOrUndefined), Effect.orElseSucceed(() => undefined))
    }
    return yield* Effect.try({ try: () => decodeRulesOf(file, document, env), catch: asRulesError(file) })
  })

const asRulesError = (file: string) => (error: unknown) =>
  error instanceof AlertRulesError ? error : new AlertRulesError({ message: `${file}: ${String(error)}` })

// ---------------------------------------------------------------------------
// Storing an alert with everything that must leave for it
// ---------------------------------------------------------------------------

const insertAlert = (sql: SqlClient.SqlClient, alert: Alert) =>
  sql`INSERT INTO alerts (id, rule, kind, exchange, symbol, value, threshold, message, event_time, fired_at, details)
    VALUES (${alert.id}, ${alert.rule}, ${alert.kind}, ${alert.exchange}, ${alert.symbol}, ${String(alert.value)}::double precision,
      ${String(alert.threshold)}::double precision, ${alert.message},
      (${new Date(alert.eventTime).toISOString()}::timestamptz AT TIME ZONE 'UTC'),
      (${new Date(alert.firedAt).toISOString()}::timestamptz AT TIME ZONE 'UTC'), ${JSON.stringify(alert.details)}::jsonb)
    ON CONFLICT (id) DO NOTHING`

/**
 * Holds fired alerts in order until they are committed, through a database
 * outage (bounded: beyond `capacity` they are dropped and counted). Shutdown
 * gives what is queued `drainTimeoutMs` to be stored, and logs what was not.
 */
export const makeAlertStore = (capacity: number, delivery: AlertDelivery["Service"]) =>
  Effect.gen(function*() {
    const { drainTimeoutMs } = yield* deliveryConfig
    const pending = yield* Queue.dropping<{ alert: Alert; webhooks: ReadonlyArray<string> }, Cause.Done>(capacity)
    const store = ({ alert, webhooks }: { alert: Alert; webhooks: ReadonlyArray<string> }) =>
      delivery.record(alert, webhooks).pipe(
        Effect.tapError((error) =>
          Effect.andThen(
            countDelivery(alert.rule, "store", "retried"),
            Effect.logWarning("cannot store an alert; retrying").pipe(Effect.annotateLogs({ rule: alert.rule, error: String(error) }))
          )
        ),
        Effect.retry(backoff(5_000)),
        Effect.andThen(countDelivery(alert.rule, "store", "delivered"))
      )
    const fiber = yield* Effect.forkScoped(Stream.fromQueue(pending).pipe(Stream.runForEach(store)))
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Queue.end(pending)
        const left = yield* Fiber.await(fiber).pipe(
          Effect.timeout(Duration.millis(drainTimeoutMs)),
          Effect.as(0),
          Effect.catchCause(() => Effect.succeed(Queue.sizeUnsafe(pending) + 1))
        )
        if (left > 0) yield* Effect.logWarning(`alert store stopped with ${left} fired alert(s) not stored`)
      })
    )
    return {
      offer: (alert: Alert, webhooks: ReadonlyArray<string>): Effect.Effect<void> =>
        Queue.offerUnsafe(pending, { alert, webhooks }) ? Effect.void : countDelivery(alert.rule, "store", "dropped"),
      pending: () => Queue.sizeUnsafe(pending)
    }
  })

// ---------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------

export interface WebhookState {
  readonly name: string
  /** Scheme and host only: a webhook's path often is its secret. */
  readonly target: string
  readonly state: "idle" | "delivering" | "failing"
  readonly pending: number
  readonly delivered: number
  readonly retries: number
  readonly dropped: number
  readonly given_up: number
  readonly last_error: string | null
  readonly last_delivered_at: string | null
}

/** `sha256=<hex>` of the body under the webhook's key, as GitHub-style receivers check it. */
export const signature = (secret: string, body: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`

interface PendingRow {
  readonly position: string
  readonly alert_id: string
  readonly rule: string
  readonly body: string
  readonly created_at: Date
}

/**
 * One webhook: a fiber that POSTs its pending rows in position order, each
 * retried with capped, jittered backoff until a 2xx or `give_up_after_seconds`
 * after it was stored. Idle, it looks for new rows every `pollMs`: the table,
 * not a signal in memory, is what survives a restart, and one indexed query
 * per interval costs nothing measurable.
 */
const makeWebhook = (
  webhook: Webhook & { readonly secret: string | undefined },
  options: { readonly retryMaxMs: number; readonly userAgent: string; readonly pollMs: number }
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const client = yield* HttpClient.HttpClient
    const timeoutMs = webhook.timeout_ms ?? 5000
    const giveUpMs = (webhook.give_up_after_seconds ?? 86_400) * 1000
    const counts = { delivered: 0, retries: 0, dropped: 0, given_up: 0 }
    let pending = 0
    let state: WebhookState["state"] = "idle"
    let lastError: string | null = null
    let lastDeliveredAt: number | null = null
    const target = URL.canParse(webhook.url) ? new URL(webhook.url).origin : "(invalid url)"
    const metricTarget = `webhook:${webhook.name}`

    const post = (row: PendingRow) => {
      let request = HttpClientRequest.post(webhook.url).pipe(
        HttpClientRequest.setHeaders({ "user-agent": options.userAgent, "x-alert-id": row.alert_id, "x-alert-rule": row.rule }),
        HttpClientRequest.bodyText(row.body, "application/json")
      )
      if (webhook.secret !== undefined) request = HttpClientRequest.setHeader(request, "x-signature-256", signature(webhook.secret, row.body))
      return client.execute(request).pipe(
        Effect.flatMap((response) => response.status >= 200 && response.status < 300 ? Effect.void : Effect.fail(`HTTP ${response.status}`)),
        Effect.timeoutOrElse({ duration: Duration.millis(timeoutMs), orElse: () => Effect.fail(`no answer within ${timeoutMs} ms`) }),
        // What went wrong, without the URL: a webhook's path is often its secret.
        Effect.mapError((error) => typeof error === "string" ? error : transportCause((error as { reason?: unknown }).reason ?? error) ?? "transport error"),
        Effect.scoped
      )
    }

    /** POSTs one row until it is delivered or given up; either way it leaves the table. */
    const deliver = (row: PendingRow) =>
      Effect.gen(function*() {
        const giveUpAt = row.created_at.getTime() + giveUpMs
        let failures = 0
        const retrying = backoff(options.retryMaxMs).pipe(
          Schedule.setInputType<string>(),
          Schedule.while(({ now }) => now < giveUpAt),
          Schedule.tap(() =>
            Effect.gen(function*() {
              counts.retries++
              yield* countDelivery(row.rule, metricTarget, "retried")
              if (failures++ === 0) {
                yield* Effect.logWarning("webhook failed; retrying with backoff").pipe(Effect.annotateLogs({ webhook: webhook.name, target, error: lastError }))
              }
            })
          )
        )
        const result = yield* post(row).pipe(
          Effect.tapError((error) => Effect.sync(() => {
            lastError = error
            state = "failing"
          })),
          Effect.retry(retrying),
          Effect.result
        )
        yield* sql`DELETE FROM alert_deliveries WHERE position = ${row.position}::bigint`
        if (result._tag === "Success") {
          counts.delivered++
          lastDeliveredAt = yield* Clock.currentTimeMillis
          state = "delivering"
          return yield* countDelivery(row.rule, metricTarget, "delivered")
        }
        counts.given_up++
        yield* countDelivery(row.rule, metricTarget, "given_up")
        yield* Effect.logError("webhook gave up on an alert").pipe(Effect.annotateLogs({ webhook: webhook.name, alert: row.alert_id, error: result.failure }))
      })

    /** Delivers the oldest pending row, if any: true when there was one. */
    const deliverNext = Effect.gen(function*() {
      const [next] = yield* sql<PendingRow>`SELECT position::text AS position, alert_id, rule, body, created_at
        FROM alert_deliveries WHERE webhook = ${webhook.name} ORDER BY position LIMIT 1`
      const [{ n }] = (yield* sql<{ n: string }>`SELECT count(*)::text AS n FROM alert_deliveries WHERE webhook = ${webhook.name}`) as [{ n: string }]
      pending = Number(n)
      if (next === undefined) {
        state = "idle"
        return false
      }
      if (state === "idle") state = "delivering"
      yield* deliver(next)
      return true
    }).pipe(Effect.catchCause((cause) => Effect.as(Effect.logDebug("webhook cannot read its pending deliveries", cause), false)))

    yield* Effect.forkScoped(
      Effect.repeat(Effect.repeat(deliverNext, { while: (delivered) => delivered }), Schedule.spaced(Duration.millis(options.pollMs)))
    )

    return {
      name: webhook.name,
      maxPending: webhook.max_pending ?? 1000,
      /** Rows were stored or dropped for it: its backlog as counted in the committing transaction. */
      stored: (backlog: number, dropped: number) => {
        pending = backlog
        counts.dropped += dropped
      },
      busy: () => pending > 0 && state !== "failing",
      state: (): WebhookState => ({
        name: webhook.name,
        target,
        state,
        pending,
        ...counts,
        last_error: lastError,
        last_delivered_at: lastDeliveredAt === null ? null : new Date(lastDeliveredAt).toISOString()
      })
    }
  })

export class AlertDelivery extends Context.Service<AlertDelivery, {
  /** The rules file named by ALERT_RULES, loaded at start; undefined when alerting is off. */
  readonly rules: RulesFile | undefined
  /** Stores an alert, its broker message and one pending POST per named webhook, in one transaction. */
  readonly record: (alert: Alert, webhooks: ReadonlyArray<string>) => Effect.Effect<void, SqlError.SqlError>
  readonly webhooks: () => ReadonlyArray<WebhookState>
}>()("market-data/alerts/AlertDelivery") {
  /**
   * Built before the publisher and the writer, so it is released after them:
   * on shutdown the webhooks get their bounded time last, and what is left
   * stays in `alert_deliveries` for the next start.
   */
  static readonly layer = Layer.effect(AlertDelivery, Effect.gen(function*() {
    const config = yield* deliveryConfig
    if (Option.isNone(config.file)) {
      return AlertDelivery.of({ rules: undefined, record: () => Effect.void, webhooks: () => [] })
    }
    const rules = yield* loadRules(config.file.value)
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Effect.serviceOption(Outbox)
    const userAgent = yield* userAgentConfig
    const webhooks = new Map<string, Effect.Success<ReturnType<typeof makeWebhook>>>()
    for (const webhook of rules.webhooks) {
      webhooks.set(webhook.name, yield* makeWebhook(webhook, { retryMaxMs: config.webhookRetryMaxSeconds * 1000, userAgent, pollMs: config.pollMs }))
    }

    // Deliveries kept for webhooks no longer in the rules file would wait forever: drop them, counted and logged.
    const orphans = yield* sql<{ webhook: string; rule: string; n: string }>`WITH gone AS (
        DELETE FROM alert_deliveries WHERE NOT (webhook = ANY(${Result.getOrThrow(PgTypes.array([...webhooks.keys(), ""], PgTypes.OID.text))}))
        RETURNING webhook, rule)
      SELECT webhook, rule, count(*)::text AS n FROM gone GROUP BY webhook, rule`.pipe(Effect.orElseSucceed(() => []))
    for (const { webhook, rule, n } of orphans) {
      yield* countDelivery(rule, `webhook:${webhook}`, "dropped", Number(n))
      yield* Effect.logWarning(`dropped ${n} pending alert deliveries to webhook ${webhook}, which is no longer in ${config.file.value}`)
    }

    const pendingCount = sql<{ n: string }>`SELECT count(*)::text AS n FROM alert_deliveries`.pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0)))
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        // Webhooks that answer get their bounded time to empty their backlog; a failing one keeps its rows.
        yield* Effect.repeat(Effect.sync(() => [...webhooks.values()].some((w) => w.busy())), {
          while: (busy) => busy,
          schedule: Schedule.spaced(Duration.millis(50))
        }).pipe(Effect.timeout(Duration.millis(config.drainTimeoutMs)), Effect.ignore)
        const left = yield* Effect.result(pendingCount)
        yield* Effect.logInfo(
          `alert delivery stopped; ${left._tag === "Success" ? left.success : "an unknown number of"} webhook deliveries stay pending for the next start`
        )
      })
    )

    const record = (alert: Alert, names: ReadonlyArray<string>) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* insertAlert(sql, alert)
        if (Option.isSome(outbox)) yield* outbox.value.stageMessages([alertMessage(alert)])
        const targets = names.flatMap((name) => webhooks.get(name) ?? [])
        if (targets.length === 0) return []
        const now = new Date(yield* Clock.currentTimeMillis).toISOString()
        const body = alertMessage(alert).body
        for (const target of targets) {
          yield* sql`INSERT INTO alert_deliveries (alert_id, rule, webhook, body, created_at)
            VALUES (${alert.id}, ${alert.rule}, ${target.name}, ${body}, ${now}::timestamptz) ON CONFLICT DO NOTHING`
        }
        // The bound per webhook (max_pending, the one in flight included): the oldest waiting rows go, never the one
        // in flight (the oldest, which the webhook's fiber takes first).
        const outcome: Array<{ webhook: string; dropped: ReadonlyArray<string>; backlog: number }> = []
        for (const target of targets) {
          const gone = yield* sql<{ rule: string }>`DELETE FROM alert_deliveries WHERE position IN (
              SELECT position FROM alert_deliveries WHERE webhook = ${target.name} ORDER BY position DESC OFFSET ${target.maxPending - 1})
            AND position > (SELECT min(position) FROM alert_deliveries WHERE webhook = ${target.name}) RETURNING rule`
          const [{ n }] = (yield* sql<{ n: string }>`SELECT count(*)::text AS n FROM alert_deliveries WHERE webhook = ${target.name}`) as [{ n: string }]
          outcome.push({ webhook: target.name, dropped: gone.map((g) => g.rule), backlog: Number(n) })
        }
        return outcome
      })).pipe(
        Effect.provideService(SqlClient.SqlClient, sql),
        // Counted only once committed.
        Effect.tap((outcome) =>
          Effect.gen(function*() {
            for (const { webhook, dropped, backlog } of outcome) {
              webhooks.get(webhook)!.stored(backlog, dropped.length)
              for (const rule of dropped) yield* countDelivery(rule, `webhook:${webhook}`, "dropped")
            }
          })
        ),
        Effect.asVoid
      )

    return AlertDelivery.of({ rules, record, webhooks: () => [...webhooks.values()].map((w) => w.state()) })
  }))
}
