/**
 * The alert rules file (`ALERT_RULES`, YAML or JSON), decoded with Schema. A
 * bad file stops start-up with a message naming the rule and the field: a
 * typo in a threshold must not turn into a rule that silently never fires, so
 * unknown fields are refused too.
 */
import { readFileSync } from "node:fs"
import { Cause, Exit, Schema } from "effect"
import { parse as parseYaml } from "yaml"

/** The rules file cannot be used: start-up stops with this message. */
export class AlertRulesError extends Schema.TaggedError<AlertRulesError>()("AlertRulesError", { message: Schema.String }) {}

const Name = Schema.String.check(Schema.isPattern(/^[a-z0-9][a-z0-9_-]{0,62}$/)).annotate({
  description: "lower-case letters, digits, - and _ (it is a word of the broker routing key)"
})
const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
const Seconds = Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(7 * 86_400))
const Words = Schema.Array(Schema.String.check(Schema.isMinLength(1)))

/** Fields every rule has: its name, which instruments it watches, where it is delivered, how often it may fire. */
const common = {
  name: Name,
  description: Schema.optional(Schema.String),
  /** Exchange ids (binance, coinbase, ...); every exchange when absent. */
  exchanges: Schema.optional(Words),
  /** Native symbols (BTCUSDT, BTC-PERPETUAL); every symbol when absent. */
  symbols: Schema.optional(Words),
  /** Base assets (BTC, ETH); every asset when absent. */
  assets: Schema.optional(Words),
  /** After a firing, the same rule stays quiet for the same key (symbol or asset) this long. */
  cooldown_seconds: Schema.optional(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  /** Names of the file's webhooks to POST to; all of them when absent, none for []. */
  webhooks: Schema.optional(Words)
}

export const LargeTradeRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("large_trade"),
  min_value_usd: Positive,
  include_liquidations: Schema.optional(Schema.Boolean)
})

export const LiquidationClusterRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("liquidation_cluster"),
  min_value_usd: Positive,
  window_seconds: Seconds,
  /** "asset" sums an asset's liquidations across venues and symbols; "symbol" one instrument's. */
  group_by: Schema.optional(Schema.Literals(["asset", "symbol"]))
})

export const FundingRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("funding"),
  /** Fires when |rate x intervals per year| exceeds this, in percent: venues with 1 h and 8 h funding compare. */
  max_abs_annualized_percent: Positive
})

export const OpenInterestChangeRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("open_interest_change"),
  /** Fires when open interest (in contracts, so price moves do not count) moved by this many percent within the window. */
  min_change_percent: Positive,
  window_seconds: Seconds
})

export const BasisRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("basis"),
  /** Fires when |basis| exceeds this, in percent of spot (or annualised, with measure: annualized). */
  max_abs_percent: Positive,
  measure: Schema.optional(Schema.Literals(["basis", "annualized"]))
})

export const PriceDivergenceRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("price_divergence"),
  /** Fires when the highest and lowest venue price of one asset are this many basis points apart. */
  max_bps: Positive,
  /** Prices older than this are not compared (default 30 s). */
  max_age_seconds: Schema.optional(Seconds),
  /** Which instruments price the asset (default spot and perpetual). */
  instrument_kinds: Schema.optional(Schema.Array(Schema.Literals(["spot", "perpetual", "future"])))
})

export const StaleFeedRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("stale_feed"),
  /** A connection without a message, or a stream the freshness monitor calls stale, for this long. */
  seconds: Seconds
})

export const UnrepairedGapRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("unrepaired_gap"),
  /** A gap still unrepaired this long after it opened (default 0: as soon as it is known to be unrecoverable or partial, or opened). */
  after_seconds: Schema.optional(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  channels: Schema.optional(Schema.Array(Schema.Literals(["trades", "book", "liquidations", "funding"])))
})

export const BookResyncsRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("book_resyncs"),
  /** Fires when one book resynced more than this many times within the window. */
  max_resyncs: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  window_seconds: Seconds
})

