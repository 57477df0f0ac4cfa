/**
 * The dashboard at `/`: static files from the repository's `web/` folder and
 * uPlot from its npm package (nothing from a CDN, nothing fetched at run
 * time). Read once at start-up; served with their length and a short cache.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"

const require = createRequire(import.meta.url)
const web = new URL("../../web/", import.meta.url).pathname

const files: ReadonlyArray<readonly [string, string, string]> = [
  ["/", `${web}index.html`, "text/html; charset=utf-8"],
  ["/app.js", `${web}app.js`, "text/javascript; charset=utf-8"],
  ["/style.css", `${web}style.css`, "text/css; charset=utf-8"],
  ["/vendor/uplot.js", require.resolve("uplot/dist/uPlot.iife.min.js"), "text/javascript; charset=utf-8"],
  ["/vendor/uplot.css", require.resolve("uplot/dist/uPlot.min.css"), "text/css; charset=utf-8"]
]

/** The dashboard's paths (the API's 404/405 fallback knows them). */
export const dashboardPaths: ReadonlySet<string> = new Set(files.map(([path]) => path))

const route = ([path, file, contentType]: readonly [string, string, string]) => {
  const body = readFileSync(file)
  return HttpRouter.add("GET", path as `/${string}`, HttpServerResponse.uint8Array(body, { contentType, headers: { "cache-control": "max-age=60" } }))
}

export const DashboardRoutes = Layer.mergeAll(route(files[0]!), ...files.slice(1).map(route))
