-- Alert firings: one row per firing that passed its rule's cooldown (suppressed repeats are counted in details).
CREATE TABLE IF NOT EXISTS alerts (
    id VARCHAR(255) PRIMARY KEY,                 -- {rule}_{what fired it}: the same condition seen twice is one row
    rule VARCHAR(64) NOT NULL,
    kind VARCHAR(40) NOT NULL,                   -- large_trade | liquidation_cluster | funding | ... (README)
    exchange VARCHAR(50),                        -- NULL for rules across venues (price divergence, clusters by asset)
    symbol VARCHAR(100) NOT NULL,                -- the instrument, the asset or the feed
    value DOUBLE PRECISION NOT NULL,             -- the measured value (USD, percent, bps, seconds, count)
    threshold DOUBLE PRECISION NOT NULL,
    message TEXT NOT NULL,
    event_time TIMESTAMP NOT NULL,               -- when the condition arose (exchange time for market rules)
    fired_at TIMESTAMP NOT NULL,                 -- when the service noticed
    details JSONB,
    created_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_alerts_fired_at ON alerts (fired_at DESC);
CREATE INDEX IF NOT EXISTS idx_alerts_rule_fired_at ON alerts (rule, fired_at DESC);
