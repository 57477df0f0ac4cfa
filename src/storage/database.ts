/**
 * The database: a real PostgreSQL when DATABASE_URL is set, otherwise an embedded
 * one under DATA_DIR: a PostgreSQL child process from npm-packaged binaries
 * (child-postgres.ts, DATA_DIR/postgres), or PGlite in-process served over a
 * loopback socket (DATA_DIR/pg). Every one is reached by the same @effect/sql-pg
 * client, so all run the same SQL down the same path.
 */
import { existsSync, mkdirSync } from "node:fs"
import { PGlite } from "@electric-sql/pglite"
import { PgClient } from "@effect/sql-pg"
import { Config, Context, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient } from "effect/sql"
import { startChildPostgres } from "./child-postgres.ts"
import { serveEmbedded } from "./embedded-server.ts"
import { runMigrations } from "./migrations.ts"

/** How to reach the database: a URL, or the embedded server's loopback port. */
type Target = { readonly url: Redacted.Redacted } | { readonly host: string; readonly port: number; readonly database: string; readonly username: string }

export class DatabaseInfo extends Context.Service<DatabaseInfo, {
  readonly kind: "postgres" | "embedded"
  /** Where it lives, without credentials. */
  readonly location: string
  /** For the pools beside the writer's (the API's reads, the health probe). */
  readonly target: Target
}>()("market-data/storage/DatabaseInfo") {}

const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    parsed.password = parsed.password ? "***" : ""
    return parsed.toString()
  } catch {
    return "postgres (unparsable URL)"
  }
}

/** Starts PGlite and the wire in front of it (embedded-server.ts) for as long as the scope lives. */
export const startEmbeddedPostgres = (dataDir: string | undefined) =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true })
        const db = await PGlite.create(dataDir === undefined ? {} : { dataDir })
        // PostgreSQL's default lets pg_wal grow to 1 GB; keep an embedded store small. Applies from the next start.
        if (dataDir !== undefined) await db.query("ALTER SYSTEM SET max_wal_size = '256MB'")
        return db
      }),
      (db) => Effect.promise(() => db.close())
    )
    // The writer's pool, the API's read pool and the health probe all connect here.
    const { port } = yield* serveEmbedded(db).pipe(Effect.orDie)
    return { db, port }
  })

/**
 * The writer's pool (the sink of record): API reads have their own, so they
 * never starve it. A table locked by someone else, or a statement that hangs,
 * ends in an error the writer holds its batch through and retries
 * (`WRITER_LOCK_TIMEOUT_MS`, `WRITER_STATEMENT_TIMEOUT_MS`), never in a
 * writer stuck for good.
 */
const WriterPoolTimeouts = Config.all({
  lockTimeoutMs: Config.Int("WRITER_LOCK_TIMEOUT_MS").pipe(Config.withDefault(10_000)),
  statementTimeoutMs: Config.Int("WRITER_STATEMENT_TIMEOUT_MS").pipe(Config.withDefault(60_000))
})
const writerPool = (target: Target) =>
  Layer.unwrap(Effect.gen(function*() {
    const timeouts = yield* WriterPoolTimeouts
    return PgClient.layer({
      ...target,
      maxConnections: 4,
      connectTimeout: "5 seconds",
      applicationName: "market-data-writer",
      startupParameters: { lock_timeout: String(timeouts.lockTimeoutMs), statement_timeout: String(timeouts.statementTimeoutMs) }
    })
  }))

export const postgresLayer = (url: string) => {
  const target = { url: Redacted.make(url) }
  return Layer.merge(
    writerPool(target),
    Layer.succeed(DatabaseInfo, DatabaseInfo.of({ kind: "postgres", location: redactUrl(url), target }))
  )
}

export const embeddedLayer = (dataDir: string | undefined) =>
  Layer.unwrap(Effect.gen(function*() {
    const { port } = yield* startEmbeddedPostgres(dataDir)
    const target = { host: "127.0.0.1", port, database: "postgres", username: "postgres" }
    return Layer.merge(
      writerPool(target),
      Layer.succeed(DatabaseInfo, DatabaseInfo.of({ kind: "embedded", location: dataDir ?? "in-memory", target }))
    )
  }))

