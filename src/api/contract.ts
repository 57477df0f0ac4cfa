/**
 * The HTTP API, declared once with effect/http-api: every endpoint's query
 * parameters, success body and errors as Schemas. The same declaration
 * validates requests, writes the OpenAPI document (/openapi.json, /docs) and
 * derives the typed client TypeScript users import (`market-data-service/client`).
 * The wire format is the service contract's: a success envelope
 * (`success`, `data`, `coverage`, `filters`, `timestamp`) and an error
 * envelope (`success: false`, `error: {code, message}`, `timestamp`).
 */
import { Schema, SchemaTransformation } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"

/** The data endpoints' middleware (middleware.ts): the contract's 400s, access control, the per-client budget. */
export class ContractMiddleware extends HttpApiMiddleware.Service<ContractMiddleware>()("market-data/api/ContractMiddleware", {}) {}

// ---------------------------------------------------------------------------
// Query parameters (strings on the wire; decoded, checked and normalised here)
// ---------------------------------------------------------------------------

const lowerCased = <S extends Schema.Top & { readonly Type: string; readonly Encoded: string }>(to: S) =>
  Schema.String.pipe(Schema.decodeTo(to, SchemaTransformation.toLowerCase()))
const upperCased = <S extends Schema.Top & { readonly Type: string; readonly Encoded: string }>(to: S) =>
  Schema.String.pipe(Schema.decodeTo(to, SchemaTransformation.toUpperCase()))

export const queryParameters = {
  symbol: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9._/-]{1,50}$/)).annotate({ description: "Exact native symbol (BTCUSDT, BTC-USD, BTC-PERPETUAL) or a base asset (BTC) matching every instrument on it" }),
  exchange: lowerCased(Schema.String.check(Schema.isPattern(/^[a-z0-9-]{1,50}$/))).annotate({ description: "Venue id: binance, binance-futures, coinbase, deribit, cme" }),
  hours: Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(8760)).annotate({ description: "Window ending now, in hours (>0, at most 8760)" }),
  min_value_usd: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1e18)).annotate({ description: "Only trades worth at least this many USD" }),
  only_liquidations: Schema.Boolean.annotate({ description: "true: liquidations only; false: everything" }),
  side: lowerCased(Schema.Literals(["buy", "sell"])).annotate({ description: "Taker side (for liquidations: the liquidated order's side)" }),
  limit: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 })).annotate({ description: "Rows returned (default 100, at most 1000)" }),
  channel: lowerCased(Schema.Literals(["trades", "book", "liquidations", "funding"])).annotate({ description: "Gap channel" }),
  status: lowerCased(Schema.Literals(["open", "repairing", "verified", "partial", "unrecoverable"])).annotate({ description: "Gap repair status" }),
  index: lowerCased(Schema.String.check(Schema.isPattern(/^[a-z0-9_]{1,30}$/))).annotate({ description: "Volatility index name: btc_usd, eth_usd" }),
  root: upperCased(Schema.String.check(Schema.isPattern(/^[A-Z]{2,5}$/))).annotate({ description: "Futures product root: BTC, MBT, ETH, MET" }),
  currency: upperCased(Schema.String.check(Schema.isPattern(/^[A-Z]{2,10}$/))).annotate({ description: "Underlying currency of an option chain: BTC, ETH" }),
  expiry: Schema.String.check(Schema.makeFilter((s: string) =>
    /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s)
      ? undefined
      : "Expected a date as YYYY-MM-DD"
  )).annotate({ description: "Expiry date (UTC) of the options: YYYY-MM-DD" }),
  rule: lowerCased(Schema.String.check(Schema.isPattern(/^[a-z0-9][a-z0-9_-]{0,62}$/))).annotate({ description: "Alert rule name, as in the rules file" }),
  rule_kind: lowerCased(Schema.String.check(Schema.isPattern(/^[a-z_]{1,40}$/))).annotate({ description: "Alert rule kind: large_trade, liquidation_cluster, funding, open_interest_change, basis, price_divergence, stale_feed, unrepaired_gap, book_resyncs, cross_venue_outlier" }),
  depth: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 })).annotate({ description: "Levels per side (default: all stored, at most 100)" }),
  max_age_minutes: Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(10080)).annotate({
    description: "Readings older than this many minutes are left out and listed with their age (default CROSS_VENUE_MAX_AGE_MINUTES, 60; at most 10080)"
  }),
  interval: lowerCased(Schema.Literals(["1m", "5m", "15m", "1h", "4h", "1d"])).annotate({ description: "Bar interval: 1m, 5m, 15m, 1h, 4h, 1d (default 1m)" }),
  aggregate: Schema.Boolean.annotate({ description: "true: one series per asset across venues, from the venues whose bars are complete" })
}

