/**
 * The database: a real PostgreSQL when DATABASE_URL is set, otherwise an embedded
 * PostgreSQL (PGlite) persisted under DATA_DIR and served over a loopback socket
 * to the same @effect/sql-pg client, so both run the same SQL down the same path.
 */
import { mkdirSync } from "node:fs"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { PgClient } from "@effect/sql-pg"
import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import { runMigrations } from "./migrations.ts"

export class DatabaseInfo extends Context.Service<DatabaseInfo, {
  readonly kind: "postgres" | "embedded"
  /** Where it lives, without credentials. */
  readonly location: string
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

/** Starts PGlite and a socket server in front of it for as long as the scope lives. */
export const startEmbeddedPostgres = (dataDir: string | undefined) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true })
      const db = await PGlite.create(dataDir === undefined ? {} : { dataDir })
      // PostgreSQL's default lets pg_wal grow to 1 GB; keep an embedded store small. Applies from the next start.
      if (dataDir !== undefined) await db.query("ALTER SYSTEM SET max_wal_size = '256MB'")
      const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 16 })
      await server.start()
      const [, port] = server.getServerConn().split(":")
      return { db, server, port: Number(port) }
    }),
    ({ db, server }) => Effect.promise(async () => {
      await server.stop()
      await db.close()
    })
  )

const poolOptions = { maxConnections: 4, connectTimeout: "5 seconds" } as const

export const postgresLayer = (url: string) =>
  Layer.merge(
    PgClient.layer({ url: Redacted.make(url), ...poolOptions }),
    Layer.succeed(DatabaseInfo, DatabaseInfo.of({ kind: "postgres", location: redactUrl(url) }))
  )

export const embeddedLayer = (dataDir: string | undefined) =>
  Layer.unwrap(Effect.gen(function*() {
    const { port } = yield* startEmbeddedPostgres(dataDir)
    return Layer.merge(
      PgClient.layer({ host: "127.0.0.1", port, database: "postgres", username: "postgres", ...poolOptions }),
      Layer.succeed(DatabaseInfo, DatabaseInfo.of({ kind: "embedded", location: dataDir ?? "in-memory" }))
    )
  }))

/** Chosen by configuration; migrations are applied before anything else uses it. */
export const DatabaseLive = Layer.unwrap(Effect.gen(function*() {
  const url = yield* Config.option(Config.String("DATABASE_URL"))
  const dataDir = yield* Config.String("DATA_DIR").pipe(Config.withDefault("./data"))
  const base = Option.isSome(url) && url.value.length > 0 ? postgresLayer(url.value) : embeddedLayer(`${dataDir}/pg`)
  return Layer.tap(base, (context) =>
    Effect.gen(function*() {
      const applied = yield* runMigrations().pipe(Effect.provideContext(context))
      if (applied.length > 0) yield* Effect.logInfo(`applied migrations: ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
    }))
}))
