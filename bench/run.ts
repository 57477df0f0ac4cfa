/**
 * npm run bench: prints figures measured in one run on this machine; never
 * part of the test suite's pass/fail.
 *  1. normalization per venue and channel on recorded frames: JSON.parse alone,
 *     ours, tardis-dev and ccxt (bench/normalize.ts);
 *  2. end to end: flood venue -> whole service -> PostgreSQL and the embedded
 *     database (bench/e2e.ts), beside JSON.parse alone on the same frames;
 *  3. API: the three endpoints under concurrent load on 10M/1M rows (bench/api.ts),
 *     beside a `SELECT 1` round trip;
 *  4. the default configuration at recorded pace, the service in its own process (bench/default.ts);
 *  5. the whole universe at recorded per-instrument rates, scaled (bench/universe.ts).
 * The run is written to bench/results/<start time>.json (bench/results.ts).
 *
 *   npm run bench -- --only e2e,default     sections (or one database of one: e2e:postgres)
 *   npm run bench -- --compare <file>       the run, then its change from an earlier one
 *   npm run bench -- --compare <a> --with <b>   no run: the change from a to b
 * Sizes come from the environment (see README, "Benchmark").
 */
import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { cpus, tmpdir, totalmem } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { apiSection } from "./api.ts"
import { parseRate, selectOneLatency, withRatio } from "./baselines.ts"
import { benchDatabaseUrl, benchE2eDatabaseUrl, ensureBenchDatabase } from "./database.ts"
import { defaultSection } from "./default.ts"
import { e2eSection, e2eSymbols } from "./e2e.ts"
import { floodFrames } from "./flood-frames.ts"
import { normalizeSection } from "./normalize.ts"
import { printTable, type Table } from "./report.ts"
import { type BenchRun, compareRuns, resultFileName, type SectionResult } from "./results.ts"
import { bareNodeRss } from "./service-process.ts"
import { universeSection } from "./universe.ts"

const env = (name: string, fallback: string) => process.env[name] ?? fallback
const list = (text: string) => text.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
const log = (line: string) => console.error(line)
const readRun = (path: string) => JSON.parse(readFileSync(path, "utf8")) as BenchRun

/**
 * Each section (and each database of sections 2, 4 and 5) runs in a fresh
 * child process, so one's loaded modules and heap do not count in another's
 * RSS; each writes its tables to a file the parent gathers into the run's JSON.
 */
const child = process.env.BENCH_CHILD
if (child === undefined) {
  const args = process.argv.slice(2)
  const option = (name: string) => {
    const at = args.indexOf(name)
    return at < 0 ? undefined : args[at + 1]
  }
  const earlier = option("--compare")
  const later = option("--with")
  if (earlier !== undefined && later !== undefined) {
    printTable(compareRuns(readRun(earlier), readRun(later)))
    process.exit(0)
  }
  const started = new Date()
  const cpu = cpus()
  const machine = `node ${process.version}, ${cpu.length} cores (${cpu[0]?.model}), ${(totalmem() / 2 ** 30).toFixed(1)} GB`
  console.log(`${machine}, ${started.toISOString()}`)
  const sections = list(option("--only") ?? env("BENCH_SECTIONS", "normalize,e2e,api,default,universe"))
  const databases: Record<string, ReadonlyArray<string>> = {
    e2e: list(env("BENCH_E2E_DATABASES", "postgres,embedded,pglite")),
    default: list(env("BENCH_DEFAULT_DATABASES", "postgres,embedded")),
    universe: list(env("BENCH_UNIVERSE_DATABASES", "postgres"))
  }
  const children = sections.flatMap((section) => (databases[section] === undefined ? [section] : databases[section].map((d) => `${section}:${d}`)))
  const scratch = mkdtempSync(join(tmpdir(), "mds-bench-run-"))
  const results: Array<SectionResult> = []
  // A section that fails is reported and the others still run; the run then exits 1.
  const failed: Array<string> = []
  for (const name of children) {
    const file = join(scratch, `${name.replace(":", "-")}.json`)
    const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], { stdio: "inherit", env: { ...process.env, BENCH_CHILD: name, BENCH_RESULT_FILE: file } })
    if (result.status !== 0) {
      console.error(`bench section ${name} failed (exit ${result.status})`)
      failed.push(name)
      continue
    }
    results.push(JSON.parse(readFileSync(file, "utf8")) as SectionResult)
  }
  rmSync(scratch, { recursive: true, force: true })
  const run: BenchRun = { format: 1, startedAt: started.toISOString(), machine, sections: results }
  const directory = fileURLToPath(new URL("./results/", import.meta.url))
  mkdirSync(directory, { recursive: true })
  const path = join(directory, resultFileName(started))
  writeFileSync(path, `${JSON.stringify(run, null, 2)}\n`)
  console.log(`\nwritten: ${path}`)
  if (earlier !== undefined) printTable(compareRuns(readRun(earlier), run))
  if (failed.length > 0) console.log(`failed sections (not in the file): ${failed.join(", ")}`)
  process.exit(failed.length > 0 ? 1 : 0)
}