type ParameterName = keyof typeof queryParameters
const query = <const N extends ParameterName>(...names: ReadonlyArray<N>) =>
  Object.fromEntries(names.map((name) => [name, Schema.optional(queryParameters[name])])) as {
    readonly [K in N]: Schema.optional<(typeof queryParameters)[K]>
  }

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

const Timestamp = Schema.String.annotate({ description: "ISO-8601 UTC" })
const Metadata = Schema.Unknown
const Strings = Schema.Array(Schema.String)

export const Gap = Schema.Struct({
  exchange: Schema.String,
  channel: Schema.String,
  symbol: Schema.String,
  start: Timestamp,
  end: Schema.NullOr(Timestamp),
  cause: Schema.String,
  estimated_missing: Schema.NullOr(Schema.Number),
  repair_status: Schema.String,
  repaired_count: Schema.Number,
  metadata: Metadata
})

export const NotCollected = Schema.Struct({
  exchange: Schema.NullOr(Schema.String),
  channel: Schema.NullOr(Schema.String),
  symbol: Schema.NullOr(Schema.String),
  start: Timestamp,
  end: Timestamp,
  reason: Schema.Literals(["before_first_run", "service_stopped", "venue_starting", "venue_failing", "disconnected", "not_configured"]),
  detail: Schema.NullOr(Schema.String)
}).annotate({ description: "A period a stream asked about was not collected, and why (null exchange: the whole service)" })

export const Coverage = Schema.Struct({
  complete: Schema.Boolean,
  gap_count: Schema.Number,
  unrepaired_gap_count: Schema.Number,
  gaps: Schema.Array(Gap),
  window: Schema.Struct({ start: Timestamp, end: Timestamp }),
  streams: Schema.Array(Schema.Struct({ exchange: Schema.String, channel: Schema.String, symbol: Schema.String, complete: Schema.Boolean })),
  not_collected_count: Schema.Number,
  not_collected: Schema.Array(NotCollected)
}).annotate({
  description: "Positive evidence: complete only when every stream asked about (channel and symbol '*': a venue whose streams are not known) was live over the whole window with no unrepaired gap; not_collected lists the periods it was not, with why"
})

const Filters = Schema.Record(Schema.String, Schema.Unknown)

/** The contract's success envelope around an endpoint's data. */
const envelope = <D extends Schema.Top>(data: D) =>
  Schema.Struct({ success: Schema.Literal(true), data, filters: Filters, timestamp: Timestamp })

/** The same, with the coverage of the window (endpoints over channels the gap ledger covers). */
const envelopeWithCoverage = <D extends Schema.Top>(data: D) =>
  Schema.Struct({ success: Schema.Literal(true), data, coverage: Coverage, filters: Filters, timestamp: Timestamp })

const LargeTrades = Schema.Struct({
  count: Schema.Number,
  trades: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    symbol: Schema.String,
    side: Schema.String,
    price: Schema.Number,
    size: Schema.Number.annotate({ description: "As the venue counts it: coins, contracts or USD (size_unit)" }),
    size_base: Schema.NullOr(Schema.Number).annotate({ description: "The size in the base asset (coins); null where it cannot be known" }),
    size_unit: Schema.NullOr(Schema.Literals(["base", "contracts", "usd"])).annotate({
      description: "What size counts: base (coins), contracts (metadata.contract_size each), usd; null on rows stored without it"
    }),
    value_usd: Schema.Number,
    timestamp: Timestamp,
    trade_id: Schema.NullOr(Schema.String),
    is_liquidation: Schema.Boolean,
    metadata: Metadata
  })),
  summary: Schema.Struct({ total_value_usd: Schema.Number, liquidation_count: Schema.Number, exchanges: Strings, symbols: Strings })
})

