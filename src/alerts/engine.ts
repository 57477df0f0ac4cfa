/**
 * The alert engine, when `ALERT_RULES` names a rules file: a sink of the
 * pipeline's batches behind its own bounded queue (what does not fit is
 * dropped and counted; `offer` never waits), plus a once-a-second look at the
 * live state of feeds, books and gaps for the data-quality rules. A condition
 * met becomes an alert unless its rule fired for the same key within the
 * cooldown (then it is counted as suppressed, and the next alert says how
 * many were). An alert is stored with its broker message and its webhook
 * deliveries in one transaction; they leave from the database (delivery.ts).
 */
import { Clock, Config, Context, Duration, Effect, Layer, Metric, Option, Queue } from "effect"
import type { RowBatch } from "../domain/rows.ts"
import { FeedRegistry } from "../feed/status.ts"
import { GapLedger } from "../gaps/ledger.ts"
import { CrossCheck } from "./cross-venue.ts"
import { type Alert, AlertDelivery, makeAlertStore, type WebhookState } from "./delivery.ts"
import { type Firing, type InstrumentLookup, limits, RuleSet } from "./evaluate.ts"
import type { RulesFile } from "./rules.ts"

export interface RuleState {
  readonly name: string
  readonly kind: string
  readonly firings: number
  readonly suppressed: number
  readonly last_fired_at: string | null
  readonly last_message: string | null
}

export interface AlertsState {
  readonly enabled: boolean
  readonly file: string | null
  /** Batches waiting for evaluation, and batches dropped because the queue was full. */
  readonly queued: number
  readonly dropped_batches: number
  readonly rules: ReadonlyArray<RuleState>
  readonly webhooks: ReadonlyArray<WebhookState>
}

export const firings = Metric.counter("alert_firings_total", {
  description: "Alert rule conditions met, per rule and outcome (fired, or suppressed by the cooldown)",
  incremental: true
})
const droppedBatches = Metric.counter("alert_batches_dropped_total", {
  description: "Pipeline batches the alert engine could not queue (it fell behind); they were stored and published, not evaluated",
  incremental: true
})

export const alertsConfig = Config.all({
  file: Config.String("ALERT_RULES").pipe(Config.option),
  queueCapacity: Config.Int("ALERT_QUEUE_CAPACITY").pipe(Config.withDefault(10_000)),
  storeCapacity: Config.Int("ALERT_STORE_CAPACITY").pipe(Config.withDefault(100_000)),
  tickMs: Config.Int("ALERT_CHECK_INTERVAL_MS").pipe(Config.withDefault(1000))
})