const tables: Array<Table> = []
const emit = (table: Table) => {
  printTable(table)
  tables.push(table)
}
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`

if (child === "normalize") {
  emit(normalizeSection(Number(env("BENCH_FRAMES_PER_RUN", "20000")), process.env.BENCH_ONLY))
}

if (child.startsWith("e2e:")) {
  const name = child.slice(4)
  const url = name === "postgres" ? benchE2eDatabaseUrl : undefined
  if (url !== undefined) await ensureBenchDatabase(url)
  const paces = env("BENCH_E2E_PACES", "25000,50000,75000,max").split(",").map((p) => (p.trim() === "max" ? 0 : Number(p)))
  // Baselines of this run: JSON.parse alone on the flood's own frames, and a bare Node's RSS.
  const parsed = parseRate(floodFrames(e2eSymbols, 200_000))
  const bare = bareNodeRss()
  // embedded: the default embedded database (the PostgreSQL child process); pglite: PGlite in-process.
  const engine = name === "pglite" ? { engine: "pglite" as const } : {}
  const table = await e2eSection({ name, url, ...engine }, paces, Number(env("BENCH_E2E_STEP_SECONDS", "10")))
  emit({
    ...withRatio(withRatio(table, "sustained/s", "over parse", parsed), "peak RSS MB", "over bare node", bare / 2 ** 20),
    notes: [...(table.notes ?? []), `over parse: sustained / JSON.parse alone on the same frames in this process (${Math.round(parsed).toLocaleString("en-US")} frames/s); over bare node: peak RSS / a bare Node process's (${mb(bare)})`]
  })
}

if (child === "api") {
  await ensureBenchDatabase(benchDatabaseUrl)
  const connections = Number(env("BENCH_API_CONNECTIONS", "10"))
  const apiTables = await Effect.runPromise(apiSection(benchDatabaseUrl, connections, Number(env("BENCH_API_SECONDS", "10")), log))
  // The baseline after the load, on the same database and with the same concurrency: what one round trip costs here today.
  const selectOne = await Effect.runPromise(selectOneLatency(benchDatabaseUrl, connections, 5))
  for (const table of apiTables) {
    // The endpoints' table brings its own SELECT 1 floor (bench/api.ts); the others get this one.
    if (table.header.some((column) => column.includes("SELECT 1"))) {
      emit(table)
      continue
    }
    const ratios = withRatio(withRatio(table, "p99 ms", "p99 over SELECT 1", selectOne.p99), "p50 ms", "p50 over SELECT 1", selectOne.p50)
    emit({
      ...ratios,
      notes: [...(table.notes ?? []), `over SELECT 1: latency / a SELECT 1 round trip from ${connections} loops at once in this run (p50 ${selectOne.p50.toFixed(2)} ms, p99 ${selectOne.p99.toFixed(2)} ms, ${selectOne.count} round trips)`]
    })
  }
}

if (child.startsWith("default:")) {
  const name = child.slice(8)
  const url = name === "postgres" ? benchE2eDatabaseUrl : undefined
  if (url !== undefined) await ensureBenchDatabase(url)
  emit(await defaultSection({ name, url }, Number(env("BENCH_DEFAULT_SECONDS", "60"))))
}

if (child.startsWith("universe:")) {
  const name = child.slice(9)
  const url = name === "postgres" ? benchE2eDatabaseUrl : undefined
  if (url !== undefined) await ensureBenchDatabase(url)
  const scales = list(env("BENCH_UNIVERSE_SCALES", "0.5,1,2,4")).map(Number)
  emit(await universeSection({ name, url }, scales, Number(env("BENCH_UNIVERSE_STEP_SECONDS", "20"))))
}

const resultFile = process.env.BENCH_RESULT_FILE
if (resultFile !== undefined) writeFileSync(resultFile, JSON.stringify({ section: child, tables } satisfies SectionResult))
process.exit(0)