const FundingRates = Schema.Struct({
  count: Schema.Number,
  funding_rates: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    symbol: Schema.String,
    rate: Schema.Number,
    predicted_rate: Schema.NullOr(Schema.Number),
    timestamp: Timestamp,
    next_funding_time: Schema.NullOr(Timestamp),
    metadata: Metadata
  })),
  summary: Schema.Struct({
    /** Per 8 hours: each rate is first put on that basis (rate x 8 / its interval_hours). */
    average_rate: Schema.Number,
    average_rate_percent: Schema.Number,
    average_rate_basis: Schema.Literal("8h"),
    /** average_rate x 3 x 365. */
    average_rate_annualized: Schema.Number,
    exchanges: Strings,
    symbols: Strings
  })
})

const OpenInterest = Schema.Struct({
  count: Schema.Number,
  open_interest: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    symbol: Schema.String,
    open_interest: Schema.Number.annotate({ description: "In contracts as the venue counts them (metadata.contract_size, contract_unit)" }),
    open_interest_base: Schema.NullOr(Schema.Number).annotate({ description: "The open interest in the base asset (coins); null where it cannot be known" }),
    open_interest_usd: Schema.Number,
    timestamp: Timestamp,
    metadata: Metadata
  })),
  summary: Schema.Struct({ total_oi_usd: Schema.Number, exchanges: Strings, symbols: Strings })
})

const Level = Schema.Tuple([Schema.Number, Schema.Number])
const OrderBooks = Schema.Struct({
  count: Schema.Number,
  orderbooks: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    symbol: Schema.String,
    bids: Schema.Array(Level),
    asks: Schema.Array(Level),
    timestamp: Timestamp,
    sequence: Schema.NullOr(Schema.Number),
    metadata: Metadata
  }))
})

const Gaps = Schema.Struct({ count: Schema.Number, unrepaired: Schema.Number, gaps: Schema.Array(Gap) })

const VolatilityIndex = Schema.Struct({
  count: Schema.Number,
  values: Schema.Array(Schema.Struct({ exchange: Schema.String, index: Schema.String, value: Schema.Number, timestamp: Timestamp })),
  summary: Schema.Struct({
    latest: Schema.NullOr(Schema.Number),
    min: Schema.NullOr(Schema.Number),
    max: Schema.NullOr(Schema.Number),
    average: Schema.NullOr(Schema.Number),
    indexes: Strings
  })
})

const Greeks = Schema.Struct({ delta: Schema.Number, gamma: Schema.Number, vega: Schema.Number, theta: Schema.Number, rho: Schema.Number })
const OptionChain = Schema.Struct({
  count: Schema.Number,
  options: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    currency: Schema.String,
    instrument: Schema.String,
    expiry: Timestamp,
    strike: Schema.Number,
    option_type: Schema.String,
    mark_price: Schema.NullOr(Schema.Number),
    mark_iv: Schema.NullOr(Schema.Number),
    bid_iv: Schema.NullOr(Schema.Number),
    ask_iv: Schema.NullOr(Schema.Number),
    best_bid: Schema.NullOr(Schema.Number),
    best_ask: Schema.NullOr(Schema.Number),
    greeks: Schema.NullOr(Greeks),
    open_interest: Schema.Number,
    underlying_price: Schema.NullOr(Schema.Number),
    underlying_index: Schema.NullOr(Schema.String),
    index_price: Schema.NullOr(Schema.Number),
    timestamp: Timestamp
  })),
  summary: Schema.Struct({
    snapshot_times: Schema.Record(Schema.String, Schema.String),
    expiries: Strings,
    calls: Schema.Number,
    puts: Schema.Number,
    total_open_interest: Schema.Number
  })
})

const Settlements = Schema.Struct({
  count: Schema.Number,
  settlements: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    symbol: Schema.String,
    root: Schema.String,
    trade_date: Schema.String,
    expiry: Schema.String,
    settlement_price: Schema.Number,
    volume: Schema.NullOr(Schema.Number),
    open_interest: Schema.NullOr(Schema.Number),
    contract_size: Schema.Number,
    source: Schema.String,
    timestamp: Timestamp
  })),
  summary: Schema.Struct({ latest_trade_date: Schema.NullOr(Schema.String), symbols: Strings })
})

