/**
 * The embedded database's wire: pools that talk to PGlite's one session at
 * once each get their own answers and their own transactions. Under
 * pglite-socket's server, which queued each protocol message on its own, one
 * connection's messages ran between another's as soon as a transaction
 * ended mid-cycle: the first test had 161 of 200 answers wrong there
 * (`portal "" does not exist`, another query's rows, "Unexpected
 * ReadyForQuery during rows"), as the service's embedded runs did in CI.
 */
import * as net from "node:net"
import { PGlite } from "@electric-sql/pglite"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Reactivity } from "effect/reactivity"
import { serveEmbedded } from "../src/storage/embedded-server.ts"

const embedded = Effect.gen(function*() {
  const db = yield* Effect.acquireRelease(Effect.promise(() => PGlite.create()), (db) => Effect.promise(() => db.close()))
  const { port } = yield* serveEmbedded(db).pipe(Effect.orDie)
  const pool = (name: string) =>
    PgClient.make({ host: "127.0.0.1", port, database: "postgres", username: "postgres", maxConnections: 4, applicationName: name }).pipe(
      Effect.provide(Reactivity.layer)
    )
  return { pool, port }
})

describe("embedded database wire", () => {
  it.live("concurrent pools each get their own rows", () =>
    Effect.gen(function*() {
      const { pool } = yield* embedded
      const writer = yield* pool("writer")
      const reader = yield* pool("reader")
      yield* writer`CREATE TABLE batches (n int, body text)`
      // Different shapes and different values: a crossed answer shows as a wrong n, a wrong column or an error.
      // The writer's asks are transactions, as its batch inserts are; the reader's are plain queries.
      const asks = Array.from({ length: 200 }, (_, i) =>
        i % 2 === 0
          ? writer.withTransaction(Effect.gen(function*() {
            yield* writer`INSERT INTO batches VALUES (${i}, ${"x".repeat(i)})`
            return yield* writer<{ n: number; size: number }>`SELECT n, length(body) AS size FROM batches WHERE n = ${i}`
          })).pipe(Effect.map((rows) => rows.length === 1 && rows[0]!.n === i && rows[0]!.size === i))
          : reader<{ m: string; k: number }>`SELECT repeat('r', ${i % 17}) AS m, ${i}::int AS k FROM generate_series(1, 2)`.pipe(
            Effect.map((rows) => rows.length === 2 && rows.every((row) => row.k === i && row.m === "r".repeat(i % 17)))
          ))
      const answers = yield* Effect.all(asks.map((ask) => Effect.result(ask)), { concurrency: "unbounded" })
      const wrong = answers.filter((answer) => answer._tag === "Failure" || answer.success !== true)
      assert.strictEqual(wrong.length, 0, `${wrong.length} of ${asks.length} answers were another query's or failed: ${JSON.stringify(wrong.slice(0, 3))}`)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a transaction holds the session: another pool's insert lands outside it and survives its rollback", () =>
    Effect.gen(function*() {
      const { pool } = yield* embedded
      const first = yield* pool("first")
      const second = yield* pool("second")
      yield* first`CREATE TABLE t (who text)`
      const inside = first.withTransaction(Effect.gen(function*() {
        yield* first`INSERT INTO t VALUES ('first')`
        // The other pool's insert is sent while this transaction is open.
        yield* Effect.forkDetach(second`INSERT INTO t VALUES ('second')`)
        yield* Effect.sleep("100 millis")
        const seen = yield* first<{ who: string }>`SELECT who FROM t ORDER BY who`
        assert.deepStrictEqual(seen.map((row) => row.who), ["first"], "only this transaction's row inside it")
        return yield* Effect.fail("roll back" as const)
      }))
      assert.strictEqual(yield* Effect.flip(inside), "roll back")
      // The second insert ran once the transaction ended, and the rollback did not take it.
      const after = yield* Effect.gen(function*() {
        while (true) {
          const rows = yield* second<{ who: string }>`SELECT who FROM t ORDER BY who`
          if (rows.length > 0) return rows.map((row) => row.who)
          yield* Effect.sleep("20 millis")
        }
      }).pipe(Effect.timeout("5 seconds"))
      assert.deepStrictEqual(after, ["second"])
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a client that hangs up inside a transaction leaves the session clean for the next", () =>
    Effect.gen(function*() {
      const { pool, port } = yield* embedded
      const next = yield* pool("next")
      yield* next`CREATE TABLE u (x int)`
      // A bare client: startup, then BEGIN and an INSERT in the simple protocol, then the socket drops without COMMIT.
      yield* Effect.promise(() => new Promise<void>((resolve, reject) => {
        const socket = net.connect(port, "127.0.0.1")
        const startup = Buffer.concat([Buffer.from("user\0postgres\0database\0postgres\0\0")])
        const head = Buffer.alloc(8)
        head.writeInt32BE(8 + startup.length, 0)
        head.writeInt32BE(196608, 4)
        const query = (text: string) => {
          const body = Buffer.from(`${text}\0`)
          const message = Buffer.alloc(5)
          message.write("Q", 0)
          message.writeInt32BE(4 + body.length, 1)
          return Buffer.concat([message, body])
        }
        let seen = Buffer.alloc(0)
        socket.on("data", (data) => {
          seen = Buffer.concat([seen, data])
          // Three ReadyForQuery so far (startup, BEGIN, INSERT), the last one in a transaction ('T').
          const ready = [...seen.toString("latin1").matchAll(/Z\0\0\0\x05([ITE])/g)].map((match) => match[1])
          if (ready.length === 3) {
            assert.deepStrictEqual(ready, ["I", "T", "T"])
            socket.destroy()
            resolve()
          }
        })
        socket.on("error", reject)
        socket.write(Buffer.concat([head, startup, query("BEGIN"), query("INSERT INTO u VALUES (1)")]))
      }))
      const rows = yield* next<{ n: number }>`SELECT count(*)::int AS n FROM u`.pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(rows[0]!.n, 0, "the dropped transaction was rolled back")
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a client that hangs up after a failed Parse, before its Sync, leaves the next client's statements answered", () =>
    Effect.gen(function*() {
      const { pool, port } = yield* embedded
      yield* Effect.promise(() => new Promise<void>((resolve, reject) => {
        const socket = net.connect(port, "127.0.0.1")
        const startup = Buffer.from("user\0postgres\0database\0postgres\0\0")
        const head = Buffer.alloc(8)
        head.writeInt32BE(8 + startup.length, 0)
        head.writeInt32BE(196608, 4)
        // Parse of a statement PostgreSQL refuses, with no Sync: the session now ignores everything until one.
        const body = Buffer.from("\0SELEC 1\0\0\0")
        const parse = Buffer.alloc(5)
        parse.write("P", 0)
        parse.writeInt32BE(4 + body.length, 1)
        let seen = Buffer.alloc(0)
        socket.on("data", (data) => {
          seen = Buffer.concat([seen, data])
          if (seen.includes(Buffer.from("E"), seen.indexOf(Buffer.from([0x5a, 0, 0, 0, 5])) + 6) && seen.toString("latin1").includes("SELEC")) {
            socket.destroy()
            resolve()
          }
        })
        socket.on("error", reject)
        socket.write(Buffer.concat([head, startup, parse, body]))
      })).pipe(Effect.timeout("5 seconds"))
      const next = yield* pool("next")
      const rows = yield* next<{ n: number }>`SELECT 7 AS n`.pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(rows[0]!.n, 7)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
