-- Coverage as positive evidence. `service_runs`: when the service ran, from its start to its last heartbeat
-- (a crash leaves at most one heartbeat period claimed) or its clean stop. `stream_coverage`: per run and per
-- stream (exchange, channel, symbol), contiguous intervals in one state: `live`, or not live with why
-- (`venue_starting`, `venue_failing`, `disconnected`) and the last error. A venue's own state is the stream
-- (exchange, '*', '*'). Time no run covers is `before_first_run` or `service_stopped`.
CREATE TABLE IF NOT EXISTS service_runs (
    id VARCHAR(64) PRIMARY KEY,
    started_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    stopped_at TIMESTAMP,
    venues TEXT NOT NULL DEFAULT ''              -- the configured venues, comma-separated
);
CREATE INDEX IF NOT EXISTS idx_service_runs_started ON service_runs (started_at);

CREATE TABLE IF NOT EXISTS stream_coverage (
    id VARCHAR(255) PRIMARY KEY,                 -- {run}_{exchange}_{channel}_{symbol}_{since epoch ms}
    run_id VARCHAR(64) NOT NULL,
    exchange VARCHAR(50) NOT NULL,
    channel VARCHAR(50) NOT NULL,                -- trades | book | liquidations | funding | * (the venue itself)
    symbol VARCHAR(50) NOT NULL,                 -- * for the venue itself
    state VARCHAR(20) NOT NULL,                  -- live | venue_starting | venue_failing | disconnected
    detail TEXT,
    since TIMESTAMP NOT NULL,
    until TIMESTAMP NOT NULL,
    closed BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS idx_stream_coverage_window ON stream_coverage (until, since);
CREATE INDEX IF NOT EXISTS idx_stream_coverage_run ON stream_coverage (run_id);
