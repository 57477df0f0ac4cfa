-- The original system's four tables, exactly: names, columns, types and indexes.

CREATE TABLE IF NOT EXISTS exchange_orderbooks (
    id VARCHAR(255) PRIMARY KEY,
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    bids JSONB NOT NULL,
    asks JSONB NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    sequence BIGINT,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_exchange_orderbooks_exchange_symbol ON exchange_orderbooks (exchange, symbol);
CREATE INDEX IF NOT EXISTS idx_exchange_orderbooks_timestamp ON exchange_orderbooks (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_exchange_orderbooks_symbol ON exchange_orderbooks (symbol);

CREATE TABLE IF NOT EXISTS large_trades (
    id VARCHAR(255) PRIMARY KEY,
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    side VARCHAR(10) NOT NULL,
    price DECIMAL(20, 8) NOT NULL,
    size DECIMAL(20, 8) NOT NULL,
    value_usd DECIMAL(20, 2) NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    trade_id VARCHAR(255),
    is_liquidation BOOLEAN DEFAULT FALSE,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_large_trades_exchange_symbol ON large_trades (exchange, symbol);
CREATE INDEX IF NOT EXISTS idx_large_trades_timestamp ON large_trades (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_large_trades_value ON large_trades (value_usd DESC);
CREATE INDEX IF NOT EXISTS idx_large_trades_liquidation ON large_trades (is_liquidation) WHERE is_liquidation = TRUE;
CREATE INDEX IF NOT EXISTS idx_large_trades_symbol_timestamp ON large_trades (symbol, timestamp DESC);

CREATE TABLE IF NOT EXISTS funding_rates (
    id VARCHAR(255) PRIMARY KEY,
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    rate DECIMAL(10, 8) NOT NULL,
    predicted_rate DECIMAL(10, 8),
    timestamp TIMESTAMP NOT NULL,
    next_funding_time TIMESTAMP,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_funding_rates_exchange_symbol ON funding_rates (exchange, symbol);
CREATE INDEX IF NOT EXISTS idx_funding_rates_timestamp ON funding_rates (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_funding_rates_symbol_timestamp ON funding_rates (symbol, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_funding_rates_rate ON funding_rates (rate);

CREATE TABLE IF NOT EXISTS open_interest (
    id VARCHAR(255) PRIMARY KEY,
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    open_interest DECIMAL(20, 8) NOT NULL,
    open_interest_usd DECIMAL(20, 2) NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_open_interest_exchange_symbol ON open_interest (exchange, symbol);
CREATE INDEX IF NOT EXISTS idx_open_interest_timestamp ON open_interest (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_open_interest_symbol_timestamp ON open_interest (symbol, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_open_interest_value ON open_interest (open_interest_usd DESC);
