-- Funding summaries on one basis. Each venue states its rate over its own
-- interval (1 h on some Bybit and Binance contracts, 4 h, 8 h), so averaging raw
-- rates mixes units. Every rate is put on an 8-hour basis first:
-- rate x 8 / interval_hours, the interval the row's metadata says
-- (pipeline/funding.ts always writes it; 8 h where a row has none or an
-- unreadable one). The summary's average is of these, and its annualised
-- figure is that x 3 x 365.

CREATE OR REPLACE FUNCTION funding_rate_per_8h(rate NUMERIC, metadata JSONB) RETURNS NUMERIC
LANGUAGE sql IMMUTABLE AS $$
    SELECT rate * 8 / CASE
        WHEN metadata->>'interval_hours' ~ '^[0-9]+(\.[0-9]+)?$' AND (metadata->>'interval_hours')::numeric > 0
        THEN (metadata->>'interval_hours')::numeric
        ELSE 8
    END
$$;

ALTER TABLE funding_rates_hourly ADD COLUMN IF NOT EXISTS rate_8h_sum NUMERIC NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION funding_rates_hourly_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO funding_rates_hourly AS h (hour, exchange, symbol, readings, rate_sum, rate_8h_sum)
        SELECT date_trunc('hour', timestamp), exchange, symbol, -count(*), -sum(rate), -sum(funding_rate_per_8h(rate, metadata))
        FROM old_rows GROUP BY 1, 2, 3
        ON CONFLICT (hour, exchange, symbol) DO UPDATE SET readings = h.readings + EXCLUDED.readings, rate_sum = h.rate_sum + EXCLUDED.rate_sum,
            rate_8h_sum = h.rate_8h_sum + EXCLUDED.rate_8h_sum;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO funding_rates_hourly AS h (hour, exchange, symbol, readings, rate_sum, rate_8h_sum)
        SELECT date_trunc('hour', timestamp), exchange, symbol, count(*), sum(rate), sum(funding_rate_per_8h(rate, metadata))
        FROM new_rows GROUP BY 1, 2, 3
        ON CONFLICT (hour, exchange, symbol) DO UPDATE SET readings = h.readings + EXCLUDED.readings, rate_sum = h.rate_sum + EXCLUDED.rate_sum,
            rate_8h_sum = h.rate_8h_sum + EXCLUDED.rate_8h_sum;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM funding_rates_hourly AS h USING (SELECT DISTINCT date_trunc('hour', timestamp) AS hour, exchange, symbol FROM old_rows) AS o
        WHERE h.hour = o.hour AND h.exchange = o.exchange AND h.symbol = o.symbol AND h.readings = 0;
    END IF;
    RETURN NULL;
END
$$;

TRUNCATE funding_rates_hourly;
INSERT INTO funding_rates_hourly (hour, exchange, symbol, readings, rate_sum, rate_8h_sum)
SELECT date_trunc('hour', timestamp), exchange, symbol, count(*), sum(rate), sum(funding_rate_per_8h(rate, metadata))
FROM funding_rates GROUP BY 1, 2, 3;
ANALYZE funding_rates_hourly;
