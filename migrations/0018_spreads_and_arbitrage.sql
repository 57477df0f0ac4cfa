-- Issue 20.6 and 20.7: cross-venue spreads sampled from the live books, and arbitrage opportunities.

-- One row per asset per sample (SPREAD_SAMPLE_SECONDS): the per-venue quotes, the pair matrix and the books left
-- out are JSONB because their number changes with every sample (a row per pair would be n^2 rows a second, read
-- back together every time).
CREATE TABLE IF NOT EXISTS exchange_spreads (
    id VARCHAR(100) PRIMARY KEY,               -- {asset}_{sample epoch ms}
    asset VARCHAR(20) NOT NULL,
    timestamp TIMESTAMP NOT NULL,              -- the sample's time (UTC)
    venues INT NOT NULL,                       -- venues with at least one book used
    quotes JSONB NOT NULL,                     -- [{exchange, symbol, market, quote, quote_basis, usd_rate, bid, ask, mid, bid_size, ask_size, native_bid, native_ask, age_ms, exchange_time}]
    pairs JSONB NOT NULL,                      -- [{market, a, b, spread_bps}]
    excluded JSONB NOT NULL,                   -- [{exchange, symbol, reason}]
    changed BOOLEAN NOT NULL,                  -- some price or the set of books differs from the previous sample
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_exchange_spreads_asset_time ON exchange_spreads (asset, timestamp DESC);

-- Written at open, at each new peak and at close under the same id (an open one has closed_at NULL).
CREATE TABLE IF NOT EXISTS arbitrage_opportunities (
    id VARCHAR(300) PRIMARY KEY,               -- {asset}_{buy venue}_{buy symbol}_{sell venue}_{sell symbol}_{open ms}
    asset VARCHAR(20) NOT NULL,
    market VARCHAR(20) NOT NULL,               -- spot or perpetual
    buy_exchange VARCHAR(50) NOT NULL,
    buy_symbol VARCHAR(50) NOT NULL,
    sell_exchange VARCHAR(50) NOT NULL,
    sell_symbol VARCHAR(50) NOT NULL,
    opened_at TIMESTAMP NOT NULL,
    closed_at TIMESTAMP,
    close_reason TEXT,
    last_seen_at TIMESTAMP NOT NULL,
    open_edge_bps DECIMAL(20, 8) NOT NULL,     -- after both taker fees
    peak_edge_bps DECIMAL(20, 8) NOT NULL,
    peak_at TIMESTAMP NOT NULL,
    buy_price DECIMAL(30, 12) NOT NULL,        -- at the peak, USD
    sell_price DECIMAL(30, 12) NOT NULL,
    size_base DECIMAL(30, 12) NOT NULL,        -- min(ask size, bid size) at the peak, coins
    size_usd DECIMAL(30, 8) NOT NULL,          -- size_base x buy_price
    buy_fee_bps DECIMAL(12, 4) NOT NULL,
    sell_fee_bps DECIMAL(12, 4) NOT NULL,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_arbitrage_opened ON arbitrage_opportunities (opened_at DESC);
-- Serves both the open ones (closed_at IS NULL) and the recently closed (closed_at >= ...).
CREATE INDEX IF NOT EXISTS idx_arbitrage_closed ON arbitrage_opportunities (closed_at DESC);
