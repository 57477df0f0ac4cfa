/** The service's name and version (package.json), as it introduces itself to venues. */
import { readFileSync } from "node:fs"

const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { readonly name: string; readonly version: string }

export const serviceVersion = manifest.version
/** Sent as User-Agent on every REST call: some venues (Coinbase) refuse requests without one. */
export const defaultUserAgent = `${manifest.name}/${manifest.version}`
