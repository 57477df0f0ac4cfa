/**
 * Publishing to RabbitMQ, when `AMQP_URL` is set: every row batch that leaves
 * the pipeline (the same batches the writer stores) becomes persistent
 * messages on a durable topic exchange (`PUBLISH_EXCHANGE`, default
 * `market-data`), routing key `<kind>.<venue>.<symbol>`, body the API's row
 * shape plus `kind` and `schema_version`, message id the row's deterministic id
 * (a consumer drops duplicates by it).
 *
 * A broker that is slow or away never slows collection or storage: `offer`
 * only appends to a bounded outbox (what does not fit is dropped and
 * counted). One fiber drains it over a confirm channel; a message leaves the
 * outbox only when the broker confirmed it, so whatever was in flight when the
 * connection broke is published again after reconnecting (capped, jittered
 * backoff): at least once, duplicates possible, nothing below the bound lost.
 *
 * Client: amqplib (AMQP 0-9-1, the most used Node client, maintained, no
 * dependencies, publisher confirms); no protocol code of our own.
 */
import * as amqp from "amqplib"
import { Cause, Config, Context, Duration, Effect, Layer, Metric, Option, Random, Redacted } from "effect"
import type { LargeTradeRow, RowBatch } from "../domain/rows.ts"
import type { Gap } from "../gaps/ledger.ts"
import { transportCause } from "../domain/transport.ts"

export const schemaVersion = 1

interface Outbound {
  readonly routingKey: string
  readonly id: string
  readonly kind: string
  readonly body: Buffer
}

export interface PublisherState {
  readonly enabled: boolean
  readonly state: "disabled" | "connecting" | "connected" | "backoff"
  readonly exchange: string
  readonly outbox: number
  readonly published: number
  readonly confirmed: number
  readonly returned: number
  readonly dropped: number
  readonly lastError: string | null
}