export class AlertEngine extends Context.Service<AlertEngine, {
  /** Hands a batch to the engine's queue; never waits, never fails. */
  readonly offer: (batch: RowBatch, lookup: InstrumentLookup) => void
  readonly state: () => AlertsState
  /** Calls `listener` with every alert fired from now on (synchronously: it must only hand it on). */
  readonly watch: (listener: (alert: Alert) => void) => void
}>()("market-data/alerts/AlertEngine") {
  static readonly layer = Layer.effect(AlertEngine, Effect.gen(function*() {
    const config = yield* alertsConfig
    const delivery = yield* AlertDelivery
    if (Option.isNone(config.file) || delivery.rules === undefined) {
      const disabled: AlertsState = { enabled: false, file: null, queued: 0, dropped_batches: 0, rules: [], webhooks: [] }
      return AlertEngine.of({ offer: () => undefined, state: () => disabled, watch: () => undefined })
    }
    const rulesFile: RulesFile = delivery.rules
    const registry = yield* FeedRegistry
    const ledger = yield* GapLedger
    const crossCheck = yield* Effect.serviceOption(CrossCheck)
    const store = yield* makeAlertStore(config.storeCapacity, delivery)
    const webhookNames = rulesFile.webhooks.map((webhook) => webhook.name)
    const ruleSet = new RuleSet(rulesFile.rules)
    const byName = new Map(rulesFile.rules.map((rule) => [rule.name, rule]))
    const stats = new Map(rulesFile.rules.map((rule) => [rule.name, { firings: 0, suppressed: 0, lastFiredAt: null as number | null, lastMessage: null as string | null }]))
    // Per rule and key: when it last fired, and how many firings the cooldown has held back since.
    const cooldowns = new Map<string, { at: number; held: number }>()
    const queue = yield* Queue.dropping<{ batch: RowBatch; lookup: InstrumentLookup }>(config.queueCapacity)
    // `offer` runs on the pipeline's fiber and must not wait: it counts a drop here, and the engine's own fibers
    // carry the count to the metric (a batch is dropped only while the queue is full, so the evaluator is about to take).
    let dropped = 0
    let droppedReported = 0
    const reportDrops = Effect.suspend(() => {
      const fresh = dropped - droppedReported
      droppedReported = dropped
      return fresh > 0 ? Metric.update(droppedBatches, fresh) : Effect.void
    })
    // The instrument table the pipeline hands over with its batches: the data-quality rules' asset filters read it too.
    let instruments: InstrumentLookup = () => undefined
    const listeners: Array<(alert: Alert) => void> = []

    const deliver = (firing: Firing) =>
      Effect.gen(function*() {
        const rule = byName.get(firing.rule)!
        const now = yield* Clock.currentTimeMillis
        const key = `${firing.rule}\u0000${firing.key}`
        const previous = cooldowns.get(key)
        const cooldownMs = (rule.cooldown_seconds ?? rulesFile.defaultCooldownSeconds) * 1000
        const stat = stats.get(firing.rule)!
        if (previous !== undefined && now - previous.at < cooldownMs) {
          previous.held++
          stat.suppressed++
          return yield* Metric.update(Metric.withAttributes(firings, { rule: firing.rule, outcome: "suppressed" }), 1)
        }
        cooldowns.delete(key)
        cooldowns.set(key, { at: now, held: 0 })
        if (cooldowns.size > limits.keysPerRule * Math.max(1, byName.size)) cooldowns.delete(cooldowns.keys().next().value as string)
        const alert: Alert = {
          ...firing,
          details: previous !== undefined && previous.held > 0 ? { ...firing.details, suppressed_since_last: previous.held } : firing.details,
          firedAt: now
        }
        stat.firings++
        stat.lastFiredAt = now
        stat.lastMessage = alert.message
        yield* Metric.update(Metric.withAttributes(firings, { rule: firing.rule, outcome: "fired" }), 1)
        yield* Effect.logInfo(`alert ${alert.rule}: ${alert.message}`)
        // Stored with its broker message and its webhook deliveries in one transaction (delivery.ts).
        yield* store.offer(alert, rule.webhooks ?? webhookNames)
        for (const listener of listeners) listener(alert)
      })

    // Market rules: the pipeline's batches, in order, off the pipeline's fiber.
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      const { batch, lookup } = yield* Queue.take(queue)
      yield* reportDrops
      for (const firing of ruleSet.onBatch(batch, lookup)) yield* deliver(firing)
    })))
    // Data-quality rules: the live state, once per ALERT_CHECK_INTERVAL_MS.
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* Effect.sleep(Duration.millis(config.tickMs))
      yield* reportDrops
      const now = yield* Clock.currentTimeMillis
      const view = {
        now,
        feeds: registry.all().map((feed) => ({ ...feed, books: feed.books(), streams: feed.freshness?.status(now) ?? [] })),
        gaps: ledger.recent(),
        ...(Option.isSome(crossCheck) ? { crossCheck: crossCheck.value.findings() } : {})
      }
      for (const firing of ruleSet.onTick(view, instruments)) yield* deliver(firing)
    })))
    yield* Effect.logInfo(`alert rules loaded from ${config.file.value}: ${rulesFile.rules.map((r) => `${r.name} (${r.kind})`).join(", ")}`)

    return AlertEngine.of({
      watch: (listener) => {
        listeners.push(listener)
      },
      offer: (batch, lookup) => {
        instruments = lookup
        if (batch.large_trades.length + batch.funding_rates.length + batch.open_interest.length + batch.exchange_orderbooks.length + batch.futures_basis.length === 0) return
        if (!Queue.offerUnsafe(queue, { batch, lookup })) dropped++
      },
      state: () => ({
        enabled: true,
        file: config.file.pipe(Option.getOrNull),
        queued: Queue.sizeUnsafe(queue),
        dropped_batches: dropped,
        rules: rulesFile.rules.map((rule) => {
          const stat = stats.get(rule.name)!
          return {
            name: rule.name,
            kind: rule.kind,
            firings: stat.firings,
            suppressed: stat.suppressed,
            last_fired_at: stat.lastFiredAt === null ? null : new Date(stat.lastFiredAt).toISOString(),
            last_message: stat.lastMessage
          }
        }),
        webhooks: delivery.webhooks()
      })
    })
  }))
}

