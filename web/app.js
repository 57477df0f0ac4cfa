// The dashboard: plain JavaScript over the service's own API (the JSON endpoints and the
// /api/v1/stream Server-Sent Events). Charts by uPlot, served from its npm package.
"use strict"

const $ = (id) => document.getElementById(id)
const api = "/api/v1/exchange"
const fmtUsd = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0))
const fmtPct = (n, digits = 2) => `${n >= 0 ? "+" : ""}${n.toFixed(digits)}%`
const time = (iso) => new Date(iso).toISOString().slice(11, 19)
const el = (tag, attrs = {}, text) => {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  if (text !== undefined) node.textContent = text
  return node
}
const row = (cells, attrs = {}) => {
  const tr = el("tr", attrs)
  for (const [text, cls] of cells) tr.appendChild(el("td", cls ? { class: cls } : {}, text))
  return tr
}
const fill = (tbody, rows) => tbody.replaceChildren(...rows)

/** The filters, in the URL too, so a view can be shared. */
const filters = () => ({ symbol: $("symbol").value.trim().toUpperCase(), exchange: $("exchange").value, min: Number($("min").value) || 0 })
const query = (params) => {
  const f = filters()
  const q = new URLSearchParams(params)
  if (f.symbol) q.set("symbol", f.symbol)
  if (f.exchange) q.set("exchange", f.exchange)
  return q.toString()
}
const getJson = async (path) => {
  const response = await fetch(path)
  if (response.status === 401) showSignIn("the session has ended: sign in again")
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`)
  return response.json()
}

// ---------------------------------------------------------------- access (API_TOKENS)
// With API_TOKENS set, the page asks for a token once and trades it at POST /api/v1/session for a
// session cookie (HttpOnly, SameSite=Strict) that fetch and EventSource then send by themselves.
// The token is never kept by the page: not in the URL, not in localStorage, not readable by scripts.
let signedIn = false
const sessionOpen = () => fetch("/api/v1/session").then((r) => r.json()).then(({ data }) => !data.required || data.authenticated)
const showSignIn = (message = "") => {
  signedIn = false
  $("sign-in").style.display = "flex"
  $("sign-in-error").textContent = message
  if (document.activeElement !== $("token")) $("token").focus()
}
$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault()
  const response = await fetch("/api/v1/session", { method: "POST", headers: { authorization: `Bearer ${$("token").value.trim()}` } })
  if (!response.ok) {
    showSignIn(response.status === 429 ? "too many failed attempts: wait a minute" : "that token was refused")
    return
  }
  $("token").value = ""
  $("sign-in").style.display = "none"
  begin()
})

// ---------------------------------------------------------------- tape (stream)
// Rendering is throttled: events wait in a buffer and the table is redrawn at most every 250 ms,
// keeping the newest 100 rows, so a burst of trades never freezes the page.
const tapeRows = 100
let pending = []
let stream
const renderTape = () => {
  if (pending.length === 0) return
  const fresh = pending.slice(-tapeRows).reverse().map((t) =>
    row([[time(t.timestamp)], [t.exchange], [t.symbol], [t.side, t.side], [String(t.size), "n"], [fmtUsd(t.value_usd), "n"]], {
      ...(t.is_liquidation ? { class: "liq" } : {}),
      "data-trade": `${t.exchange}/${t.symbol}/${t.trade_id}`
    }))
  pending = []
  const tbody = $("tape")
  tbody.prepend(...fresh)
  while (tbody.children.length > tapeRows) tbody.lastElementChild.remove()
}
setInterval(() => requestAnimationFrame(renderTape), 250)

const connectStream = () => {
  stream?.close()
  const f = filters()
  const params = { kinds: "large_trade,liquidation,funding,feed_state,gap" }
  if (f.min > 0) params.min_value_usd = String(f.min)
  stream = new EventSource(`/api/v1/stream?${query(params)}`)
  $("tape-json").href = `${api}/large-trades?${query({ hours: "1" })}`
  stream.onopen = () => { $("stream-state").textContent = "live" }
  stream.onerror = () => {
    $("stream-state").textContent = "reconnecting"
    // A refused stream is not retried by the browser: if the session has ended, ask for the token again.
    if (stream.readyState === EventSource.CLOSED) sessionOpen().then((open) => open || showSignIn("the session has ended: sign in again")).catch((e) => console.warn(String(e)))
  }
  const trade = (e) => pending.push(JSON.parse(e.data))
  stream.addEventListener("large_trade", trade)
  stream.addEventListener("liquidation", trade)
  stream.addEventListener("feed_state", (e) => feedState(JSON.parse(e.data)))
  stream.addEventListener("funding", (e) => fundingUpdate(JSON.parse(e.data)))
  stream.addEventListener("gap", () => scheduleGaps())
  stream.addEventListener("dropped", (e) => { $("stream-state").textContent = `dropped: ${JSON.parse(e.data).reason}` })
}

// ---------------------------------------------------------------- feed health
const feeds = new Map()
const feedState = (f) => {
  const known = feeds.get(f.feed) ?? { feed: f.feed, last_message_age_ms: null, reconnects: 0 }
  feeds.set(f.feed, { ...known, state: f.state, reconnects: f.reconnects ?? known.reconnects })
  renderFeeds()
}
const renderFeeds = () => fill($("feeds"), [...feeds.values()].sort((a, b) => a.feed.localeCompare(b.feed)).map((f) =>
  row([
    [f.feed],
    [f.state, f.state === "connected" ? "state-connected" : "state-down"],
    [f.last_message_age_ms === null ? "-" : `${(f.last_message_age_ms / 1000).toFixed(1)} s`, "n"],
    [f.trade_lag_ms ? `${f.trade_lag_ms.p50_ms} ms` : "-", "n"],
    [String(f.reconnects), "n"]
  ], {
    "data-feed": f.feed,
    "data-state": f.state,
    ...(f.trade_lag_ms ? { title: `trade lag p50 ${f.trade_lag_ms.p50_ms} ms, p99 ${f.trade_lag_ms.p99_ms} ms, min ${f.trade_lag_ms.min_ms} ms` } : {})
  })))
/** Every configured venue, connected or not, with why it is not running (e.g. "failing: ... getaddrinfo ENOTFOUND ..."). */
const renderVenues = (states, reasons) => fill($("venues"), Object.entries(states).sort(([a], [b]) => a.localeCompare(b)).map(([venue, state]) => {
  const reason = reasons[venue]
  return row([[venue], [state, state === "running" ? "state-connected" : "state-down"], [reason ?? (state === "running" ? "connected" : "-"), "reason"]], { "data-venue": venue, "data-state": state })
}))
const refreshHealth = async () => {
  try {
    const health = await getJson("/health")
    renderVenues(health.venues ?? {}, health.venue_reasons ?? {})
    for (const f of health.feeds) feeds.set(f.feed, f)
    renderFeeds()
    const venues = new Set([...$("exchange").options].map((o) => o.value))
    for (const v of Object.keys(health.venues)) if (!venues.has(v)) $("exchange").appendChild(el("option", { value: v }, v))
  } catch (error) { console.warn(String(error)) }
}

// ---------------------------------------------------------------- funding
const funding = new Map()
const annualised = (f) => f.rate * (8760 / (f.metadata?.interval_hours || 8)) * 100
const fundingUpdate = (f) => {
  funding.set(`${f.exchange}/${f.symbol}`, f)
  renderFunding()
}
const renderFunding = () => fill($("funding"), [...funding.values()].sort((a, b) => a.symbol.localeCompare(b.symbol) || a.exchange.localeCompare(b.exchange)).map((f) =>
  row([[f.exchange], [f.symbol], [`${(f.rate * 100).toFixed(4)}%`, "n"], [fmtPct(annualised(f)), `n ${f.rate >= 0 ? "buy" : "sell"}`], [`${f.metadata?.interval_hours ?? 8} h`, "n"]], { "data-funding": `${f.exchange}/${f.symbol}` })))
const refreshFunding = async () => {
  const path = `${api}/funding-rates?${query({ hours: "24", limit: "1000" })}`
  $("funding-json").href = path
  const answer = await getJson(path)
  funding.clear()
  for (const f of [...answer.data.funding_rates].reverse()) funding.set(`${f.exchange}/${f.symbol}`, f)
  renderFunding()
}

// ---------------------------------------------------------------- charts
const charts = new Map()
const chart = (id, opts, data) => {
  const target = $(id)
  charts.get(id)?.destroy()
  if (data[0].length === 0) {
    target.replaceChildren(el("p", { class: "note" }, "no data in this window yet"))
    return
  }
  target.replaceChildren()
  charts.set(id, new uPlot({ width: Math.max(300, target.clientWidth), height: 200, ...opts }, data, target))
}
const palette = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf", "#e3b341", "#ff7b72"]

const refreshOpenInterest = async () => {
  const path = `${api}/open-interest?${query({ hours: "24", limit: "1000" })}`
  $("oi-json").href = path
  const rows = (await getJson(path)).data.open_interest
  const series = new Map()
  for (const r of rows) {
    const key = `${r.exchange} ${r.symbol}`
    if (!series.has(key)) series.set(key, new Map())
    series.get(key).set(Math.floor(Date.parse(r.timestamp) / 60000) * 60, r.open_interest_usd)
  }
  const keys = [...series.keys()].slice(0, 8)
  const times = [...new Set(keys.flatMap((k) => [...series.get(k).keys()]))].sort((a, b) => a - b)
  const now = Date.now() / 1000
  chart("oi-chart", {
    series: [{}, ...keys.map((k, i) => ({ label: k, stroke: palette[i % palette.length], spanGaps: true, points: { show: true, size: 4 }, value: (u, v) => (v == null ? "-" : fmtUsd(v)) }))],
    scales: { x: { range: () => [now - 86400, now] } },
    axes: [{}, { values: (u, vs) => vs.map(fmtUsd), size: 60 }]
  },
    [times, ...keys.map((k) => times.map((t) => series.get(k).get(t) ?? null))])
  const latest = new Map()
  for (const r of rows) if (!latest.has(`${r.exchange}/${r.symbol}`)) latest.set(`${r.exchange}/${r.symbol}`, r)
  fill($("oi"), [...latest.values()].map((r) => row([[r.exchange], [r.symbol], [r.open_interest.toLocaleString("en-US"), "n"], [fmtUsd(r.open_interest_usd), "n"]], { "data-oi": `${r.exchange}/${r.symbol}` })))
}

const refreshBasis = async () => {
  const path = `${api}/basis?hours=168&limit=1000`
  $("basis-json").href = path
  const rows = (await getJson(path)).data.basis
  const latest = new Map()
  for (const r of rows) if (!latest.has(r.symbol)) latest.set(r.symbol, r)
  const curve = [...latest.values()].sort((a, b) => a.days_to_expiry - b.days_to_expiry)
  fill($("basis"), curve.map((r) => row([[r.symbol], [r.days_to_expiry.toFixed(0), "n"], [fmtPct(r.basis_percent), "n"], [r.annualized_percent === null ? "-" : fmtPct(r.annualized_percent), "n"]])))
  chart("basis-chart", { series: [{ label: "days" }, { label: "annualised %", stroke: palette[0], points: { show: true } }], scales: { x: { time: false } } },
    [curve.map((r) => r.days_to_expiry), curve.map((r) => r.annualized_percent)])
}

const refreshSmile = async () => {
  const currency = (filters().symbol.match(/^(BTC|ETH)/) ?? ["BTC"])[0]
  const path = `${api}/option-chain?currency=${currency}&limit=1000`
  $("smile-json").href = path
  const options = (await getJson(path)).data.options
  const nearest = options.map((o) => o.expiry).sort()[0]
  const strikes = new Map()
  for (const o of options.filter((o) => o.expiry === nearest && o.mark_iv !== null)) {
    const s = strikes.get(o.strike) ?? {}
    s[o.option_type] = o.mark_iv
    strikes.set(o.strike, s)
  }
  const xs = [...strikes.keys()].sort((a, b) => a - b)
  $("smile-note").textContent = nearest === undefined ? `no ${currency} option chain stored yet` : `${currency} expiring ${nearest.slice(0, 10)}: mark IV by strike`
  chart("smile-chart", { series: [{ label: "strike" }, { label: "calls", stroke: palette[1] }, { label: "puts", stroke: palette[3] }], scales: { x: { time: false } } },
    [xs, xs.map((x) => strikes.get(x).call ?? null), xs.map((x) => strikes.get(x).put ?? null)])
}

// ---------------------------------------------------------------- across venues
// One asset across venues. Each section is one entry of crossVenueSections: a title, the endpoint
// it reads for the chosen asset, and how it draws that answer into its own box (funding, open
// interest, the spread matrix, open arbitrage, volume delta). A further view is one more entry with
// its render function; the box, the JSON link and the refresh come with it.
const crossVenueAsset = () => $("cross-venue-asset").value
const pctCell = (fraction, digits = 2) => [fmtPct(fraction * 100, digits), `n ${fraction >= 0 ? "buy" : "sell"}`]
const table = (headers, rows) => {
  const t = el("table")
  const head = el("tr")
  for (const [text, cls] of headers) head.appendChild(el("th", cls ? { class: cls } : {}, text))
  t.appendChild(el("thead")).appendChild(head)
  t.appendChild(el("tbody")).replaceChildren(...rows)
  return t
}
const leftOutNote = (leftOut) =>
  el("p", { class: "note", "data-left-out": leftOut.map((l) => `${l.exchange}/${l.symbol}`).join(",") },
    leftOut.length === 0 ? "" : `left out: ${leftOut.map((l) => `${l.exchange} ${l.symbol} (${l.age_seconds === undefined ? l.reason : `${Math.round(l.age_seconds / 60)} min old`})`).join(", ")}`)

const renderFundingAcross = (data, box) => {
  const a = data.assets[0]
  if (a === undefined) return box.replaceChildren(el("p", { class: "note" }, "no funding stored for this asset"))
  const rows = a.venues.map((v) => row([[v.exchange], [v.symbol], [`${v.interval_hours} h`, "n"], pctCell(v.rate_8h, 4), pctCell(v.rate_annualized),
    [v.open_interest_usd === null ? "unweighted" : fmtUsd(v.open_interest_usd), "n"]], { "data-cv-funding": `${v.exchange}/${v.symbol}` }))
  const w = a.open_interest_weighted
  if (w.rate_annualized !== null) {
    rows.push(row([["OI-weighted"], [""], [""], pctCell(w.rate_8h, 4), pctCell(w.rate_annualized), [fmtUsd(w.weight_usd), "n"]], { class: "summary", "data-cv-funding": "weighted" }))
  }
  if (a.spread !== null) {
    rows.push(row([["high - low"], [`${a.spread.high.exchange} - ${a.spread.low.exchange}`], [""], pctCell(a.spread.per_8h, 4), pctCell(a.spread.annualized), [""]], { class: "summary", "data-cv-funding": "spread" }))
  }
  box.replaceChildren(table([["venue"], ["symbol"], ["interval", "n"], ["per 8 h", "n"], ["per year", "n"], ["OI weight", "n"]], rows), leftOutNote(a.left_out))
}

const renderOpenInterestAcross = (data, box) => {
  const a = data.assets[0]
  if (a === undefined) return box.replaceChildren(el("p", { class: "note" }, "no open interest stored for this asset"))
  const coins = (n) => (n === null ? "-" : n.toLocaleString("en-US", { maximumFractionDigits: 2 }))
  const rows = a.by_exchange.map((e) => row([[e.exchange], [coins(e.open_interest_base), "n"], [fmtUsd(e.open_interest_usd), "n"]], { "data-cv-oi": e.exchange }))
  rows.push(row([["total"], [coins(a.total.open_interest_base), "n"], [fmtUsd(a.total.open_interest_usd), "n"]], { class: "summary", "data-cv-oi": "total" }))
  const chartBox = el("div", { id: "cross-venue-oi-chart", class: "chart" })
  const points = a.history.filter((p) => p.open_interest_usd !== null)
  const last = points.at(-1)
  const caption = el("p", { class: "note", "data-cv-oi-latest": last === undefined ? "" : last.time },
    last === undefined ? "no history in this window" : `latest point ${time(last.time)} (${last.resolution}): ${fmtUsd(last.open_interest_usd)} from ${last.instruments} instruments, ${last.carried_forward} carried forward`)
  box.replaceChildren(table([["venue"], ["coins", "n"], ["USD", "n"]], rows), chartBox, caption, leftOutNote(a.left_out))
  chart("cross-venue-oi-chart", {
    series: [{}, { label: `${a.asset} open interest, all venues`, stroke: palette[0], spanGaps: false, value: (u, v) => (v == null ? "-" : fmtUsd(v)) }],
    axes: [{}, { values: (u, vs) => vs.map(fmtUsd), size: 60 }]
  }, [a.history.map((p) => Date.parse(p.time) / 1000), a.history.map((p) => p.open_interest_usd)])
}

const bps = (n) => `${n >= 0 ? "+" : ""}${n.toFixed(2)}`
const signedUsd = (n) => `${n >= 0 ? "+" : "-"}${fmtUsd(Math.abs(n))}`
const price = (n) => n.toLocaleString("en-US", { maximumFractionDigits: 2 })
const age = (ms) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`)