const Basis = Schema.Struct({
  count: Schema.Number,
  basis: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    symbol: Schema.String,
    futures_price: Schema.Number,
    spot_price: Schema.Number,
    spot_source: Schema.String,
    basis: Schema.Number,
    basis_percent: Schema.Number,
    annualized_percent: Schema.NullOr(Schema.Number),
    days_to_expiry: Schema.Number,
    timestamp: Timestamp,
    metadata: Metadata
  })),
  summary: Schema.Struct({ average_annualized_percent: Schema.NullOr(Schema.Number), symbols: Strings })
})

const Rolls = Schema.Struct({
  count: Schema.Number,
  rolls: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    root: Schema.String,
    from_symbol: Schema.String,
    to_symbol: Schema.String,
    reason: Schema.String,
    trade_date: Schema.String,
    from_open_interest: Schema.NullOr(Schema.Number),
    to_open_interest: Schema.NullOr(Schema.Number),
    from_volume: Schema.NullOr(Schema.Number),
    to_volume: Schema.NullOr(Schema.Number),
    timestamp: Timestamp
  })),
  front_months: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    root: Schema.String,
    trade_date: Schema.String,
    front: Schema.String,
    next: Schema.NullOr(Schema.String),
    active: Schema.String,
    active_open_interest: Schema.NullOr(Schema.Number)
  }))
})

const Alerts = Schema.Struct({
  count: Schema.Number,
  alerts: Schema.Array(Schema.Struct({
    id: Schema.String,
    rule: Schema.String,
    rule_kind: Schema.String,
    exchange: Schema.NullOr(Schema.String),
    symbol: Schema.String,
    value: Schema.Number,
    threshold: Schema.Number,
    message: Schema.String,
    event_time: Timestamp,
    fired_at: Timestamp,
    details: Metadata
  })),
  summary: Schema.Struct({ by_rule: Schema.Record(Schema.String, Schema.Number) })
})

// Cross-venue views (analytics/cross-venue.ts)

const LeftOut = Schema.Struct({ exchange: Schema.String, symbol: Schema.String, timestamp: Timestamp, age_seconds: Schema.Number, reason: Schema.String })
const Formulas = Schema.Record(Schema.String, Schema.String)
const Instrument = { exchange: Schema.String, symbol: Schema.String }

const FundingComparison = Schema.Struct({
  max_age_minutes: Schema.Number,
  formulas: Formulas,
  assets: Schema.Array(Schema.Struct({
    asset: Schema.String,
    venues: Schema.Array(Schema.Struct({
      ...Instrument,
      rate: Schema.Number.annotate({ description: "As the venue states it, over interval_hours" }),
      interval_hours: Schema.Number,
      interval_source: Schema.String,
      rate_8h: Schema.Number.annotate({ description: "rate x 8 / interval_hours (a fraction, as rate: 0.0001 is 0.01 %)" }),
      rate_annualized: Schema.Number.annotate({ description: "rate x 24 / interval_hours x 365 (a fraction: 0.1095 is 10.95 % a year)" }),
      predicted_rate: Schema.NullOr(Schema.Number),
      predicted_rate_annualized: Schema.NullOr(Schema.Number),
      timestamp: Timestamp,
      age_seconds: Schema.Number,
      next_funding_time: Schema.NullOr(Timestamp),
      open_interest_usd: Schema.NullOr(Schema.Number).annotate({ description: "The weight: the instrument's latest open interest within max age; null: unweighted" }),
      open_interest_time: Schema.NullOr(Timestamp)
    })),
    open_interest_weighted: Schema.Struct({
      rate_annualized: Schema.NullOr(Schema.Number),
      rate_8h: Schema.NullOr(Schema.Number),
      weight_usd: Schema.Number,
      weighted: Schema.Array(Schema.Struct({ ...Instrument, open_interest_usd: Schema.Number })),
      unweighted: Schema.Array(Schema.Struct({ ...Instrument, reason: Schema.String }))
    }),
    simple_average: Schema.Struct({ rate_annualized: Schema.NullOr(Schema.Number), rate_8h: Schema.NullOr(Schema.Number) }),
    spread: Schema.NullOr(Schema.Struct({
      high: Schema.Struct({ ...Instrument, rate_annualized: Schema.Number }),
      low: Schema.Struct({ ...Instrument, rate_annualized: Schema.Number }),
      annualized: Schema.Number,
      per_8h: Schema.Number
    })),
    left_out: Schema.Array(LeftOut)
  }))
})

