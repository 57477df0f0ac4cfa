-- Daily settlements of dated futures (CME), one row per contract and trade date.
CREATE TABLE IF NOT EXISTS futures_settlements (
    id VARCHAR(255) PRIMARY KEY,                 -- {exchange}_{symbol}_{trade date}
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,                 -- BTCZ26
    root VARCHAR(20) NOT NULL,                   -- BTC | MBT | ETH | MET
    trade_date DATE NOT NULL,
    expiry DATE NOT NULL,
    settlement_price DECIMAL(20, 8) NOT NULL,
    volume BIGINT,
    open_interest BIGINT,                        -- contracts
    contract_size DECIMAL(20, 8) NOT NULL,       -- coins per contract
    source VARCHAR(30) NOT NULL,                 -- cme-website | databento
    timestamp TIMESTAMP NOT NULL,                -- when it was collected
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_futures_settlements_symbol_date ON futures_settlements (symbol, trade_date DESC);
CREATE INDEX IF NOT EXISTS idx_futures_settlements_date ON futures_settlements (trade_date DESC);
CREATE INDEX IF NOT EXISTS idx_futures_settlements_timestamp ON futures_settlements (timestamp DESC);

-- Basis of a dated future to spot: absolute, percent, and annualised to expiry.
CREATE TABLE IF NOT EXISTS futures_basis (
    id VARCHAR(255) PRIMARY KEY,                 -- {exchange}_{symbol}_{epoch ms}
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    futures_price DECIMAL(20, 8) NOT NULL,
    spot_price DECIMAL(20, 8) NOT NULL,
    spot_source VARCHAR(100) NOT NULL,           -- coinbase:BTC-USD
    basis DECIMAL(20, 8) NOT NULL,
    basis_percent DECIMAL(20, 8) NOT NULL,
    annualized_percent DECIMAL(20, 8),
    days_to_expiry DECIMAL(20, 8) NOT NULL,
    timestamp TIMESTAMP NOT NULL,                -- the moment both prices refer to
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_futures_basis_symbol_time ON futures_basis (symbol, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_futures_basis_time ON futures_basis (timestamp DESC);

-- Roll events: the next contract's open interest (or volume) overtook the front's.
CREATE TABLE IF NOT EXISTS futures_rolls (
    id VARCHAR(255) PRIMARY KEY,                 -- {exchange}_{root}_{from}_{to}
    exchange VARCHAR(50) NOT NULL,
    root VARCHAR(20) NOT NULL,
    from_symbol VARCHAR(50) NOT NULL,
    to_symbol VARCHAR(50) NOT NULL,
    reason VARCHAR(20) NOT NULL,                 -- open_interest | volume
    trade_date DATE NOT NULL,
    from_open_interest BIGINT,
    to_open_interest BIGINT,
    from_volume BIGINT,
    to_volume BIGINT,
    timestamp TIMESTAMP NOT NULL,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_futures_rolls_root_date ON futures_rolls (root, trade_date DESC);
CREATE INDEX IF NOT EXISTS idx_futures_rolls_time ON futures_rolls (timestamp DESC);