export const CrossVenueOutlierRule = Schema.Struct({
  ...common,
  kind: Schema.Literal("cross_venue_outlier"),
  /** Which of the cross-check's fields (default all); the distances are the check's own (CROSS_CHECK_MAX_DEVIATION_*). */
  fields: Schema.optional(Schema.Array(Schema.Literals(["mid", "open_interest", "funding"])))
})

const ruleSchemas = {
  large_trade: LargeTradeRule,
  liquidation_cluster: LiquidationClusterRule,
  funding: FundingRule,
  open_interest_change: OpenInterestChangeRule,
  basis: BasisRule,
  price_divergence: PriceDivergenceRule,
  stale_feed: StaleFeedRule,
  unrepaired_gap: UnrepairedGapRule,
  book_resyncs: BookResyncsRule,
  cross_venue_outlier: CrossVenueOutlierRule
} as const

export type RuleKind = keyof typeof ruleSchemas
export const ruleKinds = Object.keys(ruleSchemas) as ReadonlyArray<RuleKind>
export type Rule = { readonly [K in RuleKind]: (typeof ruleSchemas)[K]["Type"] }[RuleKind]
export type RuleOf<K extends RuleKind> = Extract<Rule, { readonly kind: K }>

export const Webhook = Schema.Struct({
  name: Name,
  url: Schema.String.check(Schema.isPattern(/^https?:\/\/\S+$/)),
  /** Environment variable holding the HMAC-SHA256 key; with it, each POST carries `X-Signature-256: sha256=<hex of the body>`. */
  secret_env: Schema.optional(Schema.String.check(Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]*$/))),
  /** One attempt's limit (default 5000 ms). */
  timeout_ms: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 100, maximum: 120_000 }))),
  /** Alerts waiting for this webhook beyond this many are dropped, oldest first, and counted (default 1000). */
  max_pending: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000 }))),
  /** An alert not delivered within this long is given up, and counted (default 24 h). */
  give_up_after_seconds: Schema.optional(Schema.Finite.check(Schema.isGreaterThan(0)))
})
export type Webhook = typeof Webhook.Type

const FileShape = Schema.Struct({
  defaults: Schema.optional(Schema.Struct({ cooldown_seconds: Schema.optional(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))) })),
  webhooks: Schema.optional(Schema.Array(Schema.Unknown)),
  rules: Schema.Array(Schema.Unknown)
})

export interface RulesFile {
  readonly rules: ReadonlyArray<Rule>
  readonly webhooks: ReadonlyArray<Webhook & { readonly secret: string | undefined }>
  readonly defaultCooldownSeconds: number
}

/** Five minutes: a storm sends one alert per rule and key, not a thousand. */
export const defaultCooldownSeconds = 300

const strict = { errors: "all", onExcessProperty: "error" } as const

/** `["rules"][0]["min_value_usd"]` as `rules[0].min_value_usd`. */
const fieldPath = (path: string) => path.replace(/\["([^"]*)"\]/g, ".$1").replace(/^\./, "")

/**
 * Schema's report ("Expected a number / at [\"min_value_usd\"]" pairs) as
 * "min_value_usd: Expected a number", problems separated by "; ".
 */
const schemaMessage = (exit: Exit.Exit<unknown, Schema.SchemaError>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const lines = (Cause.squash(exit.cause) as Error).message.split("\n")
  const problems: Array<string> = []
  for (let i = 0; i < lines.length; i++) {
    const at = /^\s*at (.+)$/.exec(lines[i + 1] ?? "")
    if (at !== null) {
      problems.push(`${fieldPath(at[1]!)}: ${lines[i]!.trim()}`)
      i++
    } else if (lines[i]!.trim().length > 0) problems.push(lines[i]!.trim())
  }
  return problems.join("; ")
}

/**
 * Decodes a rules document (already parsed from YAML or JSON). `env` resolves
 * webhook secrets. Every problem is reported, each naming its rule and field.
 */