const OpenInterestAggregate = Schema.Struct({
  hours: Schema.Number,
  max_age_minutes: Schema.Number,
  carry_forward_minutes: Schema.Number,
  five_minute_from: Timestamp.annotate({ description: "History points from here on are 5-minute buckets of raw rows; before it, hours of the rollup" }),
  assets: Schema.Array(Schema.Struct({
    asset: Schema.String,
    instruments: Schema.Array(Schema.Struct({
      ...Instrument,
      open_interest: Schema.Number,
      open_interest_base: Schema.NullOr(Schema.Number).annotate({ description: "One side, in coins" }),
      open_interest_usd: Schema.Number,
      timestamp: Timestamp,
      age_seconds: Schema.Number
    })),
    by_exchange: Schema.Array(Schema.Struct({
      exchange: Schema.String,
      open_interest_base: Schema.NullOr(Schema.Number).annotate({ description: "Null when one of the venue's instruments has no coin figure" }),
      open_interest_usd: Schema.Number,
      instruments: Schema.Number
    })),
    total: Schema.Struct({
      open_interest_usd: Schema.Number,
      open_interest_base: Schema.Number.annotate({ description: "Over the instruments with a coin figure (base_unknown lists the others)" }),
      instruments: Schema.Number,
      base_unknown: Schema.Array(Schema.Struct(Instrument))
    }),
    left_out: Schema.Array(LeftOut),
    history: Schema.Array(Schema.Struct({
      time: Timestamp.annotate({ description: "The bucket's start" }),
      resolution: Schema.Literals(["5m", "1h"]),
      open_interest_usd: Schema.NullOr(Schema.Number),
      open_interest_base: Schema.NullOr(Schema.Number).annotate({ description: "Null on hourly points (the rollup keeps USD) and where a contributor has no coin figure" }),
      instruments: Schema.Number.annotate({ description: "Instruments summed: a reading in the bucket, or carried forward" }),
      carried_forward: Schema.Number
    }))
  }))
})

const TermStructure = Schema.Struct({
  max_age_minutes: Schema.Number,
  max_price_skew_seconds: Schema.Number.annotate({ description: "A live price and the spot reference further apart in time are left out (TERM_STRUCTURE_MAX_PRICE_SKEW_SECONDS)" }),
  formulas: Formulas,
  assets: Schema.Array(Schema.Struct({
    asset: Schema.String,
    spot: Schema.NullOr(Schema.Struct({
      ...Instrument,
      price: Schema.Number,
      source: Schema.String,
      timestamp: Timestamp,
      age_seconds: Schema.Number,
      fresh: Schema.Boolean
    })),
    curve: Schema.Array(Schema.Struct({
      ...Instrument,
      kind: Schema.Literals(["perpetual", "future"]),
      expiry: Schema.NullOr(Timestamp),
      days_to_expiry: Schema.NullOr(Schema.Number),
      futures_price: Schema.Number,
      price_source: Schema.String,
      price_time: Timestamp,
      spot_price: Schema.Number,
      spot_source: Schema.String,
      spot_time: Timestamp,
      basis: Schema.Number,
      basis_percent: Schema.Number,
      annualized_basis_percent: Schema.NullOr(Schema.Number)
    })),
    left_out: Schema.Array(Schema.Struct({
      ...Instrument,
      reason: Schema.String,
      price_time: Schema.optional(Timestamp).annotate({ description: "With a price too far in time from the spot reference: the price's time" }),
      spot_time: Schema.optional(Timestamp).annotate({ description: "And the spot reference's time" })
    }))
  }))
})

