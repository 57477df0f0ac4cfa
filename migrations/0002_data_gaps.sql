-- The gap ledger: every hole in what we collected, why, how big, and whether it was repaired.
CREATE TABLE IF NOT EXISTS data_gaps (
    id VARCHAR(255) PRIMARY KEY,                 -- {exchange}_{channel}_{symbol}_{start epoch ms}_{cause}
    exchange VARCHAR(50) NOT NULL,
    channel VARCHAR(50) NOT NULL,                -- trades | book | liquidations | funding
    symbol VARCHAR(50) NOT NULL,
    gap_start TIMESTAMP NOT NULL,
    gap_end TIMESTAMP,
    cause VARCHAR(30) NOT NULL,                  -- disconnect | sequence_gap | checksum | stale | rate_limited | restart
    estimated_missing BIGINT,
    repair_status VARCHAR(20) NOT NULL,          -- open | repairing | verified | partial | unrecoverable
    repaired_count BIGINT NOT NULL DEFAULT 0,
    metadata JSONB,
    created_at TIMESTAMP DEFAULT NOW(),
    updated_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_data_gaps_start ON data_gaps (gap_start DESC);
CREATE INDEX IF NOT EXISTS idx_data_gaps_exchange_symbol ON data_gaps (exchange, symbol);

-- The last sequence seen per stream, so a restart knows where it left off.
CREATE TABLE IF NOT EXISTS feed_cursors (
    exchange VARCHAR(50) NOT NULL,
    channel VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    last_sequence BIGINT NOT NULL,
    last_time TIMESTAMP NOT NULL,
    updated_at TIMESTAMP DEFAULT NOW(),
    PRIMARY KEY (exchange, channel, symbol)
);