// The latest sample's books as rows and columns, one matrix per market type (spot is compared with
// spot, perpetuals with perpetuals): a cell is the row's mid against the column's, in bps (positive
// when the row's venue is dearer), read from the sample's pairs (a < b) or their mirror.
const renderSpreadMatrix = (data, box) => {
  const s = data.latest[0]
  if (s === undefined) return box.replaceChildren(el("p", { class: "note" }, "no spread sample stored for this asset"))
  const spreads = new Map()
  for (const p of s.pairs) {
    spreads.set(`${p.a}|${p.b}`, p.spread_bps)
    spreads.set(`${p.b}|${p.a}`, -p.spread_bps)
  }
  const parts = [el("p", { class: "note", "data-cv-spread-sample": s.timestamp },
    s.quotes.length === 0 ? `sample ${time(s.timestamp)}: no book was usable` : `sample ${time(s.timestamp)}: ${s.quotes.length} books on ${s.venues} venues`)]
  for (const market of ["spot", "perpetual"]) {
    const quotes = s.quotes.filter((q) => q.market === market)
    if (quotes.length === 0) continue
    const keys = quotes.map((q) => `${q.exchange}:${q.symbol}`)
    const rows = quotes.map((q, i) => {
      const cells = keys.map((k, j) => {
        const v = spreads.get(`${keys[i]}|${k}`)
        return i === j || v === undefined ? ["", "n"] : [bps(v), `n ${v >= 0 ? "buy" : "sell"}`]
      })
      return row([[`${q.exchange} ${q.symbol}`], [q.quote_basis], [price(q.mid), "n"], [age(q.age_ms), "n"], ...cells], { "data-cv-spread": keys[i] })
    })
    // A column is headed by its venue, or venue and symbol where the venue has two books of the market.
    const heads = quotes.map((q) => [quotes.filter((o) => o.exchange === q.exchange).length > 1 ? `${q.exchange} ${q.symbol}` : q.exchange, "n"])
    parts.push(el("h4", {}, `${market}, bps`), table([[`${market} book`], ["quoted"], ["mid USD", "n"], ["age", "n"], ...heads], rows))
  }
  parts.push(leftOutNote(s.excluded))
  box.replaceChildren(...parts)
}

