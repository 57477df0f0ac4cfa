/**
 * Section 2: the whole service (collectors -> queues -> batched writer ->
 * database, API up) fed by the flood venue (bench/flood-exchange.ts, its own
 * process), stepped through rising paces. Every trade frame becomes a
 * large_trades row (thresholds set to 1 USD); depth diffs go through book sync.
 *
 * Per step: frames sent, sustained frames/s (frames / (step + time to store
 * the backlog)), row lag p50/p99 (send time to commit, from the writer's own
 * LagHistogram), peak RSS of this process, and drops (queue drops, refused rows and
 * trades never stored). A step is saturated when it falls 5% short of its
 * pace, drops anything, or its p99 lag passes one second.
 */
import { fork } from "node:child_process"
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect } from "effect"
import { SqlClient } from "effect/sql"
import { Writer } from "../src/storage/writer.ts"
import { freePort, startService } from "../test/support/service.ts"
import { formatRate, type Table } from "./report.ts"

export interface Flood {
  readonly port: number
  readonly pace: (rate: number) => void
  readonly sent: () => Promise<number>
  readonly stop: () => void
}

/** The flood venue in its own process; `env` adds to its settings (FLOOD_EXCHANGE_INFO). */
export const startFlood = (symbols: string, env: Record<string, string> = {}): Promise<Flood> =>
  new Promise((resolve, reject) => {
    const child = fork(new URL("./flood-exchange.ts", import.meta.url).pathname, [], {
      env: { ...process.env, ...env, FLOOD_SYMBOLS: symbols },
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    const waiting: Array<(sent: number) => void> = []
    child.on("error", reject)
    child.on("message", (message: { readonly port?: number; readonly sent?: number }) => {
      if (message.sent !== undefined) waiting.shift()?.(message.sent)
      if (message.port !== undefined) {
        resolve({
          port: message.port,
          pace: (rate) => child.send({ rate }),
          sent: () => new Promise((answer) => {
            waiting.push(answer)
            child.send({ counts: true })
          }),
          stop: () => child.kill()
        })
      }
    })
  })

export interface E2eTarget {
  readonly name: string
  /** A PostgreSQL URL, or undefined for the embedded database in a temporary directory. */
  readonly url: string | undefined
  /** Which embedded database (EMBEDDED_DATABASE), when there is no URL; unset: the default. */
  readonly engine?: "postgres" | "pglite"
}

/**
 * Memory of the embedded PostgreSQL's processes (our descendants named
 * postgres), as proportional set size: its backends share the buffer cache,
 * which RSS would count once per process. 0 when the database is not our child.
 */
const databaseMemory = (): number => {
  let total = 0
  const visit = (pid: number) => {
    let children: Array<string> = []
    try {
      for (const task of readdirSync(`/proc/${pid}/task`)) children = children.concat(readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim().split(" ").filter(Boolean))
    } catch {
      return
    }
    for (const child of children.map(Number)) {
      try {
        if (readFileSync(`/proc/${child}/comm`, "utf8").startsWith("postgres")) {
          const pss = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child}/smaps_rollup`, "utf8"))
          total += Number(pss?.[1] ?? 0) * 1024
        }
      } catch {
        // gone between the listing and the read
      }
      visit(child)
    }
  }
  visit(process.pid)
  return total
}

export const e2eSymbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT"]
const symbols = e2eSymbols.join(",")
/** Each symbol alternates depth and trade starting with depth, so a step can end one trade short per symbol. */
const tradeSlack = symbols.split(",").length

const runTarget = (target: E2eTarget, paces: ReadonlyArray<number>, stepSeconds: number) =>
  Effect.gen(function*() {
    const flood = yield* Effect.acquireRelease(Effect.promise(() => startFlood(symbols)), (f) => Effect.sync(f.stop))
    const dataDir = target.url === undefined ? mkdtempSync(join(tmpdir(), "mds-bench-")) : undefined
    // As root the embedded PostgreSQL runs as an unprivileged account, which must reach its directory (mkdtemp makes it 0700).
    if (dataDir !== undefined) chmodSync(dataDir, 0o755)
    if (dataDir !== undefined) yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
    const env: Record<string, string> = {
      EXCHANGES: "binance",
      BINANCE_SYMBOLS: symbols,
      BINANCE_WS_URL: `ws://127.0.0.1:${flood.port}`,
      BINANCE_REST_URL: `http://127.0.0.1:${flood.port}`,
      PORT: String(freePort()),
      HOST: "127.0.0.1",
      LOG_LEVEL: "Warn",
      ...(process.env.WB ? { WRITER_BATCH_SIZE: process.env.WB } : {}),
      ...(process.env.WF ? { WRITER_FLUSH_MS: process.env.WF } : {}),
      LARGE_TRADE_THRESHOLD_BTC: "1",
      LARGE_TRADE_THRESHOLD_ETH: "1",
      LARGE_TRADE_THRESHOLD_DEFAULT: "1",
      ...(target.url === undefined ? { DATA_DIR: dataDir! } : { DATABASE_URL: target.url }),
      ...(target.engine === undefined ? {} : { EMBEDDED_DATABASE: target.engine })
    }
    const context = yield* startService(env)
    const writer = Context.get(context, Writer)
    const sql = Context.get(context, SqlClient.SqlClient)
    yield* sql`TRUNCATE large_trades, exchange_orderbooks, feed_cursors, data_gaps`
    const stored = () => writer.state().tables.large_trades

    // Warm up until every symbol's book is live and trades are being stored.
    flood.pace(2_000)
    const warmUntil = Date.now() + 30_000
    while (stored().written < 600 && Date.now() < warmUntil) yield* Effect.sleep("100 millis")
    flood.pace(-1)
    yield* Effect.sleep("500 millis")

    const rows: Array<Array<string>> = []
    for (const pace of paces) {
      const lag = writer.state().lag.large_trades
      lag.reset()
      const before = { sent: yield* Effect.promise(flood.sent), ...stored() }
      let peakRss = process.memoryUsage().rss
      let peakDatabase = databaseMemory()
      const started = performance.now()
      const eluStart = performance.eventLoopUtilization()
      flood.pace(pace)
      while (performance.now() - started < stepSeconds * 1000) {
        yield* Effect.sleep("100 millis")
        peakRss = Math.max(peakRss, process.memoryUsage().rss)
        peakDatabase = Math.max(peakDatabase, databaseMemory())
        if (process.env.BENCH_VERBOSE !== undefined) {
          const m = process.memoryUsage()
          const books = writer.state().tables.exchange_orderbooks
          console.error(`  ${((performance.now() - started) / 1000).toFixed(1)} s: queued ${stored().queued} (books ${books.queued}), written ${stored().written - before.written}, rss ${(m.rss / 2 ** 20).toFixed(0)} heap ${(m.heapUsed / 2 ** 20).toFixed(0)} ext ${(m.external / 2 ** 20).toFixed(0)} ab ${(m.arrayBuffers / 2 ** 20).toFixed(0)}`)
        }
      }
      flood.pace(-1)
      const busy = performance.eventLoopUtilization(eluStart).utilization
      const sent = (yield* Effect.promise(flood.sent)) - before.sent
      // Every second frame is a trade; wait (up to 60 s) until each is stored or counted as dropped.
      const expected = Math.floor(sent / 2) - tradeSlack
      const written = () => stored().written - before.written
      const lost = () => stored().dropped - before.dropped + stored().rejected - before.rejected
      const settleBy = performance.now() + 60_000
      while (written() + lost() < expected && performance.now() < settleBy) {
        yield* Effect.sleep("20 millis")
        peakRss = Math.max(peakRss, process.memoryUsage().rss)
      }
      const seconds = (performance.now() - started) / 1000
      // Lost in the queues or refused, plus trades neither stored nor counted by the deadline.
      const drops = lost() + Math.max(0, expected - written() - lost())
      const sustained = sent / seconds
      const p50 = lag.quantile(0.5)
      const p99 = lag.quantile(0.99)
      const saturated = (pace > 0 && sustained < 0.95 * pace) || drops > 0 || (p99 ?? 0) > 1000
      rows.push([
        target.name,
        pace === 0 ? "max" : formatRate(pace),
        formatRate(sent),
        formatRate(sustained),
        formatRate(written()),
        p50 === undefined ? "n/a" : p50.toFixed(0),
        p99 === undefined ? "n/a" : p99.toFixed(0),
        (peakRss / 2 ** 20).toFixed(0),
        (peakDatabase / 2 ** 20).toFixed(0),
        `${(busy * 100).toFixed(0)}%`,
        String(drops),
        saturated ? "saturated" : "ok"
      ])
      yield* Effect.sleep("1 second")
    }
    return rows
  }).pipe(Effect.scoped)

export const e2eSection = async (target: E2eTarget, paces: ReadonlyArray<number>, stepSeconds: number): Promise<Table> => {
  const rows = await Effect.runPromise(runTarget(target, paces, stepSeconds))
  return {
    title: `2. end to end into ${target.name}: flood Binance spot venue (6 symbols, aggTrade + depth diffs) -> service -> database, ${stepSeconds} s per pace`,
    header: ["database", "pace/s", "frames", "sustained/s", "rows", "lag p50 ms", "lag p99 ms", "peak RSS MB", "child db MB", "CPU busy", "drops", "verdict"],
    // The pace is a number that names the row.
    keyColumns: 2,
    rows,
    notes: [
      "sustained = frames sent / (step + time to store its backlog); lag = trade send time to the commit that stored its row",
      "rows: large_trades rows stored (every trade frame); drops: rows lost in the queues, refused, or never stored",
      "peak RSS: this process (service and, for pglite, the database); child db: the embedded PostgreSQL's processes, peak proportional set size (0 when the database is not our child)",
      "CPU busy: the service's event-loop utilisation during the step (it runs in this process, on one core; the flood venue and PostgreSQL share the other)"
    ]
  }
}
