/**
 * npm run fixtures: the real captures the tests, the bench and the README's
 * replay examples read, for a clone that has no `../shared/fixtures` beside it.
 *
 * Where FIXTURES_DIR (default ../shared/fixtures) exists, nothing is fetched.
 * Otherwise every file of scripts/fixtures.sha256 is downloaded from its public
 * source (the cryptofeed repository's sample_data/, pinned to a commit per
 * folder) into FIXTURES_CACHE (default ./.fixtures, git-ignored), checked
 * against its SHA-256 before it is kept: a file that does not match is refused
 * and the command fails. Files already cached and intact are not fetched again.
 */
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"

const repositoryRoot = resolve(new URL("..", import.meta.url).pathname)

/** Each folder's public source: the repository path and the commit it is pinned to. */
export const sources: Record<string, { readonly commit: string; readonly path: string }> = {
  recorded: { commit: "ce58c2a0015040aa2271e80bac783d74fa2cdcff", path: "sample_data" },
  sessions: { commit: "57d5f18d6098f7aa294a3947796cc27d94c3a99c", path: "sample_data" }
}

export const defaultSourceUrl = "https://raw.githubusercontent.com/bmoscon/cryptofeed"

export interface ManifestEntry {
  readonly sha256: string
  /** `recorded/BINANCE.0` */
  readonly file: string
}

export const readManifest = (path = join(repositoryRoot, "scripts", "fixtures.sha256")): Array<ManifestEntry> =>
  readFileSync(path, "utf8").split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#")).map((line) => {
    const [sha256, file] = line.trim().split(/\s+/)
    return { sha256: sha256!, file: file! }
  })

const sha256Of = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

export interface FetchOutcome {
  readonly fetched: Array<string>
  readonly cached: Array<string>
  readonly refused: Array<{ readonly file: string; readonly reason: string }>
}

/** Downloads what is missing or damaged in `cacheDir`, keeping only files whose SHA-256 matches. */
export const fetchFixtures = async (options: {
  readonly cacheDir: string
  readonly sourceUrl: string
  readonly manifest: ReadonlyArray<ManifestEntry>
  readonly log?: (line: string) => void
}): Promise<FetchOutcome> => {
  const outcome: FetchOutcome = { fetched: [], cached: [], refused: [] }
  const log = options.log ?? (() => undefined)
  for (const { sha256, file } of options.manifest) {
    const target = join(options.cacheDir, file)
    if (existsSync(target) && sha256Of(readFileSync(target)) === sha256) {
      outcome.cached.push(file)
      continue
    }
    const folder = file.split("/")[0]!
    const source = sources[folder]
    if (source === undefined) {
      outcome.refused.push({ file, reason: `no public source for ${folder}/` })
      continue
    }
    const url = `${options.sourceUrl.replace(/\/$/, "")}/${source.commit}/${source.path}/${file.slice(folder.length + 1)}`
    let bytes: Uint8Array
    try {
      const response = await fetch(url)
      if (!response.ok) {
        outcome.refused.push({ file, reason: `HTTP ${response.status} from ${url}` })
        continue
      }
      bytes = new Uint8Array(await response.arrayBuffer())
    } catch (error) {
      outcome.refused.push({ file, reason: `${url}: ${(error as Error).message}` })
      continue
    }
    const actual = sha256Of(bytes)
    if (actual !== sha256) {
      outcome.refused.push({ file, reason: `SHA-256 ${actual} is not the expected ${sha256}: refused` })
      continue
    }
    mkdirSync(dirname(target), { recursive: true })
    // Written whole, then renamed: a file in the cache is always a verified one.
    writeFileSync(`${target}.partial`, bytes)
    renameSync(`${target}.partial`, target)
    outcome.fetched.push(file)
    log(`fetched ${file} (${bytes.length} bytes, SHA-256 verified)`)
  }
  return outcome
}

const main = async () => {
  const explicit = process.env.FIXTURES_DIR
  const shared = resolve(repositoryRoot, explicit ?? "../shared/fixtures")
  if (existsSync(join(shared, "recorded")) && existsSync(join(shared, "sessions"))) {
    console.log(`fixtures present at ${shared}; nothing to fetch`)
    return
  }
  const cacheDir = resolve(repositoryRoot, process.env.FIXTURES_CACHE ?? ".fixtures")
  console.log(`no fixtures at ${shared}: fetching into ${cacheDir}`)
  const outcome = await fetchFixtures({
    cacheDir,
    sourceUrl: process.env.FIXTURES_SOURCE_URL ?? defaultSourceUrl,
    manifest: readManifest(),
    log: console.log
  })
  console.log(`${outcome.fetched.length} fetched, ${outcome.cached.length} already cached, ${outcome.refused.length} refused`)
  for (const { file, reason } of outcome.refused) console.error(`refused ${file}: ${reason}`)
  if (outcome.refused.length > 0) process.exit(1)
}

if (import.meta.main) await main()
