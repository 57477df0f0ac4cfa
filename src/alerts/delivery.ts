/**
 * Where a firing goes: the `alerts` table (the record), the broker
 * (`alert.<rule>.<symbol>`) and webhooks. Each has its own bounded backlog and
 * fiber, so a database outage, a broker away or a webhook that hangs delays
 * only its own deliveries: never the pipeline, never the other sinks.
 */
import { createHmac } from "node:crypto"
import { Clock, Duration, Effect, Metric, Queue, Random } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { SqlClient } from "effect/sql"
import { transportCause } from "../domain/transport.ts"
import { word } from "../publish/publisher.ts"
import type { PublishedEvent } from "../publish/publisher.ts"
import type { Firing } from "./evaluate.ts"
import type { Webhook } from "./rules.ts"

/** A firing that passed its cooldown. */
export interface Alert extends Firing {
  readonly firedAt: number
}

/** The API's and the messages' shape of an alert. */
export const alertJson = (alert: Alert) => ({
  id: alert.id,
  rule: alert.rule,
  rule_kind: alert.kind,
  exchange: alert.exchange,
  symbol: alert.symbol,
  value: alert.value,
  threshold: alert.threshold,
  message: alert.message,
  event_time: new Date(alert.eventTime).toISOString(),
  fired_at: new Date(alert.firedAt).toISOString(),
  details: alert.details
})

export const alertEvent = (alert: Alert): PublishedEvent => ({
  kind: "alert",
  routingKey: `alert.${word(alert.rule)}.${word(alert.symbol)}`,
  id: alert.id,
  row: alertJson(alert)
})

export const deliveries = Metric.counter("alert_deliveries_total", {
  description: "Alert deliveries per rule, target (store, broker, webhook:<name>) and outcome (delivered, retried, dropped, given_up)",
  incremental: true
})

export const countDelivery = (rule: string, target: string, outcome: string, n = 1) =>
  Metric.update(Metric.withAttributes(deliveries, { rule, target, outcome }), n)

// ---------------------------------------------------------------------------
// The alerts table
// ---------------------------------------------------------------------------

const insertAlert = (alert: Alert) =>
  SqlClient.SqlClient.use((sql) =>
    sql`INSERT INTO alerts (id, rule, kind, exchange, symbol, value, threshold, message, event_time, fired_at, details)
      VALUES (${alert.id}, ${alert.rule}, ${alert.kind}, ${alert.exchange}, ${alert.symbol}, ${String(alert.value)}::double precision,
        ${String(alert.threshold)}::double precision, ${alert.message},
        (${new Date(alert.eventTime).toISOString()}::timestamptz AT TIME ZONE 'UTC'),
        (${new Date(alert.firedAt).toISOString()}::timestamptz AT TIME ZONE 'UTC'), ${JSON.stringify(alert.details)}::jsonb)
      ON CONFLICT (id) DO NOTHING`
  )

