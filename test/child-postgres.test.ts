/**
 * The embedded PostgreSQL child process: a cluster created on first use, its
 * data kept across restarts, the server gone when the service's scope ends, a
 * server left by a killed service taken over, root handled by running as an
 * unprivileged account, and an existing PGlite store kept when nothing is chosen.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { reachableBy, serverAccount, startChildPostgres } from "../src/storage/child-postgres.ts"
import { childPostgresLayer, DatabaseInfo, embeddedDatabaseLayer } from "../src/storage/database.ts"
import { runMigrations } from "../src/storage/migrations.ts"
import { reachableTempDir } from "./support/service.ts"

const dataDir = () => reachableTempDir("mds-child-pg-")

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ")

const passwd = [
  "root:x:0:0:root:/root:/bin/bash",
  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  "postgres:x:101:104:PostgreSQL administrator:/var/lib/postgresql:/bin/bash"
].join("\n")

describe("the server's account", () => {
  it("is ours unless we are root; as root, postgres, else nobody", () => {
    assert.isUndefined(serverAccount(1000, () => passwd))
    assert.deepStrictEqual(serverAccount(0, () => passwd), { name: "postgres", uid: 101, gid: 104 })
    assert.deepStrictEqual(serverAccount(0, () => passwd.split("\n").slice(0, 2).join("\n")), { name: "nobody", uid: 65534, gid: 65534 })
  })
})

describe("what the server's account can reach", () => {
  it("needs search permission on every directory above, then the asked bits on the path", () => {
    const top = dataDir()
    try {
      mkdirSync(join(top, "private", "inner"), { recursive: true })
      const file = join(top, "private", "inner", "postgres")
      writeFileSync(file, "")
      chmodSync(file, 0o755)
      // Neither owner nor group: only the "other" bits count for this account.
      const stranger = { name: "stranger", uid: 4242, gid: 4242 }
      chmodSync(join(top, "private"), 0o700)
      assert.isFalse(reachableBy(file, stranger, 0o5))
      chmodSync(join(top, "private"), 0o711)
      assert.isTrue(reachableBy(file, stranger, 0o5))
      chmodSync(file, 0o750)
      assert.isFalse(reachableBy(file, stranger, 0o5))
      assert.isTrue(reachableBy(join(top, "private", "inner"), stranger, 0o1))
    } finally {
      rmSync(top, { recursive: true, force: true })
    }
  })
})

describe("embedded PostgreSQL child process", () => {
  it.live("creates its cluster, keeps the data across a restart, and stops with the scope", () =>
    Effect.gen(function*() {
      const dir = dataDir()
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const cluster = join(dir, "postgres")
      const store = Effect.gen(function*() {
        yield* runMigrations()
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE kept_across_restarts (id text PRIMARY KEY)`
        yield* sql`INSERT INTO kept_across_restarts VALUES ('child-pg-1')`
        const info = yield* DatabaseInfo
        return info
      })
      const first = yield* store.pipe(Effect.provide(childPostgresLayer(cluster)))
      assert.strictEqual(first.kind, "embedded")
      assert.include(first.location, "PostgreSQL child process")
      assert.isTrue(existsSync(join(cluster, "PG_VERSION")))
      // The layer's scope ended with the effect: the server wrote its shutdown checkpoint and removed its lock.
      assert.isFalse(existsSync(join(cluster, "postmaster.pid")))

      const ids = yield* SqlClient.SqlClient.use((sql) => sql<{ id: string }>`SELECT id FROM kept_across_restarts`).pipe(
        Effect.provide(childPostgresLayer(cluster))
      )
      assert.deepStrictEqual(ids.map((r) => r.id), ["child-pg-1"])
    }), 180_000)

  it.live("stops a server left running on its cluster by a killed service, then starts its own", () =>
    Effect.gen(function*() {
      const dir = dataDir()
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const cluster = join(dir, "postgres")
      // A scope never closed stands for the service killed with SIGKILL: its server outlives it.
      const abandoned = yield* Scope.make()
      const orphan = yield* startChildPostgres(cluster).pipe(Scope.provide(abandoned))
      assert.isTrue(alive(orphan.pid))
      const next = yield* startChildPostgres(cluster)
      assert.isFalse(alive(orphan.pid))
      assert.notStrictEqual(next.pid, orphan.pid)
      assert.isTrue(alive(next.pid))
      yield* Scope.close(abandoned, Exit.void)
    }).pipe(Effect.scoped), 180_000)

  it.live("without EMBEDDED_DATABASE, a PGlite store already in DATA_DIR/pg stays in use; a new DATA_DIR gets the child process", () =>
    Effect.gen(function*() {
      const dir = dataDir()
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const location = DatabaseInfo.use((info) => Effect.succeed(info.location))
      const fresh = yield* location.pipe(Effect.provide(embeddedDatabaseLayer(dir, Option.none())))
      assert.include(fresh, "PostgreSQL child process")

      const older = dataDir()
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(older, { recursive: true, force: true })))
      yield* location.pipe(Effect.provide(embeddedDatabaseLayer(older, Option.some("pglite"))))
      const kept = yield* location.pipe(Effect.provide(embeddedDatabaseLayer(older, Option.none())))
      assert.strictEqual(kept, join(older, "pg"))
      assert.isFalse(existsSync(join(older, "postgres", "PG_VERSION")))
    }), 180_000)
})