// Open opportunities only (closed ones are counted in the caption): the edge after both taker fees
// at open and at its peak, the size at the top of both books at the peak.
const renderArbitrage = (data, box) => {
  const caption = el("p", { class: "note", "data-cv-arbitrage-summary": "" },
    `${data.summary.open} open, ${data.summary.closed} closed in 24 h${data.summary.best_peak_edge_bps === null ? "" : `; best peak ${bps(data.summary.best_peak_edge_bps)} bps`}`)
  if (data.open.length === 0) return box.replaceChildren(el("p", { class: "note" }, "no open arbitrage after fees"), caption)
  const rows = data.open.map((o) => row([[`${o.buy_exchange} ${o.buy_symbol}`], [`${o.sell_exchange} ${o.sell_symbol}`], [bps(o.open_edge_bps), "n buy"], [bps(o.peak_edge_bps), "n buy"],
    [o.size_base.toLocaleString("en-US", { maximumFractionDigits: 4 }), "n"], [fmtUsd(o.size_usd), "n"], [time(o.opened_at)]], { "data-cv-arbitrage": o.id }))
  box.replaceChildren(table([["buy"], ["sell"], ["edge bps", "n"], ["peak bps", "n"], ["coins", "n"], ["USD", "n"], ["open since"]], rows), caption)
}

