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
import { cpus, totalmem } from "node:os"
import { Effect } from "effect"
import { apiSection } from "./api.ts"
import { benchDatabaseUrl, ensureBenchDatabase } from "./database.ts"
import { e2eSection } from "./e2e.ts"
import { normalizeSection } from "./normalize.ts"
import { printTable } from "./report.ts"

const env = (name: string, fallback: string) => process.env[name] ?? fallback
const sections = new Set(env("BENCH_SECTIONS", "normalize,e2e,api").split(",").map((s) => s.trim()))
const log = (line: string) => console.error(line)

const cpu = cpus()
console.log(`node ${process.version}, ${cpu.length} cores (${cpu[0]?.model}), ${(totalmem() / 2 ** 30).toFixed(1)} GB, ${new Date().toISOString()}`)

if (sections.has("normalize")) {
  printTable(normalizeSection(Number(env("BENCH_FRAMES_PER_RUN", "20000")), process.env.BENCH_ONLY))
}

if (sections.has("e2e") || sections.has("api")) await ensureBenchDatabase(benchDatabaseUrl)

if (sections.has("e2e")) {
  const paces = env("BENCH_E2E_PACES", "25000,50000,75000,max").split(",").map((p) => (p.trim() === "max" ? 0 : Number(p)))
  const targets = [
    { name: "postgres", url: benchDatabaseUrl },
    { name: "embedded", url: undefined }
  ].filter((t) => env("BENCH_E2E_DATABASES", "postgres,embedded").includes(t.name))
  printTable(await e2eSection(targets, paces, Number(env("BENCH_E2E_STEP_SECONDS", "10"))))
}

if (sections.has("api")) {
  printTable(await Effect.runPromise(apiSection(
    benchDatabaseUrl,
    Number(env("BENCH_API_CONNECTIONS", "10")),
    Number(env("BENCH_API_SECONDS", "10")),
    log
  )))
}

process.exit(0)
