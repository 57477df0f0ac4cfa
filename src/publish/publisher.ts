/**
 * Publishing to RabbitMQ, when `AMQP_URL` is set: the messages staged in the
 * `outbox` table (storage/outbox.ts, in the same transaction as the rows,
 * gaps and alerts they describe) go to a durable topic exchange
 * (`PUBLISH_EXCHANGE`, default `market-data`) as persistent messages, routing
 * key `<kind>.<venue>.<symbol>`, message id deterministic (domain/messages.ts).
 *
 * One fiber reads the outbox in position order, publishes a batch on a
 * confirm channel and deletes the batch only once the broker confirmed it.
 * Whatever was in flight when the connection broke, or when the process died,
 * is still in the table and is published again: at least once, duplicates
 * possible (consumers drop them by message id), nothing lost below the age
 * bound. A broker that is slow or away never slows collection or storage.
 *
 * A message the broker returns (published `mandatory`, and no queue is bound
 * to its routing key) is confirmed too, but nobody got it: it is moved from
 * `outbox` to `outbox_returned` in the transaction that deletes its batch,
 * with the broker's reason, never deleted. They are counted
 * (`publish_messages_total{outcome="returned"}`, `publish_returned_kept`),
 * logged at most once a minute, shown in /health (`returned_kept` by kind,
 * the oldest's age, the last routing key returned), aged out after
 * OUTBOX_MAX_AGE_HOURS from their last return (counted as
 * `returned_aged_out`, logged), and put back into the outbox by
 * `npm run cli -- returned --requeue` once a queue is bound.
 *
 * The outbox is bounded by age (`OUTBOX_MAX_AGE_HOURS`, default a week):
 * older messages are deleted, counted (`publish_messages_total{outcome="aged_out"}`,
 * /health) and logged, so a broker away for a week cannot fill the disk.
 *
 * When the outbox is empty the reader looks again every `PUBLISH_POLL_MS`:
 * the table is the only hand-over between the writer's transactions and the
 * publisher (a signal in memory would be lost with the process, and could
 * only fire before the commit it announces), and one indexed query per
 * interval on an empty table costs nothing measurable.
 *
 * Client: amqplib (AMQP 0-9-1, the most used Node client, maintained, no
 * dependencies, publisher confirms); no protocol code of our own.
 */
