-- Volatility indices (Deribit DVOL: btc_usd, eth_usd), one row per published value.
CREATE TABLE IF NOT EXISTS volatility_index (
    id VARCHAR(255) PRIMARY KEY,                 -- {exchange}_{index}_{epoch ms}
    exchange VARCHAR(50) NOT NULL,
    index_name VARCHAR(50) NOT NULL,             -- btc_usd | eth_usd
    value DECIMAL(20, 8) NOT NULL,               -- annualised implied volatility, percent
    timestamp TIMESTAMP NOT NULL,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_volatility_index_name_time ON volatility_index (index_name, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_volatility_index_time ON volatility_index (timestamp DESC);

-- Option chain snapshots: one row per option per snapshot.
CREATE TABLE IF NOT EXISTS option_chain (
    id VARCHAR(255) PRIMARY KEY,                 -- {exchange}_{instrument}_{epoch ms}
    exchange VARCHAR(50) NOT NULL,
    currency VARCHAR(20) NOT NULL,               -- BTC | ETH
    instrument VARCHAR(50) NOT NULL,             -- BTC-27DEC26-100000-C
    expiry TIMESTAMP NOT NULL,
    strike DECIMAL(20, 8) NOT NULL,
    option_type VARCHAR(4) NOT NULL,             -- call | put
    mark_price DECIMAL(30, 10),                  -- in the underlying coin
    mark_iv DECIMAL(20, 8),
    bid_iv DECIMAL(20, 8),
    ask_iv DECIMAL(20, 8),
    best_bid DECIMAL(30, 10),
    best_ask DECIMAL(30, 10),
    delta DECIMAL(30, 10),
    gamma DECIMAL(30, 10),
    vega DECIMAL(30, 10),
    theta DECIMAL(30, 10),
    rho DECIMAL(30, 10),
    open_interest DECIMAL(30, 8),                -- contracts (one coin each)
    underlying_price DECIMAL(20, 8),
    underlying_index VARCHAR(50),
    index_price DECIMAL(20, 8),
    timestamp TIMESTAMP NOT NULL,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_option_chain_currency_expiry_time ON option_chain (currency, expiry, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_option_chain_instrument_time ON option_chain (instrument, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_option_chain_time ON option_chain (timestamp DESC);
