/**
 * A load generator in a process of its own (so its work does not slow the
 * service it measures): `node load-client.ts <base> <seconds> <heavy clients>`.
 * Heavy clients loop a year-long funding summary (pausing briefly after a
 * shed, as a client honouring Retry-After would not even do); one client asks
 * a cheap query every 100 ms, one /health every 200 ms. Prints the samples as JSON.
 * Used by the load test and by the bench's overload case.
 */
const [base, seconds, clients] = process.argv.slice(2)

// No answer within 15 s (or a broken connection) is a sample too: status 0, the failure's name as its code.
const timed = async (url: string) => {
  const started = performance.now()
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(15_000) })
    const body = (await response.json()) as { error?: { code: string } }
    return { status: response.status, ms: performance.now() - started, code: body.error?.code, retryAfter: response.headers.get("retry-after") }
  } catch (error) {
    return { status: 0, ms: performance.now() - started, code: (error as Error).name, retryAfter: null }
  }
}

const loop = async (url: string, until: number, max: number, pauseMs: number, pauseAfterShedMs: number) => {
  const samples: Array<Awaited<ReturnType<typeof timed>>> = []
  while (performance.now() < until && samples.length < max) {
    const sample = await timed(url)
    samples.push(sample)
    const pause = sample.status === 503 ? pauseAfterShedMs : pauseMs
    if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause))
  }
  return samples
}

const until = performance.now() + Number(seconds) * 1000
const heavy = Array.from({ length: Number(clients) }, () => loop(`${base}/api/v1/exchange/funding-rates?hours=8760`, until, 500, 0, 50))
const cheap = loop(`${base}/api/v1/exchange/large-trades?hours=1`, until, 200, 100, 100)
const health = loop(`${base}/health`, until, 100, 200, 200)
process.stdout.write(JSON.stringify({ heavy: (await Promise.all(heavy)).flat(), cheap: await cheap, health: await health }))