const Market = Schema.Literals(["spot", "perpetual"])
const SpreadSample = Schema.Struct({
  id: Schema.String.annotate({ description: "{asset}_{sample epoch ms}" }),
  asset: Schema.String,
  timestamp: Timestamp,
  venues: Schema.Number.annotate({ description: "Venues with at least one book in the sample" }),
  changed: Schema.Boolean.annotate({ description: "Some price, size or the set of books differs from the asset's previous sample" }),
  quotes: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    symbol: Schema.String,
    market: Market,
    quote: Schema.String,
    quote_basis: Schema.String.annotate({ description: "How the quote became USD: USD; USDT at par; EUR at <rate> (median of our own other-asset books: which)" }),
    usd_rate: Schema.Number,
    bid: Schema.Number.annotate({ description: "Best bid in USD" }),
    ask: Schema.Number.annotate({ description: "Best ask in USD" }),
    mid: Schema.Number.annotate({ description: "(bid + ask) / 2 in USD" }),
    bid_size: Schema.Number.annotate({ description: "At the best bid, in coins of the asset" }),
    ask_size: Schema.Number.annotate({ description: "At the best ask, in coins of the asset" }),
    native_bid: Schema.Number,
    native_ask: Schema.Number,
    age_ms: Schema.Number.annotate({ description: "Sample time minus our receipt of the book's last update" }),
    exchange_time: Schema.NullOr(Schema.Number).annotate({ description: "The venue's time of that update, epoch ms" })
  })),
  pairs: Schema.Array(Schema.Struct({
    market: Market,
    a: Schema.String,
    b: Schema.String,
    spread_bps: Schema.Number.annotate({ description: "(mid_a - mid_b) / ((mid_a + mid_b) / 2) x 1e4: positive when a is dearer" })
  })),
  excluded: Schema.Array(Schema.Struct({ exchange: Schema.String, symbol: Schema.String, reason: Schema.String })),
  metadata: Metadata
})

const Spreads = Schema.Struct({
  count: Schema.Number,
  latest: Schema.Array(SpreadSample).annotate({ description: "The latest sample of each asset" }),
  history: Schema.Array(SpreadSample).annotate({ description: "With hours: the samples of the window, newest first (at most limit)" })
})

const Opportunity = Schema.Struct({
  id: Schema.String.annotate({ description: "{asset}_{buy venue}_{buy symbol}_{sell venue}_{sell symbol}_{open ms}" }),
  asset: Schema.String,
  market: Schema.String,
  buy_exchange: Schema.String,
  buy_symbol: Schema.String,
  sell_exchange: Schema.String,
  sell_symbol: Schema.String,
  status: Schema.Literals(["open", "unconfirmed", "closed"]).annotate({
    description: "unconfirmed: stored open, but not seen for 15 s (the 10 s refresh and 5 s slack): the service may have stopped, or the close was lost"
  }),
  opened_at: Timestamp,
  closed_at: Schema.NullOr(Timestamp),
  close_reason: Schema.NullOr(Schema.String),
  last_seen_at: Timestamp,
  open_edge_bps: Schema.Number.annotate({ description: "After both taker fees, in bps of the buy leg's cost" }),
  peak_edge_bps: Schema.Number,
  peak_at: Timestamp,
  buy_price: Schema.Number.annotate({ description: "Best ask of the buy book at the peak, USD" }),
  sell_price: Schema.Number.annotate({ description: "Best bid of the sell book at the peak, USD" }),
  size_base: Schema.Number.annotate({ description: "min(ask size, bid size) at the peak, in coins" }),
  size_usd: Schema.Number.annotate({ description: "size_base x buy_price" }),
  buy_fee_bps: Schema.Number,
  sell_fee_bps: Schema.Number,
  metadata: Metadata
})

const Arbitrage = Schema.Struct({
  count: Schema.Number,
  open: Schema.Array(Opportunity),
  unconfirmed: Schema.Array(Opportunity).annotate({ description: "Stored open but not seen recently: neither served as open nor known to have closed" }),
  closed: Schema.Array(Opportunity),
  summary: Schema.Struct({ open: Schema.Number, unconfirmed: Schema.Number, closed: Schema.Number, best_peak_edge_bps: Schema.NullOr(Schema.Number), exchanges: Strings })
})

const BarIncomplete = Schema.Struct({
  reason: Schema.Literals(["partial_minute", "gap", "not_live", "in_progress"]),
  detail: Schema.String,
  minute: Schema.NullOr(Timestamp),
  gap_id: Schema.NullOr(Schema.String)
}).annotate({ description: "Why a bar is not complete: a minute not watched whole, an open or unrepaired gap over it, a stream of it not live over it, or the bucket is not over (or its last minute not stored yet)" })