export const decodeRules = (document: unknown, env: Readonly<Record<string, string | undefined>>): RulesFile => {
  const shape = Schema.decodeUnknownExit(FileShape)(document, strict)
  if (Exit.isFailure(shape)) throw new AlertRulesError({ message: `the file: ${schemaMessage(shape)}` })
  const file = shape.value
  const problems: Array<string> = []
  const webhooks: Array<Webhook & { readonly secret: string | undefined }> = []
  for (const [i, raw] of (file.webhooks ?? []).entries()) {
    const label = `webhook ${JSON.stringify((raw as { name?: unknown })?.name ?? null)} (webhooks[${i}])`
    const decoded = Schema.decodeUnknownExit(Webhook)(raw, strict)
    if (Exit.isFailure(decoded)) {
      problems.push(`${label}: ${schemaMessage(decoded)}`)
      continue
    }
    const webhook = decoded.value
    const secret = webhook.secret_env === undefined ? undefined : env[webhook.secret_env]
    if (webhook.secret_env !== undefined && (secret === undefined || secret === "")) {
      problems.push(`${label}: secret_env: the environment variable ${webhook.secret_env} is not set`)
    }
    if (webhooks.some((w) => w.name === webhook.name)) problems.push(`${label}: name: another webhook is already called ${webhook.name}`)
    webhooks.push({ ...webhook, secret })
  }
  const rules: Array<Rule> = []
  for (const [i, raw] of file.rules.entries()) {
    const name = (raw as { name?: unknown })?.name
    const label = `rule ${JSON.stringify(name ?? null)} (rules[${i}])`
    const kind = (raw as { kind?: unknown })?.kind
    const schema = typeof kind === "string" ? (ruleSchemas as Record<string, Schema.Top>)[kind] : undefined
    if (schema === undefined) {
      problems.push(`${label}: kind: expected one of ${ruleKinds.join(", ")}, got ${JSON.stringify(kind ?? null)}`)
      continue
    }
    const decoded = Schema.decodeUnknownExit(schema as Schema.Codec<Rule, unknown>)(raw, strict)
    if (Exit.isFailure(decoded)) {
      problems.push(`${label}: ${schemaMessage(decoded)}`)
      continue
    }
    const rule = decoded.value
    if (rules.some((r) => r.name === rule.name)) problems.push(`${label}: name: another rule is already called ${rule.name}`)
    for (const target of rule.webhooks ?? []) {
      if (!webhooks.some((w) => w.name === target)) problems.push(`${label}: webhooks: no webhook is called ${target}`)
    }
    rules.push(rule)
  }
  if (problems.length > 0) throw new AlertRulesError({ message: problems.join("\n") })
  return { rules, webhooks, defaultCooldownSeconds: file.defaults?.cooldown_seconds ?? defaultCooldownSeconds }
}

/** Reads and parses `path`: JSON when it ends in .json, YAML otherwise. */
export const readRulesDocument = (path: string): unknown => {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (error) {
    throw new AlertRulesError({ message: `cannot read ${path}: ${(error as Error).message}` })
  }
  try {
    return path.endsWith(".json") ? JSON.parse(text) : parseYaml(text)
  } catch (error) {
    throw new AlertRulesError({ message: `${path} is not valid ${path.endsWith(".json") ? "JSON" : "YAML"}: ${(error as Error).message}` })
  }
}

/** The environment variables a rules document's webhooks take their secrets from. */
export const secretNames = (document: unknown): ReadonlyArray<string> => {
  const webhooks = (document as { webhooks?: unknown } | null)?.webhooks
  return Array.isArray(webhooks) ? webhooks.map((w) => (w as { secret_env?: unknown } | null)?.secret_env).filter((n): n is string => typeof n === "string") : []
}

/** Reads and decodes `path`; every problem is reported under the file's name. */
export const loadRulesFile = (path: string, env: Readonly<Record<string, string | undefined>>): RulesFile =>
  decodeRulesOf(path, readRulesDocument(path), env)

/** Decodes the document read from `path`, naming the file in the message. */
export const decodeRulesOf = (path: string, document: unknown, env: Readonly<Record<string, string | undefined>>): RulesFile => {
  try {
    return decodeRules(document, env)
  } catch (error) {
    if (error instanceof AlertRulesError) throw new AlertRulesError({ message: `the alert rules in ${path} are not usable:\n${error.message}` })
    throw error
  }
}