// Hourly buckets of the asset across venues: the cumulative volume delta (taker buys less taker
// sells, summed from the window's start) drawn and tabled with the liquidations. A bucket still
// running counts nothing (it is incomplete by definition); venues left out of finished buckets are named.
const deltaBuckets = 6
const renderVolumeDelta = (data, box) => {
  const buckets = data.aggregates
  if (buckets.length === 0) return box.replaceChildren(el("p", { class: "note" }, "no bars stored for this asset"))
  let cumulative = 0
  const points = buckets.map((b) => {
    cumulative += b.volume_delta_usd
    return { ...b, cumulative, running: b.left_out.some((l) => l.incomplete.some((i) => i.reason === "in_progress")) }
  })
  const rows = points.slice(-deltaBuckets).map((p) => row([[`${time(p.start).slice(0, 5)}${p.running ? " (running)" : ""}`], [fmtUsd(p.volume_usd), "n"], [signedUsd(p.volume_delta_usd), `n ${p.volume_delta_usd >= 0 ? "buy" : "sell"}`],
    [signedUsd(p.cumulative), `n ${p.cumulative >= 0 ? "buy" : "sell"}`], [fmtUsd(p.long_liquidations_usd), "n"], [fmtUsd(p.short_liquidations_usd), "n"]], { "data-cv-delta": p.start }))
  const sum = (f) => buckets.reduce((n, b) => n + f(b), 0)
  rows.push(row([["24 h"], [fmtUsd(sum((b) => b.volume_usd)), "n"], [""], [signedUsd(cumulative), `n ${cumulative >= 0 ? "buy" : "sell"}`],
    [fmtUsd(sum((b) => b.long_liquidations_usd)), "n"], [fmtUsd(sum((b) => b.short_liquidations_usd)), "n"]], { class: "summary", "data-cv-delta": "total" }))
  const incomplete = new Map()
  for (const p of points.filter((p) => !p.running)) {
    for (const l of p.left_out) {
      const key = `${l.exchange}/${l.symbol}`
      const known = incomplete.get(key) ?? { exchange: l.exchange, symbol: l.symbol, buckets: 0, reasons: new Set() }
      known.buckets += 1
      for (const i of l.incomplete) known.reasons.add(i.reason === "gap" ? "gap" : "partial minute")
      incomplete.set(key, known)
    }
  }
  const leftOut = [...incomplete.values()].map((l) => ({ exchange: l.exchange, symbol: l.symbol, reason: `incomplete in ${l.buckets} of the ${points.length} hours with trades: ${[...l.reasons].join(", ")}` }))
  const chartBox = el("div", { id: "cross-venue-delta-chart", class: "chart" })
  box.replaceChildren(chartBox, table([["hour"], ["volume", "n"], ["delta", "n"], ["cumulative", "n"], ["long liq.", "n"], ["short liq.", "n"]], rows), leftOutNote(leftOut))
  chart("cross-venue-delta-chart", {
    series: [{}, { label: "cumulative volume delta, USD", stroke: palette[1], points: { show: true, size: 4 }, value: (u, v) => (v == null ? "-" : signedUsd(v)) }],
    axes: [{}, { values: (u, vs) => vs.map(signedUsd), size: 60 }]
  }, [points.map((p) => Date.parse(p.end) / 1000), points.map((p) => p.cumulative)])
}

