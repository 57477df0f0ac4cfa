/**
 * Applies the numbered `.sql` files of `migrations/` once each, in order, at
 * start-up (effect's Migrator records them in `effect_sql_migrations`). The
 * driver runs one statement per message, so each file is split on statement ends.
 */
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import { Migrator, SqlClient, type SqlError } from "effect/sql"

export const migrationsDirectory = new URL("../../migrations/", import.meta.url).pathname

/**
 * Splits on `;` at the end of a line, skipping `--` comment lines, except
 * inside a `$$`-quoted body (a function's statements end lines too).
 */
export const splitStatements = (text: string): Array<string> => {
  const statements: Array<string> = []
  let current: Array<string> = []
  let quoted = false
  for (const line of text.split("\n")) {
    if (!quoted && line.trim().startsWith("--")) continue
    current.push(line)
    if ((line.match(/\$\$/g)?.length ?? 0) % 2 === 1) quoted = !quoted
    if (!quoted && /;\s*$/.test(line)) {
      statements.push(current.join("\n").replace(/;\s*$/, "").trim())
      current = []
    }
  }
  statements.push(current.join("\n").trim())
  return statements.filter((statement) => statement.length > 0)
}

const untimed = ["SET LOCAL statement_timeout = 0", "SET LOCAL lock_timeout = 0"]

export const sqlFileLoader = (directory: string): Migrator.Loader =>
  Effect.tryPromise({
    try: async () => {
      const files = (await readdir(directory)).filter((file) => /^\d+_.+\.sql$/.test(file)).sort()
      return Promise.all(files.map(async (file) => {
        const [, id, name] = /^(\d+)_(.+)\.sql$/.exec(file)!
        const statements = splitStatements(await readFile(join(directory, file), "utf8"))
        // Migrations run on the writer's pool, whose lock and statement timeouts (seconds) suit a batch insert,
        // not a rewrite of a populated table: lifted for the migration's own transaction only.
        const run = SqlClient.SqlClient.use((sql) =>
          Effect.forEach([...untimed, ...statements], (statement) => sql.unsafe(statement).unprepared, { discard: true })
        )
        return [Number(id), name!, Effect.succeed(run)] as const
      }))
    },
    catch: (cause) => new Migrator.MigrationError({ kind: "ImportError", message: `cannot read ${directory}`, cause })
  })

/**
 * effect's Migrator applies only migrations numbered above the highest one
 * recorded. A database that ran a branch with a later number first (a
 * developer's, or one upgraded out of order) would skip an earlier file for
 * good: so after the Migrator, every file not recorded is applied too, in
 * order, each in a transaction with its record. Returns what was applied.
 */
export const runMigrations = (directory: string = migrationsDirectory) =>
  Effect.gen(function*() {
    const applied = yield* Migrator.make({})({ loader: sqlFileLoader(directory) })
    const sql = yield* SqlClient.SqlClient
    const recorded = new Set((yield* sql<{ migration_id: number }>`SELECT migration_id FROM effect_sql_migrations`).map((r) => Number(r.migration_id)))
    const late: Array<readonly [number, string]> = []
    const files = (yield* sqlFileLoader(directory)) as ReadonlyArray<
      readonly [number, string, Effect.Effect<Effect.Effect<unknown, SqlError.SqlError, SqlClient.SqlClient>>]
    >
    for (const [id, name, load] of files) {
      if (recorded.has(id)) continue
      const run = yield* load
      // Under the Migrator's own lock, and checked again under it: two services starting at once apply a file once.
      const applied = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`LOCK TABLE effect_sql_migrations IN ACCESS EXCLUSIVE MODE`
        if ((yield* sql`SELECT 1 FROM effect_sql_migrations WHERE migration_id = ${id}`).length > 0) return false
        yield* run
        yield* sql`INSERT INTO effect_sql_migrations (migration_id, name) VALUES (${id}, ${name})`
        return true
      }))
      if (applied) late.push([id, name])
    }
    return [...applied, ...late]
  })