/** Stores alerts in order, holding them through a database outage (bounded: beyond `capacity` they are dropped and counted). */
export const makeAlertStore = (capacity: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const pending = yield* Queue.dropping<Alert>(capacity)
    yield* Effect.forkScoped(Effect.gen(function*() {
      while (true) {
        const alert = yield* Queue.take(pending)
        let attempt = 0
        while (true) {
          const result = yield* Effect.result(insertAlert(alert).pipe(Effect.provideService(SqlClient.SqlClient, sql)))
          if (result._tag === "Success") break
          yield* countDelivery(alert.rule, "store", "retried")
          if (attempt === 0) yield* Effect.logWarning("cannot store an alert; retrying").pipe(Effect.annotateLogs({ rule: alert.rule, error: String(result.failure) }))
          yield* Effect.sleep(Duration.millis(Math.min(5_000, 250 * 2 ** Math.min(attempt++, 10))))
        }
        yield* countDelivery(alert.rule, "store", "delivered")
      }
    }))
    return {
      offer: (alert: Alert): Effect.Effect<void> =>
        Queue.offerUnsafe(pending, alert) ? Effect.void : countDelivery(alert.rule, "store", "dropped"),
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

/**
 * One webhook: a bounded backlog (oldest dropped when full) and one fiber that
 * POSTs alerts in order, retrying each with capped, jittered backoff until it
 * is delivered or `give_up_after_seconds` have passed.
 */
export const makeWebhook = (webhook: Webhook & { readonly secret: string | undefined }, options: { readonly retryMaxMs: number; readonly userAgent: string }) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const maxPending = webhook.max_pending ?? 1000
    const timeoutMs = webhook.timeout_ms ?? 5000
    const giveUpMs = (webhook.give_up_after_seconds ?? 86_400) * 1000
    const backlog: Array<{ alert: Alert; body: string; since: number }> = []
    const counts = { delivered: 0, retries: 0, dropped: 0, given_up: 0 }
    let state: WebhookState["state"] = "idle"
    let lastError: string | null = null
    let lastDeliveredAt: number | null = null
    let wake: (() => void) | undefined
    const target = (() => {
      try {
        return new URL(webhook.url).origin
      } catch {
        return "(invalid url)"
      }
    })()

    const attempt = (body: string, alert: Alert) => {
      let request = HttpClientRequest.post(webhook.url).pipe(
        HttpClientRequest.setHeaders({ "user-agent": options.userAgent, "x-alert-id": alert.id, "x-alert-rule": alert.rule }),
        HttpClientRequest.bodyText(body, "application/json")
      )
      if (webhook.secret !== undefined) request = HttpClientRequest.setHeader(request, "x-signature-256", signature(webhook.secret, body))
      return client.execute(request).pipe(
        Effect.flatMap((response) => response.status >= 200 && response.status < 300 ? Effect.void : Effect.fail(`HTTP ${response.status}`)),
        Effect.timeoutOrElse({ duration: Duration.millis(timeoutMs), orElse: () => Effect.fail(`no answer within ${timeoutMs} ms`) }),
        // What went wrong, without the URL: a webhook's path is often its secret.
        Effect.mapError((error) => typeof error === "string" ? error : transportCause((error as { reason?: unknown }).reason ?? error) ?? "transport error"),
        Effect.scoped
      )
    }

    yield* Effect.forkScoped(Effect.gen(function*() {
      let failures = 0
      while (true) {
        const next = backlog[0]
        if (next === undefined) {
          state = "idle"
          yield* Effect.promise(() => new Promise<void>((resolve) => (wake = resolve)))
          wake = undefined
          continue
        }
        if (state === "idle") state = "delivering"
        const result = yield* Effect.result(attempt(next.body, next.alert))
        const now = yield* Clock.currentTimeMillis
        if (result._tag === "Success") {
          backlog.shift()
          counts.delivered++
          failures = 0
          lastDeliveredAt = now
          state = "delivering"
          yield* countDelivery(next.alert.rule, `webhook:${webhook.name}`, "delivered")
          continue
        }
        lastError = result.failure
        state = "failing"
        if (now - next.since >= giveUpMs) {
          backlog.shift()
          counts.given_up++
          yield* countDelivery(next.alert.rule, `webhook:${webhook.name}`, "given_up")
          yield* Effect.logError("webhook gave up on an alert").pipe(Effect.annotateLogs({ webhook: webhook.name, alert: next.alert.id, error: lastError }))
          continue
        }
        counts.retries++
        yield* countDelivery(next.alert.rule, `webhook:${webhook.name}`, "retried")
        if (failures === 0) yield* Effect.logWarning("webhook failed; retrying with backoff").pipe(Effect.annotateLogs({ webhook: webhook.name, target, error: lastError }))
        const ceiling = Math.min(options.retryMaxMs, 500 * 2 ** Math.min(failures++, 16))
        yield* Effect.sleep(Duration.millis(ceiling / 2 + (ceiling / 2) * (yield* Random.next)))
      }
    }))

    return {
      name: webhook.name,
      offer: (alert: Alert): Effect.Effect<void> =>
        Effect.gen(function*() {
          backlog.push({ alert, body: JSON.stringify({ kind: "alert", schema_version: 1, ...alertJson(alert) }), since: yield* Clock.currentTimeMillis })
          wake?.()
          // Never hold more than the bound: the oldest waiting alert (not the one in flight) goes.
          if (backlog.length > maxPending) {
            const [dropped] = backlog.splice(1, 1)
            counts.dropped++
            yield* countDelivery(dropped!.alert.rule, `webhook:${webhook.name}`, "dropped")
          }
        }),
      state: (): WebhookState => ({
        name: webhook.name,
        target,
        state,
        pending: backlog.length,
        ...counts,
        last_error: lastError,
        last_delivered_at: lastDeliveredAt === null ? null : new Date(lastDeliveredAt).toISOString()
      })
    }
  })