const crossVenueSections = [
  { id: "funding", title: "Funding", path: (asset) => `${api}/funding-comparison?symbol=${asset}`, render: renderFundingAcross },
  { id: "open-interest", title: "Open interest, 24 h", path: (asset) => `${api}/open-interest-aggregate?symbol=${asset}&hours=24`, render: renderOpenInterestAcross },
  { id: "volume-delta", title: "Volume delta and liquidations, 24 h", path: (asset) => `${api}/bars?symbol=${asset}&aggregate=true&interval=1h&hours=24`, render: renderVolumeDelta },
  { id: "arbitrage", title: "Open arbitrage after fees", path: (asset) => `${api}/arbitrage?symbol=${asset}&hours=24`, render: renderArbitrage },
  { id: "spreads", title: "Spread matrix", path: (asset) => `${api}/spreads?symbol=${asset}`, render: renderSpreadMatrix }
]

const refreshCrossVenue = async () => {
  const asset = crossVenueAsset()
  const boxes = crossVenueSections.map((section) => {
    let box = $(`cross-venue-${section.id}`)
    if (box === null) {
      box = el("div", { id: `cross-venue-${section.id}` })
      $("cross-venue").appendChild(box)
    }
    return box
  })
  await Promise.all(crossVenueSections.map(async (section, i) => {
    const path = section.path(asset)
    const heading = el("h3", {}, `${section.title} (${asset})`)
    heading.appendChild(el("a", { class: "json", href: path }, "JSON"))
    const body = el("div", { "data-cv-section": section.id })
    boxes[i].replaceChildren(heading, body)
    try {
      section.render((await getJson(path)).data, body)
    } catch (error) {
      body.replaceChildren(el("p", { class: "note" }, `unavailable: ${String(error)}`))
    }
  }))
}