const BarVolumes = {
  vwap: Schema.NullOr(Schema.Number).annotate({ description: "volume_usd / volume_base: the USD price of the bucket's trades" }),
  volume_base: Schema.Number.annotate({ description: "In the base asset (coins)" }),
  volume_usd: Schema.Number,
  buy_volume_usd: Schema.Number.annotate({ description: "Taker buys" }),
  sell_volume_usd: Schema.Number.annotate({ description: "Taker sells" }),
  volume_delta_usd: Schema.Number.annotate({ description: "buy_volume_usd - sell_volume_usd" }),
  trade_count: Schema.Number,
  long_liquidations_usd: Schema.Number.annotate({ description: "Long positions liquidated (sell orders)" }),
  short_liquidations_usd: Schema.Number.annotate({ description: "Short positions liquidated (buy orders)" }),
  liquidation_count: Schema.Number
}

const Bars = Schema.Struct({
  count: Schema.Number,
  interval: Schema.String,
  aggregate: Schema.Boolean,
  window: Schema.Struct({ start: Timestamp, end: Timestamp }),
  bars: Schema.Array(Schema.Struct({
    exchange: Schema.String,
    symbol: Schema.String,
    base: Schema.String,
    interval: Schema.String,
    start: Timestamp,
    end: Timestamp,
    open: Schema.NullOr(Schema.Number),
    high: Schema.NullOr(Schema.Number),
    low: Schema.NullOr(Schema.Number),
    close: Schema.NullOr(Schema.Number),
    ...BarVolumes,
    minutes: Schema.Number.annotate({ description: "Minute bars in the bucket (a minute without a trade has none)" }),
    complete: Schema.Boolean,
    incomplete: Schema.Array(BarIncomplete),
    repaired: Schema.Array(Schema.Struct({ minute: Timestamp, gap_id: Schema.String, detail: Schema.String })).annotate({
      description: "Minutes partial only by a (re)connect that count as whole: a verified trades gap spans their unobserved part"
    })
  })),
  aggregates: Schema.Array(Schema.Struct({
    asset: Schema.String,
    interval: Schema.String,
    start: Timestamp,
    end: Timestamp,
    ...BarVolumes,
    venues: Schema.Array(Schema.Struct({ exchange: Schema.String, symbol: Schema.String })).annotate({ description: "The instruments summed: those whose bar is complete" }),
    left_out: Schema.Array(Schema.Struct({ exchange: Schema.String, symbol: Schema.String, incomplete: Schema.Array(BarIncomplete) })),
    complete: Schema.Boolean.annotate({ description: "Every instrument's bar was complete, none left out" })
  }))
})

// ---------------------------------------------------------------------------
// Errors: the contract's error envelope, one Schema per status
// ---------------------------------------------------------------------------

const errorEnvelope = <const Codes extends ReadonlyArray<string>>(codes: Codes) =>
  Schema.Struct({
    success: Schema.Literal(false),
    error: Schema.Struct({ code: Schema.Literals(codes), message: Schema.String }),
    timestamp: Timestamp
  })

export const BadRequest = errorEnvelope(["INVALID_PARAMETER"]).pipe(HttpApiSchema.status(400))
export const Unauthorized = errorEnvelope(["UNAUTHORIZED"]).pipe(HttpApiSchema.status(401))
export const TooManyRequests = errorEnvelope(["RATE_LIMITED"]).pipe(HttpApiSchema.status(429))
export const Unavailable = errorEnvelope(["DATABASE_UNAVAILABLE", "OVERLOADED"]).pipe(HttpApiSchema.status(503))
export type UnavailableBody = typeof Unavailable.Type

const errors = [BadRequest, Unauthorized, TooManyRequests, Unavailable]

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

const get = <const Name extends string, const N extends ParameterName, S extends Schema.Top>(
  name: Name,
  path: `/${string}`,
  parameters: ReadonlyArray<N>,
  success: S,
  description: string
) =>
  HttpApiEndpoint.get(name, path, { query: query(...parameters), success, error: errors }).annotate(OpenApi.Description, description)