import { PgTypes } from "@effect/sql-pg"
import * as amqp from "amqplib"
import { Clock, Config, Context, Deferred, Duration, Effect, Fiber, Layer, Metric, Option, Redacted, Result, Schedule, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { transportCause } from "../domain/transport.ts"
import { outboxConfig } from "../storage/outbox.ts"

export { schemaVersion, word } from "../domain/messages.ts"

export interface PublisherState {
  readonly enabled: boolean
  readonly state: "disabled" | "connecting" | "connected" | "backoff"
  readonly exchange: string
  /** Messages waiting in the outbox table, and the age of the oldest (refreshed every PUBLISH_STATS_MS). */
  readonly outbox: number
  readonly oldest_age_seconds: number | null
  readonly published: number
  readonly confirmed: number
  readonly returned: number
  /** Deleted unpublished after OUTBOX_MAX_AGE_HOURS. */
  readonly aged_out: number
  /** Returned by the broker (no queue bound) and kept in outbox_returned, per kind; the oldest's age; the last one returned. */
  readonly returned_kept: number
  readonly returned_kept_by_kind: Record<string, number>
  readonly returned_oldest_age_seconds: number | null
  readonly last_returned: { readonly routing_key: string; readonly reply: string; readonly at: string } | null
  /** Deleted from outbox_returned after OUTBOX_MAX_AGE_HOURS. */
  readonly returned_aged_out: number
  readonly lastError: string | null
}

/** The broker refused, broke or did not confirm in time. */
export class BrokerError extends Schema.TaggedError<BrokerError>()("BrokerError", { message: Schema.String }) {}

const messages = Metric.counter("publish_messages_total", { description: "Broker messages per outcome (published, confirmed, returned, aged_out, returned_aged_out)", incremental: true })
const outboxDepth = Metric.gauge("publish_outbox_depth", { description: "Messages waiting in the outbox table for the broker" })
const outboxOldest = Metric.gauge("publish_outbox_oldest_seconds", { description: "Age of the oldest message in the outbox table" })
const returnedKept = Metric.gauge("publish_returned_kept", { description: "Messages the broker returned (no queue bound), kept in outbox_returned" })
const connectedGauge = Metric.gauge("publish_connected", { description: "1 while the broker connection is up" })

export const publisherConfig = Config.all({
  url: Config.Redacted("AMQP_URL").pipe(Config.option),
  exchange: Config.String("PUBLISH_EXCHANGE").pipe(Config.withDefault("market-data")),
  batchSize: Config.Int("PUBLISH_BATCH_SIZE").pipe(Config.withDefault(500)),
  retryMaxSeconds: Config.Number("PUBLISH_RETRY_MAX_SECONDS").pipe(Config.withDefault(30)),
  pollMs: Config.Int("PUBLISH_POLL_MS").pipe(Config.withDefault(200)),
  statsMs: Config.Int("PUBLISH_STATS_MS").pipe(Config.withDefault(2_000)),
  sweepSeconds: Config.Number("OUTBOX_SWEEP_SECONDS").pipe(Config.withDefault(60)),
  /** How long shutdown lets a connected publisher empty the outbox. */
  drainTimeoutMs: Config.Int("PUBLISH_DRAIN_TIMEOUT_MS").pipe(Config.withDefault(10_000)),
  outbox: outboxConfig
})

/** Returned messages are logged at most this often (with how many since the last line). */
const returnedLogEveryMs = 60_000

/** The system error under a transport failure (it quotes the message), else the message. */
const describe = (error: unknown) => transportCause(error) ?? (error instanceof Error ? error.message : String(error))

const brokerCall = <A>(what: string, call: () => PromiseLike<A>) =>
  Effect.tryPromise({ try: () => Promise.resolve(call()), catch: (error) => new BrokerError({ message: `${what}: ${describe(error)}` }) })

const text = (values: ReadonlyArray<string>) => Result.getOrThrow(PgTypes.array(values, PgTypes.OID.text))

interface Staged {
  readonly position: string
  readonly id: string
  readonly kind: string
  readonly routing_key: string
  readonly body: string
}

export class Publisher extends Context.Service<Publisher, {
  readonly state: () => PublisherState
}>()("market-data/publish/Publisher") {
  /**
   * Built before the writer, so released after it: on shutdown the writer
   * stores (and stages) what it holds first, then the publisher gets
   * `PUBLISH_DRAIN_TIMEOUT_MS` to send it; the rest stays for the next start.
   */
  static readonly layer = Layer.effect(Publisher, Effect.gen(function*() {
    const config = yield* publisherConfig
    if (Option.isNone(config.url)) {
      const disabled: PublisherState = {
        enabled: false, state: "disabled", exchange: config.exchange, outbox: 0, oldest_age_seconds: null, published: 0, confirmed: 0, returned: 0,
        aged_out: 0, returned_kept: 0, returned_kept_by_kind: {}, returned_oldest_age_seconds: null, last_returned: null, returned_aged_out: 0,
        lastError: null
      }
      return Publisher.of({ state: () => disabled })
    }
    const sql = yield* SqlClient.SqlClient
    const url = Redacted.value(config.url.value)
    const counts = { published: 0, confirmed: 0, returned: 0, aged_out: 0, returned_aged_out: 0 }
    const stats = { depth: 0, oldestAt: null as number | null, at: 0 }
    const kept = {
      byKind: {} as Record<string, number>,
      oldestAt: null as number | null,
      last: null as PublisherState["last_returned"],
      // Returned since the last log line, and when that line was written.
      unlogged: 0,
      unloggedKeys: new Set<string>(),
      loggedAt: Number.NEGATIVE_INFINITY
    }
    const keptTotal = () => Object.values(kept.byKind).reduce((n, k) => n + k, 0)

    /** At most one line a minute for returned messages: how many since the last one, and some of their routing keys. */
    const logReturned = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (kept.unlogged === 0 || now - kept.loggedAt < returnedLogEveryMs) return
      const count = kept.unlogged
      const keys = [...kept.unloggedKeys].slice(0, 10)
      kept.unlogged = 0
      kept.unloggedKeys.clear()
      kept.loggedAt = now
      yield* Effect.logWarning(`the broker returned ${count} messages no queue is bound to; kept in outbox_returned (npm run cli -- returned)`).pipe(
        Effect.annotateLogs({ exchange: config.exchange, routingKeys: keys.join(" "), kept: keptTotal() })
      )
    })
    let state: PublisherState["state"] = "connecting"
    let lastError: string | null = null

    // The outbox's own queries wait out a database outage (the broker connection stays up meanwhile); the retry never ends.
    const untilDone = <A, E>(query: Effect.Effect<A, E>) =>
      query.pipe(Effect.retry(Schedule.min([Schedule.exponential(Duration.millis(250)), Schedule.spaced(Duration.seconds(5))]).pipe(Schedule.jittered)), Effect.orDie)
    const backoff = Schedule.min([Schedule.exponential(Duration.millis(500)), Schedule.spaced(Duration.seconds(config.retryMaxSeconds))]).pipe(
      Schedule.jittered,
      Schedule.setInputType<BrokerError>(),
      Schedule.tap(({ input, duration }) =>
        Effect.gen(function*() {
          state = "backoff"
          lastError = input.message
          yield* Metric.update(connectedGauge, 0)
          yield* Effect.logWarning("broker unavailable; messages stay in the outbox until it is back").pipe(
            Effect.annotateLogs({ error: lastError, outbox: stats.depth, retryInMs: Math.round(Duration.toMillis(duration)) })
          )
        })
      )
    )

    /** One connection's life: connect, then publish and confirm batches from the outbox until the connection breaks. */
    const session = Effect.gen(function*() {
      state = "connecting"
      // The connection's (or channel's) end, as a value: whatever amqplib reports first completes it.
      const broken = yield* Deferred.make<never, BrokerError>()
      const connection = yield* Effect.acquireRelease(
        brokerCall("connect", () => amqp.connect(url, { clientProperties: { connection_name: "market-data-service" } })),
        // Closing a connection that is breaking can wait forever for the broker's answer: only a live one is closed, and briefly.
        (c) =>
          Deferred.isDoneUnsafe(broken)
            ? Effect.void
            : brokerCall("close", () => c.close()).pipe(Effect.timeout(Duration.seconds(2)), Effect.ignore)
      )
      const breakWith = (message: string) => Deferred.doneUnsafe(broken, Effect.fail(new BrokerError({ message })))
      connection.on("error", (error: unknown) => breakWith(describe(error)))
      connection.on("close", () => breakWith("the broker closed the connection"))
      const channel = yield* brokerCall("open a confirm channel", () => connection.createConfirmChannel())
      channel.on("error", (error: unknown) => breakWith(`channel: ${describe(error)}`))
      channel.on("close", () => breakWith("the broker closed the channel"))
      // The broker sends a returned message before its confirm: by the time a batch is confirmed its returns are here.
      const returnedIds = new Map<string, { readonly code: number; readonly text: string }>()
      channel.on("return", (message: amqp.Message) => {
        counts.returned++
        const id = message.properties.messageId
        if (typeof id === "string" || typeof id === "number") {
          // A basic.return's fields: exchange, routing key, and the broker's reply code and text (amqplib's type names only a delivery's).
          const fields = message.fields as unknown as { readonly replyCode?: number; readonly replyText?: string }
          returnedIds.set(String(id), { code: Number(fields.replyCode ?? 0), text: String(fields.replyText ?? "") })
        }
      })
      yield* brokerCall("declare the exchange", () => channel.assertExchange(config.exchange, "topic", { durable: true }))
      state = "connected"
      lastError = null
      yield* Metric.update(connectedGauge, 1)
      yield* Effect.logInfo("broker connected").pipe(Effect.annotateLogs({ exchange: config.exchange }))

      /** Publishes the oldest batch of the outbox and deletes it once confirmed: how many it sent. */
      const publishBatch = Effect.gen(function*() {
        const batch = yield* untilDone(sql<Staged>`SELECT position::text AS position, id, kind, routing_key, body FROM outbox
          ORDER BY position LIMIT ${config.batchSize}`)
        if (batch.length === 0) return 0
        const returnedBefore = counts.returned
        returnedIds.clear()
        yield* Effect.try({
          try: () => {
            const timestamp = Math.floor(Date.now() / 1000)
            for (const m of batch) {
              channel.publish(config.exchange, m.routing_key, Buffer.from(m.body), {
                persistent: true,
                mandatory: true,
                messageId: m.id,
                type: m.kind,
                contentType: "application/json",
                timestamp
              })
            }
          },
          catch: (error) => new BrokerError({ message: `publish: ${describe(error)}` })
        })
        counts.published += batch.length
        yield* Metric.update(Metric.withAttributes(messages, { outcome: "published" }), batch.length)
        yield* brokerCall("confirms", () => channel.waitForConfirms()).pipe(
          Effect.timeoutOrElse({ duration: Duration.seconds(30), orElse: () => Effect.fail(new BrokerError({ message: "no confirms within 30 s" })) })
        )
        // Confirmed: only now do they leave the outbox.
        counts.confirmed += batch.length
        yield* Metric.update(Metric.withAttributes(messages, { outcome: "confirmed" }), batch.length)
        yield* Metric.update(Metric.withAttributes(messages, { outcome: "returned" }), counts.returned - returnedBefore)
        const positions = text(batch.map((m) => m.position))
        const returned = batch.filter((m) => returnedIds.has(m.id))
        if (returned.length === 0) {
          yield* untilDone(sql`DELETE FROM outbox WHERE position = ANY(${positions}::bigint[])`)
        } else {
          // Nobody got these: kept in outbox_returned, in the transaction that deletes the batch (never in both, never in neither).
          const now = new Date(yield* Clock.currentTimeMillis).toISOString()
          const reasons = returned.map((m) => returnedIds.get(m.id)!)
          const inserted = yield* untilDone(sql.withTransaction(Effect.gen(function*() {
            const rows = yield* sql<{ kind: string; inserted: boolean }>`INSERT INTO outbox_returned
                (id, kind, routing_key, body, exchange, reply_code, reply_text, created_at, returned_at)
              SELECT o.id, o.kind, o.routing_key, o.body, ${config.exchange}, r.code::int, r.reply, o.created_at, ${now}::timestamptz
              FROM outbox o JOIN unnest(${text(returned.map((m) => m.id))}::text[], ${text(reasons.map((r) => String(r.code)))}::text[],
                ${text(reasons.map((r) => r.text))}::text[]) AS r(id, code, reply) ON r.id = o.id
              WHERE o.position = ANY(${positions}::bigint[])
              ORDER BY o.position
              ON CONFLICT (id) DO UPDATE SET routing_key = EXCLUDED.routing_key, body = EXCLUDED.body, exchange = EXCLUDED.exchange,
                reply_code = EXCLUDED.reply_code, reply_text = EXCLUDED.reply_text, returned_at = EXCLUDED.returned_at,
                times_returned = outbox_returned.times_returned + 1
              RETURNING kind, (xmax = 0) AS inserted`
            yield* sql`DELETE FROM outbox WHERE position = ANY(${positions}::bigint[])`
            return rows
          })))
          for (const row of inserted) if (row.inserted) kept.byKind[row.kind] = (kept.byKind[row.kind] ?? 0) + 1
          const at = yield* Clock.currentTimeMillis
          kept.oldestAt ??= at
          const last = returned[returned.length - 1]!
          kept.last = { routing_key: last.routing_key, reply: `${reasons[reasons.length - 1]!.code} ${reasons[reasons.length - 1]!.text}`, at: now }
          kept.unlogged += returned.length
          for (const m of returned) if (kept.unloggedKeys.size < 10) kept.unloggedKeys.add(m.routing_key)
          yield* Metric.update(returnedKept, keptTotal())
          yield* logReturned
        }
        stats.depth = Math.max(0, stats.depth - batch.length)
        return batch.length
      })

      // Batches back to back while there are any; then a look every PUBLISH_POLL_MS.
      const publishing = Effect.repeat(Effect.repeat(publishBatch, { while: (sent) => sent > 0 }), Schedule.spaced(Duration.millis(config.pollMs)))
      return yield* Effect.raceFirst(publishing, Deferred.await(broken))
    }).pipe(Effect.scoped)

    // A connection that was up and broke is retried at once, with a fresh backoff; failing to connect backs off.
    const connection = session.pipe(
      Effect.catchDefect((defect) => Effect.fail(new BrokerError({ message: describe(defect) }))),
      Effect.catch((error) =>
        state !== "connected" ? Effect.fail(error) : Effect.gen(function*() {
          state = "connecting"
          lastError = error.message
          yield* Metric.update(connectedGauge, 0)
          yield* Effect.logWarning("broker connection lost; reconnecting").pipe(Effect.annotateLogs({ error: error.message }))
        })
      )
    )
    const publisher = yield* Effect.forkScoped(Effect.forever(connection.pipe(Effect.retry(backoff))))

    /** Depth and oldest age for /health and /metrics: a count of the table, every PUBLISH_STATS_MS. */
    const refreshStats = Effect.gen(function*() {
      const [row] = yield* sql<{ n: string; oldest: Date | null }>`SELECT count(*)::text AS n, min(created_at) AS oldest FROM outbox`
      stats.depth = Number(row?.n ?? 0)
      stats.oldestAt = row?.oldest?.getTime() ?? null
      stats.at = yield* Clock.currentTimeMillis
      yield* Metric.update(outboxDepth, stats.depth)
      yield* Metric.update(outboxOldest, stats.oldestAt === null ? 0 : (stats.at - stats.oldestAt) / 1000)
      yield* logReturned
    })
    /** What outbox_returned holds, per kind (exact; between two of these, the publisher adds what it keeps). */
    const refreshReturned = Effect.gen(function*() {
      const rows = yield* sql<{ kind: string; n: string; oldest: Date }>`SELECT kind, count(*)::text AS n, min(returned_at) AS oldest
        FROM outbox_returned GROUP BY kind`
      kept.byKind = Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)]))
      kept.oldestAt = rows.length === 0 ? null : Math.min(...rows.map((r) => r.oldest.getTime()))
      yield* Metric.update(returnedKept, keptTotal())
    })
    yield* Effect.ignore(refreshReturned)
    yield* Effect.forkScoped(Effect.repeat(Effect.ignore(refreshStats), Schedule.spaced(Duration.millis(config.statsMs))))

    /** Deletes what is older than OUTBOX_MAX_AGE_HOURS: counted per kind, logged, never silent. */
    const ageOut = Effect.gen(function*() {
      const cutoff = new Date((yield* Clock.currentTimeMillis) - config.outbox.maxAgeHours * 3_600_000).toISOString()
      const gone = yield* sql<{ kind: string; n: string }>`WITH gone AS (DELETE FROM outbox WHERE created_at < ${cutoff}::timestamptz RETURNING kind)
        SELECT kind, count(*)::text AS n FROM gone GROUP BY kind`
      let total = 0
      for (const { kind, n } of gone) {
        total += Number(n)
        yield* Metric.update(Metric.withAttributes(messages, { outcome: "aged_out", kind }), Number(n))
      }
      if (total > 0) {
        counts.aged_out += total
        // /health says both at once: what aged out is no longer counted as waiting.
        stats.depth = Math.max(0, stats.depth - total)
        yield* Effect.logError(`deleted ${total} unpublished messages older than OUTBOX_MAX_AGE_HOURS=${config.outbox.maxAgeHours} from the outbox`).pipe(
          Effect.annotateLogs({ byKind: Object.fromEntries(gone.map(({ kind, n }) => [kind, Number(n)])) })
        )
      }
      const goneReturned = yield* sql<{ kind: string; n: string }>`WITH gone AS (DELETE FROM outbox_returned WHERE returned_at < ${cutoff}::timestamptz
        RETURNING kind) SELECT kind, count(*)::text AS n FROM gone GROUP BY kind`
      let returnedTotal = 0
      for (const { kind, n } of goneReturned) {
        returnedTotal += Number(n)
        yield* Metric.update(Metric.withAttributes(messages, { outcome: "returned_aged_out", kind }), Number(n))
      }
      if (returnedTotal > 0) {
        counts.returned_aged_out += returnedTotal
        yield* Effect.logError(
          `deleted ${returnedTotal} returned messages (no queue bound) older than OUTBOX_MAX_AGE_HOURS=${config.outbox.maxAgeHours} from outbox_returned`
        ).pipe(Effect.annotateLogs({ byKind: Object.fromEntries(goneReturned.map(({ kind, n }) => [kind, Number(n)])) }))
      }
      yield* refreshReturned
    })
    yield* Effect.forkScoped(Effect.repeat(
      ageOut.pipe(Effect.catchCause((cause) => Effect.logWarning("cannot age out the outbox", cause))),
      Schedule.spaced(Duration.seconds(config.sweepSeconds))
    ))

    // Shutdown (runs before the fibers above are interrupted): a connected publisher gets its bounded time to empty the outbox.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Effect.repeat(refreshStats.pipe(Effect.map(() => stats.depth > 0 && state === "connected"), Effect.orElseSucceed(() => false)), {
          while: (busy) => busy,
          schedule: Schedule.spaced(Duration.millis(100))
        }).pipe(Effect.timeout(Duration.millis(config.drainTimeoutMs)), Effect.ignore)
        yield* Fiber.interrupt(publisher)
        const left = yield* Effect.result(refreshStats)
        yield* Effect.logInfo(
          `publisher stopped; ${left._tag === "Success" ? stats.depth : "an unknown number of"} messages stay in the outbox for the next start`
        )
      })
    )

    return Publisher.of({
      state: () => ({
        enabled: true,
        state,
        exchange: config.exchange,
        outbox: stats.depth,
        oldest_age_seconds: stats.oldestAt === null ? null : Math.max(0, Math.round((stats.at - stats.oldestAt) / 1000)),
        ...counts,
        returned_kept: keptTotal(),
        returned_kept_by_kind: { ...kept.byKind },
        returned_oldest_age_seconds: kept.oldestAt === null ? null : Math.max(0, Math.round((stats.at - kept.oldestAt) / 1000)),
        last_returned: kept.last,
        lastError
      })
    })
  }))
}