// ---------------------------------------------------------------- coverage
let gapsTimer
const scheduleGaps = () => {
  clearTimeout(gapsTimer)
  gapsTimer = setTimeout(() => refreshGaps().catch((e) => console.warn(String(e))), 1000)
}
const refreshGaps = async () => {
  const path = `${api}/gaps?${query({ hours: "24", limit: "1000" })}`
  $("gaps-json").href = path
  const gaps = (await getJson(path)).data.gaps
  const now = Date.now()
  const from = now - 24 * 3600_000
  const lanes = new Map()
  for (const g of gaps) {
    const key = `${g.exchange} ${g.channel} ${g.symbol}`
    if (!lanes.has(key)) lanes.set(key, [])
    lanes.get(key).push(g)
  }
  const rows = [...lanes].slice(0, 40).map(([key, list]) => {
    const lane = el("div", { class: "row" })
    lane.appendChild(el("span", { class: "label" }, key))
    for (const g of list) {
      const start = Math.max(from, Date.parse(g.start))
      const end = g.end === null ? now : Date.parse(g.end)
      const bar = el("span", { class: `gap ${g.repair_status}`, title: `${g.cause}, ${g.repair_status}: ${g.start} to ${g.end ?? "now"}` })
      bar.style.left = `${((start - from) / (now - from)) * 100}%`
      bar.style.width = `${Math.max(0.2, ((end - start) / (now - from)) * 100)}%`
      lane.appendChild(bar)
    }
    return lane
  })
  $("gaps-timeline").replaceChildren(...(rows.length > 0 ? rows : [el("p", { class: "note" }, "no gaps in the last 24 hours")]))
}