export class ExchangeData extends HttpApiGroup.make("exchange")
  .add(get("largeTrades", "/large-trades", ["symbol", "exchange", "hours", "min_value_usd", "only_liquidations", "side", "limit"], envelopeWithCoverage(LargeTrades), "Large trades and liquidations, newest first; count and summary cover every matching row"))
  .add(get("fundingRates", "/funding-rates", ["symbol", "exchange", "hours", "limit"], envelopeWithCoverage(FundingRates), "Funding rates, each over its venue's own interval (metadata.interval_hours)"))
  .add(get("openInterest", "/open-interest", ["symbol", "exchange", "hours", "limit"], envelopeWithCoverage(OpenInterest), "Open interest readings; total_oi_usd sums each instrument's latest reading in the window"))
  .add(get("orderBooks", "/orderbooks", ["symbol", "exchange", "depth"], envelope(OrderBooks), "The latest stored order-book snapshot per instrument"))
  .add(get("gaps", "/gaps", ["symbol", "exchange", "hours", "limit", "channel", "status"], envelope(Gaps), "The gap ledger: what is missing, and whether it was repaired"))
  .add(get("volatilityIndex", "/volatility-index", ["index", "exchange", "hours", "limit"], envelope(VolatilityIndex), "Deribit DVOL"))
  .add(get("optionChain", "/option-chain", ["currency", "expiry", "exchange", "limit"], envelope(OptionChain), "The newest option chain snapshot per currency"))
  .add(get("settlements", "/settlements", ["symbol", "exchange", "hours", "limit"], envelope(Settlements), "CME daily settlements (default window 7 days)"))
  .add(get("basis", "/basis", ["symbol", "exchange", "hours", "limit"], envelope(Basis), "Futures basis to spot, annualised (default window 7 days)"))
  .add(get("alerts", "/alerts", ["symbol", "exchange", "rule", "rule_kind", "hours", "limit"], envelope(Alerts), "Alert firings (rules of ALERT_RULES), newest first; count and by_rule cover every match"))
  .add(get("rolls", "/rolls", ["root", "exchange", "hours", "limit"], envelope(Rolls), "Roll events and front months (default window 90 days)"))
  .add(get("bars", "/bars", ["symbol", "exchange", "interval", "hours", "aggregate", "limit"], envelopeWithCoverage(Bars), "Bars from every trade (minute bars rolled up to the interval), or with aggregate=true one series per asset from the venues whose bars are complete; limit: the latest buckets per series (default 1000)"))
  .add(get("spreads", "/spreads", ["symbol", "hours", "limit"], envelope(Spreads), "Cross-venue spreads from the live books: the latest sample per asset (symbol: an asset), and with hours the window's samples"))
  .add(get("arbitrage", "/arbitrage", ["symbol", "exchange", "hours", "limit"], envelope(Arbitrage), "Cross-venue arbitrage after taker fees: every open opportunity and those closed within hours (default 24)"))
  .add(get("fundingComparison", "/funding-comparison", ["symbol", "max_age_minutes"], envelope(FundingComparison), "Every perpetual's latest funding per asset (symbol: the asset), annualised on its own interval, with the open-interest-weighted average and the high-low spread"))
  .add(get("openInterestAggregate", "/open-interest-aggregate", ["symbol", "hours", "max_age_minutes"], envelope(OpenInterestAggregate), "Per asset, each venue's latest one-sided open interest in coins and USD, the total, and a 5-minute history (hourly beyond OI_HISTORY_5M_HOURS; default window 24 h)"))
  .add(get("termStructure", "/term-structure", ["symbol", "hours", "max_age_minutes"], envelope(TermStructure), "Basis of every dated future and perpetual against one spot reference, by expiry (symbol: BTC or ETH; default both)"))
  .prefix("/api/v1/exchange")
  .middleware(ContractMiddleware)
{}

export class MarketDataApi extends HttpApi.make("market-data").add(ExchangeData).annotateMerge(OpenApi.annotations({
  title: "Market data service",
  description: "Trades, liquidations, funding, open interest, order books, options and futures data from Binance, Coinbase, Deribit and CME."
})) {}

/** The query parameters an endpoint declares (the names of its query schema's properties). */
export const declaredParameters = (endpoint: { readonly query: Schema.Top | undefined }): ReadonlyArray<string> => {
  const ast = endpoint.query?.ast as { readonly propertySignatures?: ReadonlyArray<{ readonly name: PropertyKey }> } | undefined
  return (ast?.propertySignatures ?? []).map((p) => String(p.name))
}

/** Each data endpoint's path and the query parameters it takes, read from the declaration. */
export const endpointParameters: Readonly<Record<string, ReadonlyArray<string>>> = Object.fromEntries(
  Object.values(ExchangeData.endpoints).map((endpoint) => [endpoint.path, declaredParameters(endpoint)])
)