/** The embedded PostgreSQL child process on `directory` (created on first use), stopped when the scope ends. */
export const childPostgresLayer = (directory: string) =>
  Layer.unwrap(Effect.gen(function*() {
    const { port, cluster } = yield* startChildPostgres(directory)
    const target = { host: "127.0.0.1", port, database: "postgres", username: "postgres" }
    return Layer.merge(
      writerPool(target),
      Layer.succeed(DatabaseInfo, DatabaseInfo.of({ kind: "embedded", location: `${cluster} (PostgreSQL child process on 127.0.0.1:${port})`, target }))
    )
  }))

/**
 * Which embedded database, without DATABASE_URL. Unset: a PGlite store already
 * in DATA_DIR/pg stays in use (its files are not PostgreSQL 18's; moving them
 * is a dump and restore); otherwise the PostgreSQL child process, or PGlite
 * where it cannot start (no binaries for the platform, a musl libc).
 */
export const EmbeddedDatabase = Config.schema(Schema.Literals(["postgres", "pglite"]), "EMBEDDED_DATABASE").pipe(Config.option)

export const embeddedDatabaseLayer = (dataDir: string, choice: Option.Option<"postgres" | "pglite">) => {
  const pgliteDir = `${dataDir}/pg`
  const postgresDir = `${dataDir}/postgres`
  if (Option.isSome(choice)) return choice.value === "pglite" ? embeddedLayer(pgliteDir) : childPostgresLayer(postgresDir)
  if (existsSync(`${pgliteDir}/PG_VERSION`) && !existsSync(`${postgresDir}/PG_VERSION`)) return embeddedLayer(pgliteDir)
  return childPostgresLayer(postgresDir).pipe(
    Layer.catchTag("ChildPostgresError", (error) =>
      Layer.unwrap(Effect.logWarning(`the embedded PostgreSQL could not start (${error.message}); using PGlite in-process instead (about 350 MB more memory)`).pipe(
        Effect.as(embeddedLayer(pgliteDir))
      )))
  )
}

/**
 * The API's own pool, beside the writer's: its queries can be slow or many,
 * and must never hold the writer up. Every statement on it is cut off after
 * `API_STATEMENT_TIMEOUT_SECONDS` (PostgreSQL's statement_timeout), so one
 * runaway query cannot hold a connection for long.
 */
export const readPoolLayer = (options: { readonly connections: number; readonly statementTimeoutMs: number }) =>
  Layer.unwrap(DatabaseInfo.use((info) =>
    Effect.succeed(PgClient.layer({
      ...info.target,
      maxConnections: options.connections,
      connectTimeout: "5 seconds",
      applicationName: "market-data-api",
      startupParameters: { statement_timeout: String(Math.round(options.statementTimeoutMs)) }
    }))))

/**
 * A database check that never queues behind queries: one connection of its
 * own, used by /health alone, answering within `timeout` or not at all.
 */
export class DatabaseProbe extends Context.Service<DatabaseProbe, {
  readonly reachable: Effect.Effect<boolean>
}>()("market-data/storage/DatabaseProbe") {
  static readonly layer = (timeout: Duration.Input) =>
    Layer.effect(DatabaseProbe, Effect.gen(function*() {
      const info = yield* DatabaseInfo
      const sql: SqlClient.SqlClient = yield* PgClient.make({ ...info.target, maxConnections: 1, connectTimeout: timeout, applicationName: "market-data-health" })
      return DatabaseProbe.of({
        reachable: sql`SELECT 1`.pipe(
          Effect.timeout(timeout),
          Effect.as(true),
          Effect.catchCause(() => Effect.succeed(false))
        )
      })
    })).pipe(Layer.provide(Reactivity.layer))
}

/** Chosen by configuration; migrations are applied before anything else uses it. */
export const DatabaseLive = Layer.unwrap(Effect.gen(function*() {
  const url = yield* Config.option(Config.String("DATABASE_URL"))
  const dataDir = yield* Config.String("DATA_DIR").pipe(Config.withDefault("./data"))
  const base = Option.isSome(url) && url.value.length > 0 ? postgresLayer(url.value) : embeddedDatabaseLayer(dataDir, yield* EmbeddedDatabase)
  return Layer.tap(base, (context) =>
    Effect.gen(function*() {
      const applied = yield* runMigrations().pipe(Effect.provideContext(context))
      if (applied.length > 0) yield* Effect.logInfo(`applied migrations: ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
    }))
}))