// ---------------------------------------------------------------- wiring
const refreshAll = () => {
  for (const refresh of [refreshFunding, refreshOpenInterest, refreshBasis, refreshSmile, refreshGaps, refreshCrossVenue]) refresh().catch((e) => console.warn(String(e)))
}
const fromUrl = new URLSearchParams(location.search)
$("symbol").value = fromUrl.get("symbol") ?? ""
$("min").value = fromUrl.get("min_value_usd") ?? "0"
// The cross-venue asset: the URL's `asset`, else the symbol filter when it is an asset listed.
for (const candidate of [fromUrl.get("asset"), $("symbol").value.toUpperCase()]) {
  if (candidate && [...$("cross-venue-asset").options].some((o) => o.value === candidate)) {
    $("cross-venue-asset").value = candidate
    break
  }
}
$("cross-venue-asset").addEventListener("change", (event) => {
  event.stopPropagation()
  refreshCrossVenue().catch((e) => console.warn(String(e)))
})
$("filters").addEventListener("change", () => {
  const f = filters()
  history.replaceState(null, "", `?${new URLSearchParams({ ...(f.symbol ? { symbol: f.symbol } : {}), ...(f.exchange ? { exchange: f.exchange } : {}), ...(f.min ? { min_value_usd: String(f.min) } : {}) })}`)
  $("tape").replaceChildren()
  connectStream()
  refreshAll()
})
const begin = () => {
  signedIn = true
  return refreshHealth().then(() => {
    if (fromUrl.get("exchange")) $("exchange").value = fromUrl.get("exchange")
    connectStream()
    refreshAll()
  })
}
sessionOpen().then((open) => (open ? begin() : showSignIn())).catch((e) => console.warn(String(e)))
// Nothing is polled while the page waits for a token.
setInterval(() => signedIn && refreshHealth(), 2000)
setInterval(() => signedIn && refreshAll(), 30_000)
