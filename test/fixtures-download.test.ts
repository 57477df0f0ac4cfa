/**
 * `npm run fixtures` against a local stand-in for the public source (nothing
 * here reaches the internet): files are fetched from their pinned commit's
 * path, kept only when their SHA-256 matches, a corrupt one is refused, and a
 * second run fetches nothing.
 */
import { createHash } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { fetchFixtures, readManifest, sources } from "../scripts/fixtures.ts"
import { fixturesDir } from "./support/fixtures.ts"

describe("npm run fixtures", () => {
  it("fetches from the pinned commits, verifies every file's SHA-256, refuses a corrupt one", async () => {
    const manifest = readManifest()
    assert.strictEqual(manifest.length, 28, "every capture the tests read")
    const wanted = manifest.filter((e) => ["recorded/DERIBIT.ws.1.0", "recorded/COINBASE.0", "sessions/COINBASE.jsonl.zst", "recorded/BINANCE.ws.1.0"].includes(e.file))
    const requested: Array<string> = []
    const server = createServer((req, res) => {
      requested.push(req.url ?? "")
      const match = /^\/([0-9a-f]{40})\/sample_data\/(.+)$/.exec(req.url ?? "")
      const folder = Object.entries(sources).find(([, s]) => s.commit === match?.[1])?.[0]
      if (match === null || folder === undefined || !existsSync(join(fixturesDir, folder, match[2]!))) return res.writeHead(404).end()
      const bytes = readFileSync(join(fixturesDir, folder, match[2]!))
      // One file arrives damaged: a byte flipped in transit (or a changed upstream file).
      if (match[2] === "BINANCE.ws.1.0") bytes[100] = bytes[100]! ^ 0xff
      res.writeHead(200).end(bytes)
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const sourceUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const cacheDir = mkdtempSync(join(tmpdir(), "mds-fixtures-"))
      const first = await fetchFixtures({ cacheDir, sourceUrl, manifest: wanted })
      assert.sameMembers(first.fetched, ["recorded/DERIBIT.ws.1.0", "recorded/COINBASE.0", "sessions/COINBASE.jsonl.zst"])
      assert.deepStrictEqual(first.refused.map((r) => r.file), ["recorded/BINANCE.ws.1.0"])
      assert.include(first.refused[0]!.reason, "SHA-256")
      assert.isFalse(existsSync(join(cacheDir, "recorded/BINANCE.ws.1.0")), "a refused file is never kept")
      assert.deepStrictEqual(readFileSync(join(cacheDir, "sessions/COINBASE.jsonl.zst")), readFileSync(join(fixturesDir, "sessions/COINBASE.jsonl.zst")))
      assert.isTrue(requested.includes(`/${sources.sessions!.commit}/sample_data/COINBASE.jsonl.zst`), "sessions from their pinned commit")
      assert.isTrue(requested.includes(`/${sources.recorded!.commit}/sample_data/DERIBIT.ws.1.0`), "recordings from theirs")
      const second = await fetchFixtures({ cacheDir, sourceUrl, manifest: wanted })
      assert.sameMembers(second.cached, first.fetched, "intact files are not fetched again")
      assert.deepStrictEqual(second.fetched, [])
      assert.strictEqual(second.refused.length, 1)
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  it("lists the captures the tests read, with their true SHA-256", () => {
    for (const { file, sha256 } of readManifest()) {
      assert.strictEqual(createHash("sha256").update(readFileSync(join(fixturesDir, file))).digest("hex"), sha256, file)
    }
  })
})
