/**
 * The real service as a user runs it (`node src/main.ts`, its own process) and
 * what the bench reads of it from outside: RSS and CPU time of the process, the
 * PSS and CPU time of its children (a database it started, if any) from /proc, and from its own
 * /metrics the event-loop delay windows (src/observability/event-loop.ts) and
 * the frames its feeds received.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import { median } from "./report.ts"

const mainScript = fileURLToPath(new URL("../src/main.ts", import.meta.url))
const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100

export const freeLoopbackPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const childrenOf = (pid: number): Array<number> => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((s) => s.length > 0).map(Number)
      .flatMap((child) => [child, ...childrenOf(child)])
  } catch {
    return []
  }
}

/** Resident set size in bytes (VmRSS), 0 once the process is gone. */
const rssOf = (pid: number): number => {
  try {
    const line = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return line === null ? 0 : Number(line[1]) * 1024
  } catch {
    return 0
  }
}

/**
 * Proportional set size in bytes (Pss of smaps_rollup): a database server's
 * processes share its buffer cache, which RSS would count once per process.
 */
const pssOf = (pid: number): number => {
  try {
    const line = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))
    return line === null ? 0 : Number(line[1]) * 1024
  } catch {
    return 0
  }
}

/** User + system CPU time in seconds. */
const cpuOf = (pid: number): number => {
  try {
    // The command name (field 2) may hold spaces: count fields from after its closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  } catch {
    return 0
  }
}

export interface ProcessSample {
  /** performance.now() of the sample. */
  readonly at: number
  readonly serviceRss: number
  /** The PSS of every process the service started (the embedded PostgreSQL server and its backends), summed. */
  readonly childrenRss: number
  readonly cpuSeconds: number
}

export const sampleProcess = (pid: number): ProcessSample => {
  const children = childrenOf(pid)
  return {
    at: performance.now(),
    serviceRss: rssOf(pid),
    childrenRss: children.reduce((sum, child) => sum + pssOf(child), 0),
    cpuSeconds: cpuOf(pid) + children.reduce((sum, child) => sum + cpuOf(child), 0)
  }
}

/** RSS of a Node process that loads nothing: the floor every RSS figure is divided by. */
export const bareNodeRss = (): number =>
  Number(execFileSync(process.execPath, ["-e", "setTimeout(() => console.log(process.memoryUsage().rss), 200)"], { encoding: "utf8" }).trim())

/** The metrics the bench reads: one value per series, keyed by the series as printed ("name{labels}"). */
export const parseMetrics = (text: string): Map<string, number> => {
  const series = new Map<string, number>()
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.length === 0) continue
    const space = line.lastIndexOf(" ")
    series.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return series
}

const sumOf = (metrics: Map<string, number>, name: string) => {
  let sum = 0
  for (const [key, value] of metrics) if (key === name || key.startsWith(`${name}{`)) sum += value
  return sum
}

export interface DelayWindow {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface ServiceProcess {
  readonly child: ChildProcess
  readonly port: number
  readonly metrics: () => Promise<Map<string, number>>
  /** SIGTERM, then waits for the exit (the writer drains first). */
  readonly stop: () => Promise<void>
}

export const startServiceProcess = async (env: Record<string, string>): Promise<ServiceProcess> => {
  const port = await freeLoopbackPort()
  const child = spawn(process.execPath, [mainScript], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", LOG_LEVEL: "Warn", ...env, PORT: String(port), HOST: "127.0.0.1" },
    // Its log (warnings and up) on the bench's stderr: stdout keeps the tables.
    stdio: ["ignore", 2, 2]
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 120_000
  while (true) {
    if (child.exitCode !== null) throw new Error(`the service exited at start (code ${child.exitCode})`)
    const ok = await fetch(`${base}/health`).then((r) => r.status < 500, () => false)
    if (ok) break
    if (Date.now() > deadline) throw new Error("the service did not answer /health within 120 s")
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return {
    child,
    port,
    metrics: async () => parseMetrics(await (await fetch(`${base}/metrics`)).text()),
    stop: async () => {
      child.kill("SIGTERM")
      await exited
    }
  }
}

export interface WindowMeasure {
  readonly seconds: number
  readonly samples: ReadonlyArray<ProcessSample>
  /** Event-loop delay windows (10 s each) that closed during the measurement. */
  readonly delays: ReadonlyArray<DelayWindow>
  /** Frames the service's feeds received during it (feed_messages_total). */
  readonly frames: number
}

/** Samples the process every second and /metrics every 2 s for `seconds`. */
export const measureWindow = async (service: ServiceProcess, seconds: number): Promise<WindowMeasure> => {
  const pid = service.child.pid!
  const samples: Array<ProcessSample> = [sampleProcess(pid)]
  const delays: Array<DelayWindow> = []
  const first = await service.metrics()
  let windows = sumOf(first, "event_loop_delay_windows_total")
  const started = performance.now()
  let lastMetrics = first
  while (performance.now() - started < seconds * 1000) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    samples.push(sampleProcess(pid))
    if (samples.length % 2 === 0) {
      lastMetrics = await service.metrics()
      const now = sumOf(lastMetrics, "event_loop_delay_windows_total")
      if (now !== windows) {
        windows = now
        delays.push({
          p50: lastMetrics.get('event_loop_delay_ms{quantile="0.5"}') ?? Number.NaN,
          p99: lastMetrics.get('event_loop_delay_ms{quantile="0.99"}') ?? Number.NaN,
          max: lastMetrics.get('event_loop_delay_ms{quantile="1"}') ?? Number.NaN
        })
      }
    }
  }
  lastMetrics = await service.metrics()
  return {
    seconds: (performance.now() - started) / 1000,
    samples,
    delays,
    frames: sumOf(lastMetrics, "feed_messages_total") - sumOf(first, "feed_messages_total")
  }
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0)

/**
 * The printed summary of a window: frames/s, CPU share of one core, RSS
 * (median and peak, service and children), each RSS over a bare Node's, and
 * the loop delay (median of the windows' p50, largest p99 and maximum).
 */
export const summarize = (measure: WindowMeasure, bareRss: number): {
  readonly cells: Array<string>
  readonly cpuShare: number
  readonly p99: number
} => {
  const { samples } = measure
  const first = samples[0]!
  const last = samples[samples.length - 1]!
  const cpuShare = (last.cpuSeconds - first.cpuSeconds) / ((last.at - first.at) / 1000)
  const rss = samples.map((s) => s.serviceRss)
  const childRss = samples.map((s) => s.childrenRss)
  const peak = Math.max(...rss)
  const p50 = median(measure.delays.map((d) => d.p50))
  const p99 = Math.max(...measure.delays.map((d) => d.p99))
  const max = Math.max(...measure.delays.map((d) => d.max))
  const delay = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(1) : "n/a")
  return {
    cpuShare,
    p99,
    cells: [
      Math.round(measure.frames / measure.seconds).toLocaleString("en-US"),
      `${(cpuShare * 100).toFixed(1)}%`,
      mb(median(rss)),
      mb(peak),
      `${(peak / bareRss).toFixed(2)}x`,
      mb(Math.max(...childRss)),
      delay(p50),
      delay(p99),
      delay(max),
      String(measure.delays.length)
    ]
  }
}

export const summaryHeader = [
  "frames/s",
  "CPU of 1 core",
  "RSS MB",
  "peak RSS MB",
  "peak/bare node",
  "children PSS MB",
  "loop p50 ms",
  "loop p99 ms",
  "loop max ms",
  "10 s windows"
]