const messages = Metric.counter("publish_messages_total", { description: "Broker messages per outcome (published, confirmed, returned, dropped)", incremental: true })
const outboxDepth = Metric.gauge("publish_outbox_depth", { description: "Messages waiting for the broker" })
const connectedGauge = Metric.gauge("publish_connected", { description: "1 while the broker connection is up" })

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())
/** Topic words are dot-separated: a dot inside a symbol must not split it. */
export const word = (s: string) => s.replace(/[.#*\s]/g, "_")

const largeTrade = (r: LargeTradeRow) => ({
  exchange: r.exchange,
  symbol: r.symbol,
  side: r.side,
  price: r.price,
  size: r.size,
  value_usd: r.valueUsd,
  timestamp: iso(r.timestamp),
  trade_id: r.tradeId,
  is_liquidation: r.isLiquidation,
  metadata: r.metadata
})

/** A batch as broker messages, in the API's row shapes. */
export const toMessages = (batch: RowBatch, options: { readonly orderBooks: boolean }): Array<Outbound> => {
  const out: Array<Outbound> = []
  const add = (kind: string, exchange: string, symbol: string, id: string, row: object) =>
    out.push({
      kind,
      id,
      routingKey: `${kind}.${word(exchange)}.${word(symbol)}`,
      body: Buffer.from(JSON.stringify({ kind, schema_version: schemaVersion, ...row }))
    })
  for (const r of batch.large_trades) add(r.isLiquidation ? "liquidation" : "large_trade", r.exchange, r.symbol, r.id, largeTrade(r))
  for (const r of batch.funding_rates) {
    add("funding", r.exchange, r.symbol, r.id, {
      exchange: r.exchange, symbol: r.symbol, rate: r.rate, predicted_rate: r.predictedRate, timestamp: iso(r.timestamp), next_funding_time: iso(r.nextFundingTime), metadata: r.metadata
    })
  }
  for (const r of batch.open_interest) {
    add("open_interest", r.exchange, r.symbol, r.id, {
      exchange: r.exchange, symbol: r.symbol, open_interest: r.openInterest, open_interest_usd: r.openInterestUsd, timestamp: iso(r.timestamp), metadata: r.metadata
    })
  }
  if (options.orderBooks) {
    for (const r of batch.exchange_orderbooks) {
      add("orderbook", r.exchange, r.symbol, r.id, {
        exchange: r.exchange, symbol: r.symbol, bids: r.bids, asks: r.asks, timestamp: iso(r.timestamp), sequence: r.sequence, metadata: r.metadata
      })
    }
  }
  return out
}

export const publisherConfig = Config.all({
  url: Config.Redacted("AMQP_URL").pipe(Config.option),
  exchange: Config.String("PUBLISH_EXCHANGE").pipe(Config.withDefault("market-data")),
  orderBooks: Config.Boolean("PUBLISH_ORDERBOOKS").pipe(Config.withDefault(false)),
  capacity: Config.Int("PUBLISH_OUTBOX_CAPACITY").pipe(Config.withDefault(100_000)),
  batchSize: Config.Int("PUBLISH_BATCH_SIZE").pipe(Config.withDefault(500)),
  retryMaxSeconds: Config.Number("PUBLISH_RETRY_MAX_SECONDS").pipe(Config.withDefault(30))
})

/** A message that is not a row of a batch (a gap, an alert), with its routing key already made. */
export interface PublishedEvent {
  readonly kind: string
  readonly routingKey: string
  readonly id: string
  readonly row: object
}

const eventMessage = (event: PublishedEvent): Outbound => ({
  kind: event.kind,
  id: event.id,
  routingKey: event.routingKey,
  body: Buffer.from(JSON.stringify({ kind: event.kind, schema_version: schemaVersion, ...event.row }))
})

/**
 * A gap as published on `gap.<venue>.<symbol>`, in the API's gap shape. The
 * ledger reports a gap again as it changes (closed, repaired), so the message
 * id names the state: a consumer dropping duplicates keeps every change.
 */
export const gapEvent = (gap: Gap): PublishedEvent => ({
  kind: "gap",
  routingKey: `gap.${word(gap.exchange)}.${word(gap.symbol)}`,
  id: `${gap.id}:${gap.status}:${gap.end ?? "open"}:${gap.repairedCount}`,
  row: {
    id: gap.id,
    exchange: gap.exchange,
    channel: gap.channel,
    symbol: gap.symbol,
    start: iso(gap.start),
    end: iso(gap.end),
    cause: gap.cause,
    estimated_missing: gap.estimatedMissing,
    repair_status: gap.status,
    repaired_count: gap.repairedCount,
    metadata: gap.metadata
  }
})

export class Publisher extends Context.Service<Publisher, {
  /** Hands a batch to the outbox; never waits, never fails. */
  readonly offer: (batch: RowBatch) => void
  /** Hands one event (a gap, an alert) to the outbox; never waits, never fails. */
  readonly offerEvent: (event: PublishedEvent) => void
  readonly state: () => PublisherState
}>()("market-data/publish/Publisher") {
  static readonly layer = Layer.effect(Publisher, Effect.gen(function*() {
    const config = yield* publisherConfig
    if (Option.isNone(config.url)) {
      const disabled: PublisherState = { enabled: false, state: "disabled", exchange: config.exchange, outbox: 0, published: 0, confirmed: 0, returned: 0, dropped: 0, lastError: null }
      return Publisher.of({ offer: () => undefined, offerEvent: () => undefined, state: () => disabled })
    }
    const url = Redacted.value(config.url.value)
    // The outbox: a plain array with a moving head; confirmed messages leave from the front.
    let outbox: Array<Outbound> = []
    let head = 0
    const counts = { published: 0, confirmed: 0, returned: 0, dropped: 0 }
    let state: PublisherState["state"] = "connecting"
    let lastError: string | null = null
    let wake: (() => void) | undefined

    const depth = () => outbox.length - head
    const offer = (batch: RowBatch) => {
      if (batch.large_trades.length + batch.funding_rates.length + batch.open_interest.length + (config.orderBooks ? batch.exchange_orderbooks.length : 0) === 0) return
      for (const message of toMessages(batch, config)) {
        if (depth() >= config.capacity) counts.dropped++
        else outbox.push(message)
      }
      wake?.()
    }
    const offerEvent = (event: PublishedEvent) => {
      if (depth() >= config.capacity) counts.dropped++
      else outbox.push(eventMessage(event))
      wake?.()
    }

    const describe = (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error)
      const cause = transportCause(error)
      return cause === undefined || message.includes(cause) ? message : `${message} (${cause})`
    }

    // Counters kept as plain numbers on the hot path; their growth is reported to /metrics by the draining fiber.
    const reported = { published: 0, returned: 0, dropped: 0 }
    const report = Effect.gen(function*() {
      for (const outcome of ["published", "returned", "dropped"] as const) {
        const delta = counts[outcome] - reported[outcome]
        if (delta > 0) yield* Metric.update(Metric.withAttributes(messages, { outcome }), delta)
        reported[outcome] = counts[outcome]
      }
      yield* Metric.update(outboxDepth, depth())
    })
    let attempt = 0

    /** One connection's life: connect, then publish and confirm batches until something breaks. */
    const session = Effect.gen(function*() {
      state = "connecting"
      const connection = yield* Effect.tryPromise(() => amqp.connect(url, { clientProperties: { connection_name: "market-data-service" } }))
      yield* Effect.addFinalizer(() => Effect.promise(() => connection.close().catch(() => undefined)))
      const broken = new Promise<never>((_, reject) => {
        connection.on("error", (error) => reject(error))
        connection.on("close", () => reject(new Error("the broker closed the connection")))
      })
      broken.catch(() => undefined)
      const channel = yield* Effect.tryPromise(() => connection.createConfirmChannel())
      channel.on("error", () => undefined)
      channel.on("return", () => {
        counts.returned++
      })
      yield* Effect.tryPromise(() => channel.assertExchange(config.exchange, "topic", { durable: true }))
      state = "connected"
      lastError = null
      attempt = 0
      yield* Metric.update(connectedGauge, 1)
      yield* Effect.logInfo("broker connected").pipe(Effect.annotateLogs({ exchange: config.exchange }))
      while (true) {
        if (depth() === 0) {
          // Nothing to send: sleep until offered something (or a second passes), but notice a broken connection.
          yield* Effect.tryPromise(() => Promise.race([new Promise<void>((resolve) => {
            wake = resolve
            setTimeout(resolve, 1000)
          }), broken]))
          wake = undefined
          yield* report
          continue
        }
        const end = Math.min(outbox.length, head + config.batchSize)
        for (let i = head; i < end; i++) {
          const m = outbox[i]!
          channel.publish(config.exchange, m.routingKey, m.body, {
            persistent: true,
            mandatory: true,
            messageId: m.id,
            type: m.kind,
            contentType: "application/json",
            timestamp: Math.floor(Date.now() / 1000)
          })
        }
        counts.published += end - head
        yield* Effect.tryPromise(() => Promise.race([channel.waitForConfirms(), broken])).pipe(Effect.timeout(Duration.seconds(30)))
        // Confirmed: only now do they leave the outbox.
        counts.confirmed += end - head
        yield* Metric.update(Metric.withAttributes(messages, { outcome: "confirmed" }), end - head)
        head = end
        if (head > 50_000 && head * 2 > outbox.length) {
          outbox = outbox.slice(head)
          head = 0
        }
        yield* report
      }
    }).pipe(Effect.scoped)

    yield* session.pipe(
      Effect.catchCause((cause) =>
        Effect.gen(function*() {
          state = "backoff"
          const error = Cause.squash(cause)
          lastError = describe((error as { error?: unknown })?.error ?? error)
          yield* Metric.update(connectedGauge, 0)
          yield* report
          const ceiling = Math.min(config.retryMaxSeconds * 1000, 500 * 2 ** Math.min(attempt++, 10))
          const delay = ceiling / 2 + (ceiling / 2) * (yield* Random.next)
          yield* Effect.logWarning("broker unavailable; messages stay in the outbox until it is back").pipe(
            Effect.annotateLogs({ error: lastError, outbox: depth(), retryInMs: Math.round(delay) })
          )
          yield* Effect.sleep(Duration.millis(delay))
        })
      ),
      Effect.forever,
      Effect.forkScoped
    )

    return Publisher.of({
      offer,
      offerEvent,
      state: () => ({ enabled: true, state, exchange: config.exchange, outbox: depth(), ...counts, lastError })
    })
  }))
}
