/**
 * npm run bench: prints figures measured in one run on this machine; never
 * part of the test suite's pass/fail.
 *  1. normalization per venue and channel on recorded frames: JSON.parse alone,
 *     ours, tardis-dev and ccxt (bench/normalize.ts);
 *  2. end to end: flood venue -> whole service -> PostgreSQL and the embedded
 *     database (bench/e2e.ts);
 *  3. API: the three endpoints under concurrent load on 10M/1M rows (bench/api.ts).
 * Sections and sizes come from the environment (see README, "Benchmark").
 */
import { spawnSync } from "node:child_process"
import { cpus, totalmem } from "node:os"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { apiSection } from "./api.ts"
import { benchDatabaseUrl, benchE2eDatabaseUrl, ensureBenchDatabase } from "./database.ts"
import { e2eSection } from "./e2e.ts"
import { normalizeSection } from "./normalize.ts"
import { printTable } from "./report.ts"

const env = (name: string, fallback: string) => process.env[name] ?? fallback
const log = (line: string) => console.error(line)

/**
 * Each section (and each database of section 2) runs in a fresh child
 * process, so one's loaded modules and heap do not count in another's RSS.
 */
const child = process.env.BENCH_CHILD
if (child === undefined) {
  const cpu = cpus()
  console.log(`node ${process.version}, ${cpu.length} cores (${cpu[0]?.model}), ${(totalmem() / 2 ** 30).toFixed(1)} GB, ${new Date().toISOString()}`)
  const sections = env("BENCH_SECTIONS", "normalize,e2e,api").split(",").map((s) => s.trim())
  const e2eTargets = env("BENCH_E2E_DATABASES", "postgres,embedded,pglite").split(",").map((s) => s.trim())
  const children = sections.flatMap((section) => (section === "e2e" ? e2eTargets.map((t) => `e2e:${t}`) : [section]))
  for (const name of children) {
    const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], { stdio: "inherit", env: { ...process.env, BENCH_CHILD: name } })
    if (result.status !== 0) {
      console.error(`bench section ${name} failed (exit ${result.status})`)
      process.exit(1)
    }
  }
  process.exit(0)
}

if (child === "normalize") {
  printTable(normalizeSection(Number(env("BENCH_FRAMES_PER_RUN", "20000")), process.env.BENCH_ONLY))
}

if (child.startsWith("e2e:")) {
  const name = child.slice(4)
  const url = name === "postgres" ? benchE2eDatabaseUrl : undefined
  if (url !== undefined) await ensureBenchDatabase(url)
  const paces = env("BENCH_E2E_PACES", "25000,50000,75000,max").split(",").map((p) => (p.trim() === "max" ? 0 : Number(p)))
  // embedded: the default embedded database (the PostgreSQL child process); pglite: PGlite in-process.
  const engine = name === "pglite" ? { engine: "pglite" as const } : {}
  printTable(await e2eSection({ name, url, ...engine }, paces, Number(env("BENCH_E2E_STEP_SECONDS", "10"))))
}

if (child === "api") {
  await ensureBenchDatabase(benchDatabaseUrl)
  const tables = await Effect.runPromise(apiSection(
    benchDatabaseUrl,
    Number(env("BENCH_API_CONNECTIONS", "10")),
    Number(env("BENCH_API_SECONDS", "10")),
    log
  ))
  for (const table of tables) printTable(table)
}

process.exit(0)
