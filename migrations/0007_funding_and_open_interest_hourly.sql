-- Hourly rollups of funding_rates and open_interest per instrument, for the
-- summaries of long windows (a year of funding readings is a million rows; the
-- rollup is a few thousand). Kept exact by statement-level triggers, like
-- large_trades_hourly (0006): on every insert (only rows actually inserted),
-- update, delete and truncate.
--
-- funding_rates_hourly: readings and the sum of their rates (the summary's
-- count and average). open_interest_hourly: readings, and the latest reading
-- of the hour as (epoch, usd), recomputed from the raw rows of every hour a
-- statement touched (the summary sums each instrument's latest reading).

CREATE TABLE IF NOT EXISTS funding_rates_hourly (
    hour TIMESTAMP NOT NULL,
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    readings BIGINT NOT NULL,
    rate_sum NUMERIC NOT NULL,
    PRIMARY KEY (hour, exchange, symbol)
);

CREATE OR REPLACE FUNCTION funding_rates_hourly_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO funding_rates_hourly AS h (hour, exchange, symbol, readings, rate_sum)
        SELECT date_trunc('hour', timestamp), exchange, symbol, -count(*), -sum(rate)
        FROM old_rows GROUP BY 1, 2, 3
        ON CONFLICT (hour, exchange, symbol) DO UPDATE SET readings = h.readings + EXCLUDED.readings, rate_sum = h.rate_sum + EXCLUDED.rate_sum;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO funding_rates_hourly AS h (hour, exchange, symbol, readings, rate_sum)
        SELECT date_trunc('hour', timestamp), exchange, symbol, count(*), sum(rate)
        FROM new_rows GROUP BY 1, 2, 3
        ON CONFLICT (hour, exchange, symbol) DO UPDATE SET readings = h.readings + EXCLUDED.readings, rate_sum = h.rate_sum + EXCLUDED.rate_sum;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM funding_rates_hourly AS h USING (SELECT DISTINCT date_trunc('hour', timestamp) AS hour, exchange, symbol FROM old_rows) AS o
        WHERE h.hour = o.hour AND h.exchange = o.exchange AND h.symbol = o.symbol AND h.readings = 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION funding_rates_hourly_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE funding_rates_hourly;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS funding_rates_hourly_insert ON funding_rates;
CREATE TRIGGER funding_rates_hourly_insert AFTER INSERT ON funding_rates
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funding_rates_hourly_apply();
DROP TRIGGER IF EXISTS funding_rates_hourly_update ON funding_rates;
CREATE TRIGGER funding_rates_hourly_update AFTER UPDATE ON funding_rates
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION funding_rates_hourly_apply();
DROP TRIGGER IF EXISTS funding_rates_hourly_delete ON funding_rates;
CREATE TRIGGER funding_rates_hourly_delete AFTER DELETE ON funding_rates
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION funding_rates_hourly_apply();
DROP TRIGGER IF EXISTS funding_rates_hourly_truncate ON funding_rates;
CREATE TRIGGER funding_rates_hourly_truncate AFTER TRUNCATE ON funding_rates
    FOR EACH STATEMENT EXECUTE FUNCTION funding_rates_hourly_truncate();

TRUNCATE funding_rates_hourly;
INSERT INTO funding_rates_hourly (hour, exchange, symbol, readings, rate_sum)
SELECT date_trunc('hour', timestamp), exchange, symbol, count(*), sum(rate)
FROM funding_rates GROUP BY 1, 2, 3;
ANALYZE funding_rates_hourly;

CREATE TABLE IF NOT EXISTS open_interest_hourly (
    hour TIMESTAMP NOT NULL,
    exchange VARCHAR(50) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    readings BIGINT NOT NULL,
    -- The hour's latest reading: [epoch seconds, USD], compared as an array (later epoch wins, then larger USD).
    latest NUMERIC[] NOT NULL,
    PRIMARY KEY (hour, exchange, symbol)
);

CREATE OR REPLACE FUNCTION open_interest_hourly_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched_hour TIMESTAMP[] := '{}';
    touched_exchange VARCHAR(50)[] := '{}';
    touched_symbol VARCHAR(50)[] := '{}';
BEGIN
    -- The (hour, instrument) groups the statement touched, recomputed whole from the raw rows.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT touched_hour || array_agg(hour), touched_exchange || array_agg(exchange), touched_symbol || array_agg(symbol)
        INTO touched_hour, touched_exchange, touched_symbol
        FROM (SELECT DISTINCT date_trunc('hour', timestamp) AS hour, exchange, symbol FROM old_rows) AS touched;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        SELECT touched_hour || array_agg(hour), touched_exchange || array_agg(exchange), touched_symbol || array_agg(symbol)
        INTO touched_hour, touched_exchange, touched_symbol
        FROM (SELECT DISTINCT date_trunc('hour', timestamp) AS hour, exchange, symbol FROM new_rows) AS touched;
    END IF;
    DELETE FROM open_interest_hourly AS h
    USING unnest(touched_hour, touched_exchange, touched_symbol) AS t(hour, exchange, symbol)
    WHERE h.hour = t.hour AND h.exchange = t.exchange AND h.symbol = t.symbol;
    INSERT INTO open_interest_hourly (hour, exchange, symbol, readings, latest)
    SELECT t.hour, t.exchange, t.symbol, count(*), max(ARRAY[extract(epoch FROM o.timestamp), o.open_interest_usd])
    FROM (SELECT DISTINCT hour, exchange, symbol FROM unnest(touched_hour, touched_exchange, touched_symbol) AS u(hour, exchange, symbol)) AS t
    JOIN open_interest AS o ON o.exchange = t.exchange AND o.symbol = t.symbol
        AND o.timestamp >= t.hour AND o.timestamp < t.hour + interval '1 hour'
    GROUP BY 1, 2, 3;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION open_interest_hourly_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE open_interest_hourly;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS open_interest_hourly_insert ON open_interest;
CREATE TRIGGER open_interest_hourly_insert AFTER INSERT ON open_interest
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION open_interest_hourly_refresh();
DROP TRIGGER IF EXISTS open_interest_hourly_update ON open_interest;
CREATE TRIGGER open_interest_hourly_update AFTER UPDATE ON open_interest
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION open_interest_hourly_refresh();
DROP TRIGGER IF EXISTS open_interest_hourly_delete ON open_interest;
CREATE TRIGGER open_interest_hourly_delete AFTER DELETE ON open_interest
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION open_interest_hourly_refresh();
DROP TRIGGER IF EXISTS open_interest_hourly_truncate ON open_interest;
CREATE TRIGGER open_interest_hourly_truncate AFTER TRUNCATE ON open_interest
    FOR EACH STATEMENT EXECUTE FUNCTION open_interest_hourly_truncate();

TRUNCATE open_interest_hourly;
INSERT INTO open_interest_hourly (hour, exchange, symbol, readings, latest)
SELECT date_trunc('hour', timestamp), exchange, symbol, count(*), max(ARRAY[extract(epoch FROM timestamp), open_interest_usd])
FROM open_interest GROUP BY 1, 2, 3;
ANALYZE open_interest_hourly;
