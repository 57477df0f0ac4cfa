-- Hourly totals of large_trades per instrument, kept exact by statement-level
-- triggers on every insert (only rows actually inserted: ON CONFLICT DO NOTHING
-- leaves duplicates out of the transition table), update, delete and truncate.
-- The large-trades summary of a window then reads a few hundred of these rows
-- plus the raw trades of its first, partial hour, instead of every trade.

CREATE TABLE IF NOT EXISTS large_trades_hourly (
    hour TIMESTAMP NOT NULL,
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    trades BIGINT NOT NULL,
    total_value_usd NUMERIC NOT NULL,
    liquidations BIGINT NOT NULL,
    PRIMARY KEY (hour, exchange, symbol)
);

CREATE OR REPLACE FUNCTION large_trades_hourly_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO large_trades_hourly AS h (hour, exchange, symbol, trades, total_value_usd, liquidations)
        SELECT date_trunc('hour', timestamp), exchange, symbol, -count(*), -sum(value_usd), -count(*) FILTER (WHERE is_liquidation)
        FROM old_rows GROUP BY 1, 2, 3
        ON CONFLICT (hour, exchange, symbol) DO UPDATE SET trades = h.trades + EXCLUDED.trades,
            total_value_usd = h.total_value_usd + EXCLUDED.total_value_usd, liquidations = h.liquidations + EXCLUDED.liquidations;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO large_trades_hourly AS h (hour, exchange, symbol, trades, total_value_usd, liquidations)
        SELECT date_trunc('hour', timestamp), exchange, symbol, count(*), sum(value_usd), count(*) FILTER (WHERE is_liquidation)
        FROM new_rows GROUP BY 1, 2, 3
        ON CONFLICT (hour, exchange, symbol) DO UPDATE SET trades = h.trades + EXCLUDED.trades,
            total_value_usd = h.total_value_usd + EXCLUDED.total_value_usd, liquidations = h.liquidations + EXCLUDED.liquidations;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM large_trades_hourly AS h USING (SELECT DISTINCT date_trunc('hour', timestamp) AS hour, exchange, symbol FROM old_rows) AS o
        WHERE h.hour = o.hour AND h.exchange = o.exchange AND h.symbol = o.symbol AND h.trades = 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION large_trades_hourly_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE large_trades_hourly;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS large_trades_hourly_insert ON large_trades;
CREATE TRIGGER large_trades_hourly_insert AFTER INSERT ON large_trades
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION large_trades_hourly_apply();
DROP TRIGGER IF EXISTS large_trades_hourly_update ON large_trades;
CREATE TRIGGER large_trades_hourly_update AFTER UPDATE ON large_trades
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION large_trades_hourly_apply();
DROP TRIGGER IF EXISTS large_trades_hourly_delete ON large_trades;
CREATE TRIGGER large_trades_hourly_delete AFTER DELETE ON large_trades
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION large_trades_hourly_apply();
DROP TRIGGER IF EXISTS large_trades_hourly_truncate ON large_trades;
CREATE TRIGGER large_trades_hourly_truncate AFTER TRUNCATE ON large_trades
    FOR EACH STATEMENT EXECUTE FUNCTION large_trades_hourly_truncate();

TRUNCATE large_trades_hourly;
INSERT INTO large_trades_hourly (hour, exchange, symbol, trades, total_value_usd, liquidations)
SELECT date_trunc('hour', timestamp), exchange, symbol, count(*), sum(value_usd), count(*) FILTER (WHERE is_liquidation)
FROM large_trades GROUP BY 1, 2, 3;
ANALYZE large_trades_hourly;
